"""Where neurodeploy keeps what it builds once per machine, outside any clone or install."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/neurodeploy``, by default ``~/.cache/neurodeploy``."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "neurodeploy"

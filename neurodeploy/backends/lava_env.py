"""Where to find a Python that can import Lava (Lava needs Python 3.10 and numpy < 2)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from neurodeploy.cache import cache_dir

ENV_VAR = "NEURODEPLOY_LAVA_PYTHON"


def default_env_dir() -> Path:
    """The Lava environment that ``scripts/lava-env.sh`` builds, outside any clone."""
    return cache_dir() / "lava-py310"


def lava_in_process() -> bool:
    """True when this interpreter itself can import Lava."""
    try:
        import lava.magma  # noqa: F401
    except ImportError:
        return False
    return True


def lava_python() -> str | None:
    """The interpreter to run Lava with: this one, $NEURODEPLOY_LAVA_PYTHON, or the cached env."""
    if lava_in_process():
        return sys.executable
    configured = os.environ.get(ENV_VAR)
    if configured:
        return configured
    candidate = default_env_dir() / "bin" / "python"
    return str(candidate) if candidate.exists() else None

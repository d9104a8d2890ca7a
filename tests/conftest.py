"""Shared fixtures: lava-dl's golden data and the Lava interpreter.

Tests that need either skip with a reason when it is absent, except under CI
(CI=true), where its absence is a failure: there they must run. A test module
that imports an optional extra which is not installed (a core-only install has
no torch) is reported as skipped, naming the extra.

The interrupt tests need Ctrl-C to raise, in this process and in the processes it
starts; a runner started in the background of a shell inherits SIGINT ignored,
so the default handler is put back first.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from neurodeploy.backends.lava_env import lava_python
from neurodeploy.extras import missing_extra

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() == "true"

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(tryfirst=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport | None:
    """A test module whose import needs a missing extra: one skip naming it, not an error."""
    if not isinstance(collector, pytest.Module):
        return None
    try:
        collector.obj  # noqa: B018 (imports the module; pytest keeps it for collection)
    except pytest.skip.Exception:  # the module skips itself: pytest's own report says so
        return None
    except collector.CollectError as err:
        cause = err.__cause__
        extra = missing_extra(cause) if isinstance(cause, ModuleNotFoundError) else None
        if extra is None:
            return None
        reason = f"Skipped: needs the '{extra}' extra (no module named {cause.name!r})"
        return pytest.CollectReport(collector.nodeid, "skipped", (str(collector.path), 0, reason), [])
    return None


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


def _conformance_root() -> Path:
    configured = os.environ.get("NEURODEPLOY_CONFORMANCE")
    return Path(configured) if configured else REPO.parent / "shared" / "conformance" / "lava-dl"


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    """lava-dl's golden networks and traces (../shared/conformance/lava-dl)."""
    root = _conformance_root()
    if not (root / "tiny.net").exists():
        _missing(f"lava-dl golden data not found at {root}; set NEURODEPLOY_CONFORMANCE")
    return root


@pytest.fixture(scope="session")
def lava_exe() -> str:
    """A Python interpreter that can import Lava."""
    exe = lava_python()
    if exe is None:
        _missing("no Lava environment: run scripts/lava-env.sh or set NEURODEPLOY_LAVA_PYTHON")
    return exe

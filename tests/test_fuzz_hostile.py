"""Hostile but well-formed files and options (tests/hostile.py) through the command line, each in its own
process limited to 8 GB of address space: every one ends within 60 s with exit 0 or 2 and no traceback, and
those that cannot be done are refused with a message saying why."""

from __future__ import annotations

import concurrent.futures
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from neurodeploy.extras import missing_extra

import hostile

ADDRESS_SPACE = 8_000_000 * 1024  # ulimit -v 8000000
SECONDS = 60
REPO = Path(__file__).resolve().parents[1]


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def _run(case: hostile.Case) -> tuple[hostile.Case, int | None, str, float]:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **case.env}
    start = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "neurodeploy", *case.argv],
            capture_output=True,
            text=True,
            timeout=SECONDS,
            env=env,
            preexec_fn=_limited,
        )
    except subprocess.TimeoutExpired as err:
        return case, None, str(err.stderr or ""), time.monotonic() - start
    return case, done.returncode, done.stderr, time.monotonic() - start


def _problem(case: hostile.Case, status: int | None, err: str, seconds: float) -> str | None:
    if status is None:
        return f"no answer within {SECONDS} s"
    if "Traceback" in err or status not in (0, 2):
        return f"exit {status}: {err[-800:]}"
    if status == 2 and err.count("\n") == 1 and "this needs the optional" in err:
        return None  # a core install without the command's extra: refused in one line before reading
    if case.refuse is None and status != 0:
        return f"expected to run, exit {status}: {err[-400:]}"
    if case.refuse and (status != 2 or case.refuse not in err):
        return f"expected a refusal naming {case.refuse!r}, exit {status}: {err[-400:]}"
    if status == 2 and err.count("\n") != 1 and "warning" not in err:
        return f"more than one line: {err[-400:]}"
    return None


@pytest.mark.parametrize("generator", hostile.GENERATORS, ids=lambda g: g.__name__)
def test_hostile_inputs_end_cleanly_within_time_and_memory(tmp_path, generator):
    if generator is hostile.targets:
        hostile.run_inputs(tmp_path)  # writes small.net
    try:
        cases = generator(tmp_path)
    except ModuleNotFoundError as err:  # the generator writes its files with an extra's package
        if missing_extra(err) is None:
            raise
        pytest.skip(f"{generator.__name__}: needs the '{missing_extra(err)}' extra")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(_run, cases))
    for case, status, _, seconds in results:
        print(f"{seconds:5.1f} s  exit {status}  {case.name}")
    problems = [f"{case.name}: {problem}" for case, *outcome in results if (problem := _problem(case, *outcome))]
    assert not problems, "\n".join(problems)

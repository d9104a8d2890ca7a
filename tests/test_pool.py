"""The local worker pool: every result comes back, each worker has its share of the memory budget,
and a worker's error reaches the caller with every worker ended."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest
from neurodeploy import budget
from neurodeploy.errors import NeurodeployError
from neurodeploy.pool import WorkerError, run_pool


def _work(job: dict):
    """Yield (job id, (pid, budget)); then fail or sleep as the job says."""
    yield job["id"], (os.getpid(), budget.limit())
    if job.get("fail"):
        raise NeurodeployError(job["fail"])
    if job.get("crash"):
        yield job["id"] + 10, 1 // 0
    time.sleep(job.get("sleep", 0))
    yield job["id"] + 100, sum(job.get("numbers", []))


def _run(jobs: list[dict]) -> dict:
    got: dict = {}
    run_pool(_work, jobs, got.__setitem__)
    return got


def _workers_alive() -> list:
    return [p for p in multiprocessing.active_children() if p.name.startswith("neurodeploy-worker")]


def test_every_result_comes_back_from_workers_on_their_budget_share():
    budget.set_limit(3 << 20)
    try:
        got = _run([{"id": 0, "numbers": [1, 2]}, {"id": 1, "numbers": [3, 4, 5]}, {"id": 2}])
    finally:
        budget.set_limit(None)
    assert {k: v for k, v in got.items() if k >= 100} == {100: 3, 101: 12, 102: 0}
    pids = {got[k][0] for k in range(3)}
    assert len(pids) == 3 and os.getpid() not in pids
    assert {got[k][1] for k in range(3)} == {1 << 20}
    assert not _workers_alive()


def test_a_workers_error_names_it_and_ends_the_others():
    with pytest.raises(WorkerError, match=r"^worker 2 of 2: bad input: layer 3$"):
        _run([{"id": 0, "sleep": 600}, {"id": 1, "fail": "bad input: layer 3"}])
    assert not _workers_alive()


def test_a_workers_bug_comes_back_with_its_traceback():
    with pytest.raises(RuntimeError, match=r"(?s)worker 1 of 1 failed:.*ZeroDivisionError"):
        _run([{"id": 0, "crash": True}])
    assert not _workers_alive()

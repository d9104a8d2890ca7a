"""Work spread over local worker processes: each runs a generator on its own job, and what it yields
comes back to the caller as it arrives. Every worker has ended when the call returns, whether the
work finished, failed, or was interrupted.

Workers are spawned (a fresh interpreter, never a fork of a process that holds threads) and
ignore SIGINT: Ctrl-C reaches the whole process group, and the parent alone turns it into an
exit (:mod:`neurodeploy.cli`), terminating the workers on its way out. Each worker gets an
equal share of the memory budget (:mod:`neurodeploy.budget`). Jobs and results travel as
pickles through each worker's private pipe, between processes of this one command only.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import signal
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, cast

from neurodeploy import budget
from neurodeploy.atomic import deferred_signals
from neurodeploy.errors import NeurodeployError

STOP_SECONDS = 5.0  # for a worker to end after its last result, or once terminated
LOST_PARENT = (BrokenPipeError, ConnectionResetError, EOFError)


class WorkerError(NeurodeployError):
    """A worker that stopped on an error a user can fix (its message follows), or ended early."""


def run_pool(
    work: Callable[[Any], Iterable[tuple[Any, Any]]], jobs: Sequence[Any], take: Callable[[Any, Any], None]
) -> None:
    """Run ``work(job)`` in one worker process a job; ``take(key, value)`` gets each pair it yields.

    ``work`` must be a module-level function (the workers import it by name), and a script that
    calls this needs the ``if __name__ == "__main__":`` guard of spawned processes. A worker's
    :class:`~neurodeploy.errors.NeurodeployError` is raised here as :class:`WorkerError`
    with its message; any other exception as a RuntimeError carrying the worker's traceback.
    """
    context = multiprocessing.get_context("spawn")
    share = budget.limit() // max(len(jobs), 1)
    workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
    done = False
    try:
        for k in range(len(jobs)):
            mine, theirs = context.Pipe()
            proc = context.Process(
                target=_serve, args=(theirs, work, share), name=f"neurodeploy-worker-{k + 1}", daemon=True
            )
            # a started worker is always in the list that the cleanup below ends; it inherits the
            # mask, so its Python starts with SIGINT held (it ignores SIGINT once running)
            with deferred_signals(), _sigint_blocked():
                proc.start()
                workers.append((proc, mine))
            theirs.close()
        for (_, conn), job in zip(workers, jobs):
            conn.send_bytes(pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
        _collect(workers, take)
        done = True
    finally:
        for started, conn in workers:
            _stop(started, STOP_SECONDS if done else 0.0)
            conn.close()


def _collect(workers: list[tuple[multiprocessing.process.BaseProcess, Connection]], take) -> None:
    """Hand each worker's results to ``take`` until every worker has said it is done."""
    pending = {conn: k for k, (_, conn) in enumerate(workers)}
    n = len(workers)
    while pending:
        for ready in wait(list(pending)):
            conn = cast(Connection, ready)  # wait() returns some of the connections it was given
            k = pending[conn]
            try:
                kind, *payload = pickle.loads(conn.recv_bytes())
            except EOFError:
                ended = workers[k][0]
                ended.join(STOP_SECONDS)
                raise WorkerError(
                    f"worker {k + 1} of {n} ended before its work was done (exit status {ended.exitcode})"
                ) from None
            if kind == "result":
                take(*payload)
            elif kind == "done":
                del pending[conn]
            elif kind == "error":
                raise WorkerError(f"worker {k + 1} of {n}: {payload[0]}")
            else:
                raise RuntimeError(f"worker {k + 1} of {n} failed:\n{payload[0]}")


def _serve(conn: Connection, work: Callable[[Any], Iterable[tuple[Any, Any]]], share: int) -> None:
    """A worker's life: ignore SIGINT, take the budget share, run the job, send each result."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    budget.set_limit(share)
    with contextlib.suppress(*LOST_PARENT):  # the parent has gone: nobody is left to tell
        job = conn.recv_bytes()
        for message in _messages(work, job):
            conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def _messages(work, job: bytes) -> Iterator[tuple]:
    """("result", key, value) for each pair ``work`` yields, then ("done",), or an error's message."""
    try:
        for key, value in work(pickle.loads(job)):
            yield "result", key, value
    except NeurodeployError as err:
        yield "error", str(err)
        return
    except Exception:
        yield "crash", traceback.format_exc()
        return
    yield ("done",)


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT held back from this thread while the block runs (the process's other threads still
    take it, so the parent's Ctrl-C is not lost); a process started here inherits the mask."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _stop(proc: multiprocessing.process.BaseProcess, grace: float) -> None:
    """Wait ``grace`` seconds for ``proc`` to end, then terminate it, then kill it."""
    proc.join(grace)
    if proc.is_alive():
        proc.terminate()
        proc.join(STOP_SECONDS)
    if proc.is_alive():
        proc.kill()
        proc.join()

"""Signals in bursts: the CLI's interrupt handler never blocks, survives being re-entered, prints no
traceback, and an interrupted command leaves the previous outputs as they were; Ctrl-C ends compare's
worker processes with it."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from neurodeploy.exporters.netx import write_netx

from fuzzing import sample_netlist

RUNS = 100
AT_ONCE = 4  # processes at a time
END_SECONDS = 5  # from the first signal of a burst to the end of the process
START_SECONDS = 120  # for a process to install its handlers on a loaded machine
# `run` on a small netlist for more steps than it could finish in the test: every burst interrupts it
COMMAND = ["run", "--steps", "2000000", "--record", "s"]

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")


def _handles_sigterm(pid: int) -> bool:
    """Whether the process catches SIGTERM: the CLI has installed its handler (Python alone does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(caught >> (signal.SIGTERM - 1) & 1)


def _burst(net: Path, out: Path, seed: int) -> tuple[int | None, str, float]:
    """Start the command, wait for its handler, sleep 0-300 ms, send three SIGINTs 0.1-2 ms apart;
    (exit status or None if it did not end in time, stderr, seconds from the first signal to the end)."""
    rng = np.random.default_rng(seed)
    child = subprocess.Popen(
        [sys.executable, "-m", "neurodeploy", *COMMAND, str(net), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + START_SECONDS
    while not _handles_sigterm(child.pid) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(rng.uniform(0, 0.3))
    first = time.monotonic()
    for gap in rng.uniform(1e-4, 2e-3, 3):
        child.send_signal(signal.SIGINT)
        time.sleep(gap)
    try:
        _, err = child.communicate(timeout=END_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        _, err = child.communicate()
        return None, err, time.monotonic() - first
    return child.returncode, err, time.monotonic() - first


def test_bursts_of_sigint_end_every_run_cleanly(tmp_path):
    net = tmp_path / "net.net"
    write_netx(sample_netlist(input_layer=True), net)
    outs = []
    for k in range(AT_ONCE):
        outs.append(tmp_path / f"out{k}.npz")
        outs[-1].write_bytes(b"the previous output %d" % k)
    with concurrent.futures.ThreadPoolExecutor(AT_ONCE) as pool:
        results = list(pool.map(lambda run: _burst(net, outs[run % AT_ONCE], run), range(RUNS)))
    bad = [
        (run, status, round(seconds, 2), err[-600:])
        for run, (status, err, seconds) in enumerate(results)
        if status not in (130, 2) or seconds > END_SECONDS or _traceback(err)
    ]
    assert not bad, bad[:5]
    assert all(out.read_bytes() == b"the previous output %d" % k for k, out in enumerate(outs))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["net.net", *(out.name for out in outs)])


def _traceback(err: str) -> bool:
    """A traceback on stderr. An interrupt raised inside importlib's module lock
    (``_lock_unlock_module``) is printed once before the clean exit (seen in about 1 run of 100 on
    Python 3.10 and 3.13); that one known case is tolerated, every other traceback is not."""
    if "Traceback" not in err and "Exception ignored" not in err:
        return False
    return not ("_lock_unlock_module" in err and err.count("Traceback") == 1)


def _cpu_seconds(pid: int) -> float:
    """User and system time of a running process (0 once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _workers(pid: int) -> list[int]:
    """The spawned worker processes among ``pid``'s children."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _ctrl_c_compare(model: Path, out: Path, busy: float) -> tuple[int | None, str, float, list[int]]:
    """Start ``compare --workers 2``; once each worker has run ``busy`` CPU seconds, send SIGINT to the
    process group as Ctrl-C does; (exit status, stderr, seconds to the end, the workers' ids)."""
    args = ["compare", str(model), "--batch-size", "1", "--calibrate", "0", "--no-progress", "--workers", "2"]
    child = subprocess.Popen(
        [sys.executable, "-m", "neurodeploy", *args, "--force", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + START_SECONDS
    workers: list[int] = []
    while len(workers) < 2 and child.poll() is None and time.monotonic() < deadline:
        workers = _workers(child.pid)
        time.sleep(0.001)
    while min(map(_cpu_seconds, workers), default=busy) < busy and time.monotonic() < deadline:
        time.sleep(0.01)
    first = time.monotonic()
    os.killpg(child.pid, signal.SIGINT)
    try:
        _, err = child.communicate(timeout=END_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        _, err = child.communicate()
        return None, err, time.monotonic() - first, workers
    return child.returncode, err, time.monotonic() - first, workers


def test_ctrl_c_ends_compare_and_its_workers(tmp_path):
    torch = pytest.importorskip("torch")
    from neurodeploy.models import SpikingNetwork, make_rule, parse_arch, save_checkpoint

    # wide enough that the 450 test samples, one a batch, keep two workers busy for seconds
    net = SpikingNetwork(parse_arch("64-512-512-10"), (1, 8, 8), make_rule("tssl"), "current")
    for p in net.parameters():
        torch.nn.init.normal_(p, 0.0, 0.4)
    model = tmp_path / "model.pt"
    meta = {"split": {}, "float_test_accuracy": 0.0, "seed": 0}
    save_checkpoint(model, net, encoding={"name": "direct"}, steps=10, dataset="digits", **meta)
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "report.md").write_text("the previous report")
    for busy in (0.0, 1.5):  # while the workers start, and while they work
        status, err, seconds, workers = _ctrl_c_compare(model, out, busy)
        assert len(workers) == 2, err[-600:]
        assert status == 130 and "interrupted (SIGINT)" in err and not _traceback(err), (status, err[-600:])
        assert seconds < END_SECONDS and not [pid for pid in workers if _running(pid)]
    assert [p.name for p in out.iterdir()] == ["report.md"] and (out / "report.md").read_text() == "the previous report"


LOST_IN_HANDOVER = """
from neurodeploy.cli import interrupts_raise


class Failing:
    def __init__(self, message):
        self.message = message

    def __del__(self):  # an exception here goes to sys.unraisablehook, as CPython's lost signal does
        raise OSError(self.message)


with interrupts_raise(restore=False):  # as the command line: SIGINT is ignored from here on
    pass
Failing("Signal 2 ignored due to race condition")
Failing("another failure")
"""


def test_a_signal_lost_while_the_handlers_are_put_back_is_not_reported():
    # CPython reports a SIGINT that lands while the handlers are set to ignore it through the
    # unraisable hook; after the command has its interrupt it is expected, and nothing else is hidden
    err = subprocess.run([sys.executable, "-c", LOST_IN_HANDOVER], capture_output=True, text=True, timeout=60).stderr
    assert "another failure" in err
    assert "race condition" not in err


# In a fresh process: SIGINT arrives during h5py's import, just before it registers the exit call
# that removes its HDF5 type converters (the converters are registered already).
_H5PY_IMPORT_CUT = """
import atexit, signal, sys
from neurodeploy.h5check import h5py_module

register = atexit.register

def register_after_a_signal(func, *args, **kwargs):
    if getattr(func, "__name__", "") == "unregister_converters":
        signal.raise_signal(signal.SIGINT)
    return register(func, *args, **kwargs)

atexit.register = register_after_a_signal
try:
    h5py_module()
except KeyboardInterrupt:
    sys.exit(130 if "h5py" in sys.modules else 3)
"""


def test_an_interrupt_during_the_h5py_import_ends_the_process_cleanly():
    """Cut there, HDF5's exit handler calls h5py after the interpreter has gone (a segfault);
    held back, the import completes and the interrupt is raised after it."""
    done = subprocess.run([sys.executable, "-c", _H5PY_IMPORT_CUT], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (130, "")


# SIGINT arrives as the CLI starts its resending thread (inside Thread.start, it broke the lock
# that start waits on: "RuntimeError: release unlocked lock", 1 burst in 4,000)
_THREAD_START_CUT = """
import signal, sys, threading
from neurodeploy.cli import main

start = threading.Thread.start
started = []

def start_after_a_signal(thread):
    signal.raise_signal(signal.SIGINT)
    start(thread)
    started.append(thread.name)

threading.Thread.start = start_after_a_signal
print(main(["--version"]), started)
"""


def test_an_interrupt_while_the_resending_thread_starts_waits_for_the_start():
    done = subprocess.run([sys.executable, "-c", _THREAD_START_CUT], capture_output=True, text=True, timeout=120)
    assert (done.stdout, done.stderr) == ("130 ['neurodeploy-interrupts']\n", "neurodeploy: interrupted (SIGINT)\n")

"""Signals in bursts: the CLI's interrupt handler never blocks, survives being re-entered, prints no
traceback, and an interrupted command leaves the previous outputs as they were."""

from __future__ import annotations

import concurrent.futures
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
    """A traceback on stderr. On Python 3.10 an interrupt raised inside importlib's module lock
    (``_lock_unlock_module``) is printed once before the clean exit (seen in 1 run of 100); that one
    known case is tolerated there, every other traceback is not."""
    if "Traceback" not in err and "Exception ignored" not in err:
        return False
    return not (sys.version_info < (3, 11) and "_lock_unlock_module" in err and err.count("Traceback") == 1)

"""The torch simulator against the default one, timed in the same run.

    python benchmarks/sim_torch.py [--batch 64] [--repeat 3]

Two networks, as benchmarks/sim_vs_lava.py builds them: PilotNet (lava-dl's
gts/pilotnet_lif/network.net, 16 steps, a batch of images as the input layer's
bias) and PilotNet SDNN (gts/pilotnet_sdnn/network.net, sigma-delta, 9 steps, a
batch of rolled input frames). One line a network and simulator::

    NET NAME seconds=... inferences/s=... ratio=...

The first line of a network is the default simulator, named for the path that ran
it: ``compiled`` (the kernel of :mod:`neurodeploy.sim_native`, where it built and
takes the network) or ``numpy``. ``ratio`` is its time over this one's (above 1:
faster), each the median of ``--repeat`` runs after a warm-up run. The torch lines
are CPU torch (``torch.get_num_threads()`` threads) and, where torch finds CUDA,
the GPU; each checks that its spikes (or graded messages) and counters equal the
default's.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from neurodeploy import sim_native  # noqa: E402
from neurodeploy.sim import simulate  # noqa: E402
from neurodeploy.simulators import simulator  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from sim_vs_lava import pilotnet_case, pilotnet_sdnn_case  # noqa: E402


def default_path(case) -> str:
    """The path the default simulator takes for ``case``: compiled or numpy."""
    taken = []
    run = sim_native.run
    sim_native.run = lambda *args, **kwargs: taken.append(1) or run(*args, **kwargs)
    try:
        simulate(case.net, case.steps, spikes=case.spikes, bias=case.bias, reset_interval=case.reset_interval)
    finally:
        sim_native.run = run
    return "compiled" if taken else "numpy"


def timed(run, repeat: int):
    """The last recording and the median wall time of ``repeat`` runs after a warm-up."""
    rec, times = run(), []
    for _ in range(repeat):
        start = time.perf_counter()
        rec = run()
        times.append(time.perf_counter() - start)
    return rec, statistics.median(times)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    devices = [None, "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for label, case in (("pilotnet", pilotnet_case(args.batch)), ("pilotnet_sdnn", pilotnet_sdnn_case(args.batch))):
        baseline = reference = None
        for device in devices:
            run = functools.partial(
                simulator(device), case.net, case.steps, spikes=case.spikes, bias=case.bias,
                reset_interval=case.reset_interval,
            )  # fmt: skip
            rec, seconds = timed(run, args.repeat)
            name = f"torch-{device}" if device else default_path(case)
            if reference is None:
                baseline, reference = seconds, rec
            same = all(np.array_equal(rec.s[i], reference.s[i]) for i in reference.s)
            same &= rec.synaptic_events == reference.synaptic_events and rec.spike_count == reference.spike_count
            print(
                f"{label} {name} seconds={seconds:.3f} inferences/s={args.batch / seconds:.1f} "
                f"ratio={baseline / seconds:.2f}" + ("" if device is None else f" equal={same}")
            )
    if "cuda" not in devices:
        print("cuda: torch finds no CUDA device here; no GPU line")


if __name__ == "__main__":
    main()

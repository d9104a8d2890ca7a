"""The simulator against Lava's fixed_pt models, timed in the same run.

    python benchmarks/sim_vs_lava.py [--lava-samples 4] [--nets pilotnet,dense784]

Three networks: PilotNet (lava-dl's gts/pilotnet_lif/network.net, 16 steps, a batch
of 64 images as the input layer's bias: image.npy rolled sideways by 3 pixels more
for each sample, so that no two are alike), PilotNet SDNN (gts/pilotnet_sdnn/network.net,
a sigma-delta network with graded spikes: input.npy into its Delta input layer on
each of 9 steps, as lava-dl's test runs it, and a batch of 64 such inputs rolled as
PilotNet's images are; its line also gives the golden input alone, "one sample",
against Lava's time for one sample) and a 784-500-500-10 dense net (256
samples of 25 steps, 20% input activity). One line each::

    NAME lava_s=... sim_s=... ratio=... cpu: ... stepping only: ... steady: ...

``lava_s`` is Lava's wall time for what ``run_lava`` does (building the processes,
compiling, starting them, running, stopping), one sample a Lava run, after a
warm-up run that pays Lava's one-time costs; "stepping only" counts just the
running of the started processes. Lava runs ``--lava-samples`` of PilotNet's 64
and of the dense net's 256 samples and is scaled linearly to the batch (the line
says so). For the
dense net Lava also runs one sample for ten times as many steps, and "steady"
scales its stepping rate there (the most favourable to Lava) to the whole batch. ``sim_s``
is the median of five runs of :func:`neurodeploy.sim.simulate` on the whole
batch, after a warm-up run (of 25 for the one sample). "cpu" gives the CPU seconds of each side (Lava's summed over its
processes), the fairer measure on a busy machine, where a single-process
simulator gets a smaller share of the cores than Lava's dozen processes. The
Lava side runs in the Lava interpreter (this script with ``--lava``), which also
checks that its spikes equal the simulator's.

PilotNet's line also gives the simulator's inferences per second, which path ran it
(the compiled kernel of :mod:`neurodeploy.sim_native`, or numpy where no C compiler
built it; ``tiles=yes`` where the kernel multiplies convolutions as tiles of bytes)
with the numpy path's own figure timed in the same run as the baseline, and
the dense product bound measured in the same run: the float32 and float64 matrix products of
the sizes its layers' synapses multiply over the batch and steps (each convolution
as patches times kernel), timed alone, as inferences per second. A simulator passes
the float32 bound only by skipping silent inputs or by multiplying narrower numbers
(the kernel's tiles multiply bytes).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from neurodeploy import sim_native  # noqa: E402
from neurodeploy.backends.lava_env import lava_python  # noqa: E402
from neurodeploy.backends.lava_exchange import LavaCase, read_cases, write_cases  # noqa: E402
from neurodeploy.netlist import CubaNeuron, Dense, Netlist  # noqa: E402
from neurodeploy.sim import simulate  # noqa: E402

PILOTNET = Path(os.environ.get("NEURODEPLOY_CONFORMANCE", REPO.parent / "shared" / "conformance" / "lava-dl"))
PILOTNET_SDNN = PILOTNET / "gts" / "pilotnet_sdnn"
PILOTNET = PILOTNET / "gts" / "pilotnet_lif"
DENSE_SAMPLES, DENSE_STEPS, ACTIVITY = 256, 25, 0.2
PILOTNET_SAMPLES, PILOTNET_STEPS, PILOTNET_ROLL = 64, 16, 3
STEADY_REPEAT = 10
ONE_SAMPLE_RUNS = 25
PRODUCT_ROWS = 1 << 15  # rows of a bound's product multiplied at a time


def pilotnet_case(samples: int = PILOTNET_SAMPLES) -> LavaCase:
    from neurodeploy.exporters.netx import read_netx

    net = read_netx(PILOTNET / "network.net")
    image = np.load(PILOTNET / "image.npy").transpose(2, 1, 0).astype(np.int64)  # (x, y, f) -> (C, H, W)
    # one (C, H, W) array a sample, in C order, as a data loader hands a batch over
    images = np.ascontiguousarray(np.stack([np.roll(image, PILOTNET_ROLL * k, axis=2) for k in range(samples)]))
    return LavaCase(net, PILOTNET_STEPS, bias=images, reset_interval=16)


def pilotnet_sdnn_case(samples: int = PILOTNET_SAMPLES) -> LavaCase:
    from neurodeploy.exporters.netx import read_netx

    net = read_netx(PILOTNET_SDNN / "network.net")
    steps = len(net.neuron_layers)
    image = np.load(PILOTNET_SDNN / "input.npy").transpose(3, 2, 1, 0)  # (x, y, f, t) -> (t, C, H, W)
    frames = np.repeat(image, steps, axis=0).astype(np.int64)
    return LavaCase(net, steps, spikes=np.stack([np.roll(frames, PILOTNET_ROLL * k, axis=3) for k in range(samples)]))


def dense_case(samples: int) -> LavaCase:
    rng = np.random.default_rng(0)
    sizes = (784, 500, 500, 10)
    layers = [
        Dense(weight=rng.integers(-128, 128, (n_out, n_in)), neuron=CubaNeuron(vth=200, du=1000, dv=500))
        for n_in, n_out in itertools.pairwise(sizes)
    ]
    spikes = rng.random((DENSE_SAMPLES, DENSE_STEPS, sizes[0])) < ACTIVITY
    return LavaCase(Netlist(layers, input_shape=(sizes[0],)), DENSE_STEPS, spikes=spikes[:samples])


def time_sim(case: LavaCase, runs: int = 5) -> tuple[float, float]:
    """Median wall and CPU seconds of ``runs`` runs after a warm-up run."""
    simulate(case.net, case.steps, spikes=case.spikes, bias=case.bias, reset_interval=case.reset_interval)
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        simulate(case.net, case.steps, spikes=case.spikes, bias=case.bias, reset_interval=case.reset_interval)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def one_sample(case: LavaCase, lava_s: float) -> str:
    """The first sample of ``case`` alone (the median of ONE_SAMPLE_RUNS runs: each takes milliseconds),
    against Lava's seconds for one sample."""
    sim_s, _ = time_sim(LavaCase(case.net, case.steps, spikes=case.spikes[:1]), ONE_SAMPLE_RUNS)
    return f" | one sample: lava_s={lava_s:.3f} sim_s={sim_s:.4f} ratio={lava_s / sim_s:.0f}"


def product_sizes(case: LavaCase) -> list[tuple[int, int, int]]:
    """(rows, inner, columns) of each synaptic layer's product over the batch and the steps it receives."""
    from neurodeploy.netlist import Conv

    sizes = []
    rows = case.batch() * (case.steps - 1)
    for i in case.net.neuron_layers:
        layer = case.net.layers[i]
        if isinstance(layer, Conv):
            o, cg, kh, kw = layer.weight.shape
            sizes.append((rows * layer.shape[1] * layer.shape[2], cg * kh * kw, o))
        elif isinstance(layer, Dense):
            sizes.append((rows, layer.weight.shape[1], layer.weight.shape[0]))
    return sizes


def product_seconds(sizes: list[tuple[int, int, int]], dtype, runs: int = 3) -> float:
    """Best of ``runs`` timings of all the products in ``sizes`` (binary inputs, 8-bit weights), in
    blocks of PRODUCT_ROWS rows, each block's product computed on every core."""
    rng = np.random.default_rng(0)
    blocks = [
        (
            (rng.random((min(rows, PRODUCT_ROWS), inner)) < 0.1).astype(dtype),
            rng.integers(-128, 128, (inner, cols)).astype(dtype),
            rows,
        )
        for rows, inner, cols in sizes
    ]
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        for a, b, rows in blocks:
            out = np.empty((len(a), b.shape[1]), dtype)
            for lo in range(0, rows, len(a)):
                np.matmul(a[: rows - lo], b, out=out[: rows - lo])
        best = min(best, time.perf_counter() - start)
    return best


def gemm_bound(case: LavaCase) -> str:
    """The simulator's inferences per second and the dense product bound for ``case``."""
    sizes = product_sizes(case)
    f32, f64 = (case.batch() / product_seconds(sizes, dtype) for dtype in (np.float32, np.float64))
    return f"gemm_bound: float32={f32:.0f}/s float64={f64:.0f}/s"


def paths(case: LavaCase, sim_s: float) -> str:
    """Which path ran ``case`` (the compiled kernel where it built), and the numpy path's own
    inferences per second, timed alike with the kernel turned off, as the baseline."""
    if sim_native.library() is None:
        return "path=numpy (no compiled kernel)"
    os.environ[sim_native.ENV_VAR] = "0"
    sim_native.library.cache_clear()
    try:
        numpy_s, _ = time_sim(case)
    finally:
        del os.environ[sim_native.ENV_VAR]
        sim_native.library.cache_clear()
    tiles = "yes" if sim_native.tiles(sim_native.library()) else "no"
    return f"path=compiled tiles={tiles} numpy_path={case.batch() / numpy_s:.0f}/s speedup={numpy_s / sim_s:.1f}"


def cpu_with_children() -> float:
    """CPU seconds of this process and of its finished children (Lava's processes, once stopped)."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def lava_side(src: str, dst: str) -> None:
    """In the Lava interpreter: warm up, time each case one sample a run, check spikes."""
    from neurodeploy.backends.lava_worker import run_cases

    cases = read_cases(Path(src))
    warm = Netlist([Dense(weight=np.ones((2, 3), int), neuron=CubaNeuron(vth=1, du=0, dv=0))], input_shape=(3,))
    run_cases([LavaCase(warm, 2, spikes=np.ones((1, 2, 3), bool))])
    out = []
    for case in cases:
        timings: dict = {}
        start, start_cpu = time.perf_counter(), cpu_with_children()
        rec = run_cases([case], group_size=1, timings=timings)[0]
        total, cpu = time.perf_counter() - start, cpu_with_children() - start_cpu
        sim = simulate(case.net, case.steps, spikes=case.spikes, bias=case.bias, reset_interval=case.reset_interval)
        same = all(np.array_equal(rec.s[i], sim.s[i]) for i in sim.s)
        out.append({"total": total, "cpu": cpu, "steps": timings["steps"], "samples": rec.batch, "equal": same})
        if case.spikes is not None and not case.net.graded:
            out[-1]["steady_steps_per_s"] = steady_rate(case, STEADY_REPEAT)
    Path(dst).write_text(json.dumps(out))


def steady_rate(case: LavaCase, repeat: int) -> float:
    """Lava's steps per second running one sample's input ``repeat`` times over in one run."""
    from neurodeploy.backends.lava_worker import run_cases

    spikes = np.tile(case.spikes[:1], (1, repeat) + (1,) * (case.spikes.ndim - 2))
    timings: dict = {}
    run_cases([LavaCase(case.net, case.steps * repeat, spikes=spikes)], group_size=1, timings=timings)
    return case.steps * repeat / timings["steps"]


def steady(measured: dict, case: LavaCase, sim_s: float) -> str:
    if "steady_steps_per_s" not in measured:
        return ""
    rate = measured["steady_steps_per_s"]
    lava_s = case.batch() * case.steps / rate
    return f" | steady: lava_steps_per_s={rate:.0f} lava_s={lava_s:.3f} ratio={lava_s / sim_s:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lava-samples", type=int, default=4, help="samples of PilotNet and the dense net Lava runs (default 4)"
    )
    parser.add_argument("--nets", default="pilotnet,pilotnet_sdnn,dense784", help="comma-separated nets to run")
    parser.add_argument("--lava", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.lava:
        lava_side(*args.lava)
        return 0
    exe = lava_python()
    if exe is None:
        print("no Lava environment: run scripts/lava-env.sh or set NEURODEPLOY_LAVA_PYTHON", file=sys.stderr)
        return 2
    makers = {
        "pilotnet": lambda samples: pilotnet_case(samples),
        "pilotnet_sdnn": lambda samples: pilotnet_sdnn_case(samples),
        "dense784": lambda samples: dense_case(samples),
    }
    chosen = args.nets.split(",")
    unknown = set(chosen) - set(makers)
    if unknown:
        print(f"unknown nets {sorted(unknown)}; choose from {sorted(makers)}", file=sys.stderr)
        return 2
    named = {name: makers[name](DENSE_SAMPLES if name == "dense784" else PILOTNET_SAMPLES) for name in chosen}
    for_lava = [makers[name](args.lava_samples) for name in chosen]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "cases.npz", Path(tmp) / "times.json"
        write_cases(src, for_lava)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        subprocess.run([exe, __file__, "--lava", str(src), str(dst)], check=True, env=env, capture_output=True)
        lava = json.loads(dst.read_text())
    for (name, case), measured in zip(named.items(), lava):
        scale = case.batch() / measured["samples"]
        sim_s, sim_cpu = time_sim(case)
        lava_s, lava_cpu, steps_s = (measured[key] * scale for key in ("total", "cpu", "steps"))
        note = f" lava_samples={measured['samples']} (scaled to {case.batch()})" if scale != 1 else ""
        print(
            f"{name} lava_s={lava_s:.3f} sim_s={sim_s:.4f} ratio={lava_s / sim_s:.0f}"
            f" | cpu: lava_s={lava_cpu:.3f} sim_s={sim_cpu:.4f} ratio={lava_cpu / sim_cpu:.0f}"
            f" | stepping only: lava_s={steps_s:.3f} ratio={steps_s / sim_s:.0f}"
            f"{steady(measured, case, sim_s)}"
            f" | batch={case.batch()} steps={case.steps}{note} spikes_equal={'yes' if measured['equal'] else 'NO'}"
            + (
                f" | inferences_per_s={case.batch() / sim_s:.0f} {paths(case, sim_s)} {gemm_bound(case)}"
                if name == "pilotnet"
                else ""
            )
            + (one_sample(case, measured["total"] / measured["samples"]) if name == "pilotnet_sdnn" else "")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

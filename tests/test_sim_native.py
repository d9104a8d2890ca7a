"""The simulator's compiled kernel against its numpy path: every spike, counter and output equal."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from neurodeploy import fixed_point as fx
from neurodeploy import sim, sim_native
from neurodeploy.conformance import generate_cases
from neurodeploy.counters import COUNTERS
from neurodeploy.netlist import Conv, CubaNeuron, Dense, Flatten, Input, Netlist

CASES = 300

pytestmark = pytest.mark.skipif(sim_native.library() is None, reason="no C compiler to build the kernel with")


TILED = sim_native.library() is not None and sim_native.tiles(sim_native.library())


@pytest.fixture
def kernel_runs(monkeypatch):
    """The runs the kernel took, as (layers, steps, layers summed in tiles)."""
    taken = []
    run = sim_native.run

    def counted(lib, layers, batch, steps, *args, **kwargs):
        taken.append((len(layers), steps, sum(bool(layer.tiles) for layer in layers)))
        return run(lib, layers, batch, steps, *args, **kwargs)

    monkeypatch.setattr(sim_native, "run", counted)
    return taken


def differences(a: sim.Recording, b: sim.Recording) -> list[str]:
    out = [
        f"s{i}" for i in a.s.keys() | b.s.keys() if i not in a.s or i not in b.s or not np.array_equal(a.s[i], b.s[i])
    ]
    out += [f"{c}: {getattr(a, c)} vs {getattr(b, c)}" for c in COUNTERS if getattr(a, c) != getattr(b, c)]
    out += [name for name in ("output_counts", "output_v") if not np.array_equal(getattr(a, name), getattr(b, name))]
    return out


def both(monkeypatch, net, steps, **kwargs) -> tuple[sim.Recording, sim.Recording]:
    """The kernel's recording and the numpy path's, of the same run."""
    native = sim.simulate(net, steps, **kwargs)
    with monkeypatch.context() as patch:
        patch.setattr(sim_native, "library", lambda: None)
        reference = sim.simulate(net, steps, **kwargs)
    return native, reference


@pytest.fixture(params=["tiles", "no tiles"])
def tiled(request, monkeypatch) -> bool:
    """Whether convolutions are summed in tiles (where the CPU multiplies them; else the test is
    skipped) or from events."""
    if request.param == "tiles" and not TILED:
        pytest.skip("this CPU or system multiplies no tiles")
    if request.param == "no tiles":
        monkeypatch.setattr(sim_native, "tiles", lambda lib: False)
    return request.param == "tiles"


def in_bytes(net: Netlist) -> Netlist:
    """``net`` with its convolutions' weights clipped to a byte (so that tiles can multiply them)."""
    low, high = sim_native.TILE_RANGE
    layers = [
        dataclasses.replace(layer, weight=layer.weight.clip(low, high - 1)) if layer.kind == "conv" else layer
        for layer in net.layers
    ]
    return dataclasses.replace(net, layers=layers)


def test_kernel_equals_numpy_on_random_netlists(monkeypatch, kernel_runs, tiled):
    """The conformance generator's CUBA netlists (every other one under Loihi 2's run conventions):
    the kernel takes those without delays or grouped convolutions, fed binary spikes. With tiles,
    the convolutions' weights are clipped to a byte, so that tiles sum them."""
    seen = {"wraps": 0, "saturations": 0, "spiking": 0, "kinds": set()}
    for k, case in enumerate(generate_cases(CASES, seed=21)):
        if tiled:
            case = dataclasses.replace(case, net=in_bytes(case.net))
        before = len(kernel_runs)
        native, reference = both(
            monkeypatch,
            case.net,
            case.steps,
            spikes=case.spikes,
            bias=case.bias,
            reset_interval=case.reset_interval,
            conventions=fx.CONVENTIONS[k % 2],
        )
        assert not differences(native, reference), (k, differences(native, reference))
        if len(kernel_runs) > before:
            seen["wraps"] += sum(native.u_wraps.values())
            seen["saturations"] += sum(native.v_saturations.values())
            seen["spiking"] += native.spike_count[case.net.neuron_layers[-1]] > 0
            seen["kinds"] |= {layer.kind for layer in case.net.layers}
    assert len(kernel_runs) > CASES // 3
    assert (sum(run[2] for run in kernel_runs) > CASES // 10) == tiled  # convolutions summed in tiles
    assert seen["kinds"] >= {"dense", "conv", "flatten"}
    assert seen["wraps"] > 0 and seen["saturations"] > 0  # the rules' 32- and 24-bit edges, taken
    assert seen["spiking"] > len(kernel_runs) // 3  # the reference spikes


def wide_net(rng, big: int) -> Netlist:
    """Input (per-sample bias), a wide convolution, a convolution with a wide tap, and dense layers
    whose sizes are no multiple of 16; weights up to ``big``."""
    neuron = CubaNeuron(vth=40, du=300, dv=200, bias_exp=2)
    first = Conv(rng.integers(-big, big + 1, (80, 3, 3, 3)), neuron, in_shape=(3, 9, 11), stride=(2, 1), padding=(1, 2))
    second = Conv(
        rng.integers(-big, big + 1, (37, 80, 2, 3)), neuron, in_shape=first.shape, dilation=(2, 1), weight_exp=-1
    )
    size = int(np.prod(second.shape))
    return Netlist(
        [
            Input((3, 9, 11), CubaNeuron(vth=10, du=4095, dv=900, bias_exp=4), np.zeros((3, 9, 11), int)),
            first,
            second,
            Flatten(),
            Dense(rng.integers(-255, 256, (130, size)), neuron, weight_exp=-6),
            Dense(rng.integers(-255, 256, (7, 130)), CubaNeuron(vth=3, du=0, dv=0), weight_exp=-3),
        ],
        reset_interval=9,
    )


@pytest.mark.parametrize("big", [20, 255])
@pytest.mark.parametrize("conventions", fx.CONVENTIONS)
def test_kernel_equals_numpy_on_wide_layers(monkeypatch, kernel_runs, big, conventions, tiled):
    """Rows of several chunks, inputs that mostly spike (the silent ones are taken from the sum of
    all), tails of n % 16, and per-sample bias; with weights up to 255 the second convolution's sums
    may pass int16 (summed in int32), with weights up to 20 none does. In tiles: 80 outputs in two
    groups of tiles, and 37 in three tiles of 13 (each row's last tile reaching into the next row)."""
    rng = np.random.default_rng(big)
    net = wide_net(rng, big)
    bias = rng.integers(-30, 200, (5, 3, 9, 11))
    native, reference = both(monkeypatch, net, 20, bias=bias, conventions=conventions)
    assert len(kernel_runs) == 1 and not differences(native, reference)
    assert kernel_runs[0][2] == (2 if tiled and big == 20 else 0)  # weights past a byte: from events
    rates = [native.s[i].mean() for i in net.neuron_layers]
    assert rates[0] > 0.5 and all(rate > 0 for rate in rates)  # the input mostly spikes; every layer spikes


def test_kernel_takes_binary_input_spikes_and_records_nothing(monkeypatch, kernel_runs):
    rng = np.random.default_rng(3)
    net = Netlist(
        [
            Conv(rng.integers(-9, 10, (5, 2, 3, 3)), CubaNeuron(vth=5, du=100, dv=100), in_shape=(2, 6, 6)),
            Flatten(),
            Dense(rng.integers(-50, 60, (4, 80)), CubaNeuron(vth=20, du=0, dv=4096)),
        ],
        input_shape=(2, 6, 6),
    )
    spikes = (rng.random((3, 12, 2, 6, 6)) < 0.7).astype(np.uint8)
    native, reference = both(monkeypatch, net, 12, spikes=spikes, record=())
    assert len(kernel_runs) == 1 and not differences(native, reference)
    assert native.s == {} and native.output_counts.any()


@pytest.mark.parametrize(
    "why",
    ["u recorded", "integer drive", "delays"],
)
def test_kernel_declines_what_it_does_not_compute(monkeypatch, kernel_runs, why):
    rng = np.random.default_rng(4)
    neuron = CubaNeuron(vth=5, du=100, dv=100)
    dense = Dense(rng.integers(-9, 10, (4, 6)), neuron, delay=rng.integers(0, 3, (4, 6)) if why == "delays" else None)
    net = Netlist([dense], input_shape=(6,))
    spikes = rng.integers(0, 3 if why == "integer drive" else 2, (2, 8, 6))
    record = ("s", "u") if why == "u recorded" else ("s",)
    native, reference = both(monkeypatch, net, 8, spikes=spikes, record=record)
    assert kernel_runs == [] and not differences(native, reference)


def test_no_compiler_falls_back_to_numpy(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    sim_native.library.cache_clear()
    try:
        assert sim_native.library() is None
        net = Netlist([Dense(np.full((2, 3), 9), CubaNeuron(vth=4, du=0, dv=0))], input_shape=(3,))
        rec = sim.simulate(net, 5, spikes=np.ones((1, 5, 3), bool))
        assert rec.s[0].sum() > 0
    finally:
        sim_native.library.cache_clear()


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setenv(sim_native.ENV_VAR, "0")
    sim_native.library.cache_clear()
    try:
        assert sim_native.library() is None
    finally:
        sim_native.library.cache_clear()


def test_built_once_into_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    sim_native.library.cache_clear()
    try:
        assert sim_native.library() is not None
        built = sorted(p.name for p in (tmp_path / "neurodeploy" / "native").iterdir())
        assert len(built) == 1 and built[0].startswith("sim_native-") and built[0].endswith(".so")  # no leftovers
    finally:
        sim_native.library.cache_clear()


def test_portable_build_equals_numpy(monkeypatch, tmp_path, kernel_runs):
    """Built for a CPU without AVX-512 (x86-64-v2: SSE4.2), the kernel's portable branches run."""
    if sim_native.platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("an x86-64 target")
    flags = tuple(flag for flag in sim_native.FLAGS if flag != "-march=native") + ("-march=x86-64-v2",)
    monkeypatch.setattr(sim_native, "FLAGS", flags)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    sim_native.library.cache_clear()
    try:
        assert sim_native.library() is not None
        rng = np.random.default_rng(12)
        net = wide_net(rng, 255)
        native, reference = both(monkeypatch, net, 14, bias=rng.integers(-30, 200, (3, 3, 9, 11)))
        assert len(kernel_runs) == 1 and not differences(native, reference)
        assert native.spike_count[net.neuron_layers[-1]] > 0
    finally:
        sim_native.library.cache_clear()


def test_an_interrupt_ends_a_long_kernel_run_at_its_next_layer():
    """Ctrl-C while the kernel's threads run: they stop at their next layer, and the interrupt
    reaches the caller within a second, not at the end of the run."""
    script = (
        "import numpy as np, sys, time\n"
        "from neurodeploy import sim, sim_native\n"
        "from neurodeploy.netlist import CubaNeuron, Dense, Netlist\n"
        "layers = [Dense(np.full((2000, 2000), 3), CubaNeuron(vth=1, du=0, dv=0)) for _ in range(4)]\n"
        "net = Netlist(layers, input_shape=(2000,))\n"
        "spikes = np.random.default_rng(0).random((64, 400, 2000)) < 0.5  # minutes of sums\n"
        "assert sim_native.library() is not None\n"
        "print('running', flush=True)\n"
        "try:\n"
        "    sim.simulate(net, 400, spikes=spikes, record=())\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', time.perf_counter(), flush=True)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "running"
    time.sleep(1.5)
    sent = time.perf_counter()
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    word, when = out.split()
    assert word == "interrupted" and float(when) - sent < 1.0


def test_a_last_layer_wider_than_every_input(monkeypatch, kernel_runs):
    """A padded convolution of 1 input channel onto far more neurons than any layer's input."""
    neuron = CubaNeuron(vth=0, du=0, dv=0)
    net = Netlist(
        [
            Input((1, 4, 4), neuron, np.full((1, 4, 4), 5)),
            Conv(np.ones((3, 1, 3, 3), int), neuron, in_shape=(1, 4, 4), padding=(60, 60)),
        ]
    )
    native, reference = both(monkeypatch, net, 3)
    assert len(kernel_runs) == 1 and not differences(native, reference)
    assert native.s[1].any()

"""The torch simulator against the numpy one: every record and counter equal, on CPU torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from neurodeploy import (  # noqa: E402
    cli,
    sim_torch,
)
from neurodeploy import fixed_point as fx  # noqa: E402
from neurodeploy.conformance import generate_cases, run_conformance  # noqa: E402
from neurodeploy.counters import COUNTERS  # noqa: E402
from neurodeploy.netlist import Conv, CubaNeuron, Dense, Flatten, Input, Netlist  # noqa: E402
from neurodeploy.sim import RECORDABLE, simulate  # noqa: E402

CASES = 240
GRADED_CASES = 60


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small tensors: torch's thread pool only contends for the shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def differences(a, b) -> list[str]:
    """What differs between two recordings: arrays (shape, dtype, values), counters, output counts."""
    out = []
    for name in RECORDABLE:
        mine, theirs = getattr(a, name), getattr(b, name)
        if mine.keys() != theirs.keys():
            out.append(f"{name}: layers {sorted(mine)} vs {sorted(theirs)}")
        for i in mine.keys() & theirs.keys():
            x, y = mine[i], theirs[i]
            if x.shape != y.shape or x.dtype != y.dtype or not np.array_equal(x, y):
                out.append(f"{name}{i}: {x.shape} {x.dtype} vs {y.shape} {y.dtype}")
    counters = COUNTERS + ("message_bits",)
    out += [f"{c}: {getattr(a, c)} vs {getattr(b, c)}" for c in counters if getattr(a, c) != getattr(b, c)]
    out += [name for name in ("output_counts", "output_v") if not np.array_equal(getattr(a, name), getattr(b, name))]
    return out


def run_both(net, steps, **kwargs):
    return simulate(net, steps, **kwargs), sim_torch.simulate(net, steps, device="cpu", **kwargs)


def same_on_both(k: int, case):
    """Conformance case k on both simulators, every variable recorded, under the conventions k picks
    (Loihi 2's for odd k); numpy's recording, once the two are checked equal."""
    ours, theirs = run_both(
        case.net,
        case.steps,
        spikes=case.spikes,
        bias=case.bias,
        record=RECORDABLE,
        reset_interval=case.reset_interval,
        conventions=fx.CONVENTIONS[k % 2],
    )
    assert not differences(ours, theirs), (k, differences(ours, theirs))
    return ours


def test_torch_equals_numpy_on_random_netlists():
    """The conformance generator's netlists: every layer kind, sign mode, delays, wraps and saturations;
    every other one under Loihi 2's run conventions."""
    cases = generate_cases(CASES, seed=5)
    seen = {"wraps": 0, "saturations": 0, "spikes": 0, "kinds": set(), "modes": set(), "delays": 0}
    for k, case in enumerate(cases):
        ours = same_on_both(k, case)
        seen["wraps"] += sum(ours.u_wraps.values())
        seen["saturations"] += sum(ours.v_saturations.values())
        seen["spikes"] += int(ours.spike_count[case.net.neuron_layers[-1]] > 0)
        seen["kinds"] |= {layer.kind for layer in case.net.layers}
        seen["modes"] |= {
            (layer.kind, fx.sign_mode(layer.weight)) for layer in case.net.layers if hasattr(layer, "weight")
        }
        seen["delays"] += sum(getattr(layer, "delay", None) is not None for layer in case.net.layers)
    assert seen["kinds"] == {"input", "dense", "conv", "flatten"}
    assert {m for kind, m in seen["modes"] if kind == "dense"} == {"exc", "inh", "mixed"}
    assert {m for kind, m in seen["modes"] if kind == "conv"} >= {"exc", "mixed"}
    assert seen["wraps"] > 0 and seen["saturations"] > 0 and seen["delays"] > 0
    assert seen["spikes"] > CASES // 3  # the reference spikes: the output layer spikes in most cases


@pytest.mark.parametrize("kind", ["sdnn", "recurrent"])
def test_torch_equals_numpy_on_sigma_delta_and_recurrent_netlists(kind):
    """The conformance generator's sigma-delta netlists (extreme thresholds, message bits, spike
    exponents, saturating sums) and its recurrent ones (CUBA and sigma-delta), both run conventions:
    messages, sigma, act, u, v, the recurrent input and every counter equal numpy's."""
    cases = generate_cases(GRADED_CASES, seed=6, kind=kind)
    sent = fed_back = 0  # cases whose output layer sent messages; recurrent layers whose own reached them
    for k, case in enumerate(cases):
        ours = same_on_both(k, case)
        sent += ours.spike_count[case.net.neuron_layers[-1]] > 0
        fed_back += sum(
            bool(ours.s[i][:, :-1].any()) for i, layer in enumerate(case.net.layers) if layer.kind == "dense_rec"
        )
    assert sent > GRADED_CASES // 2
    assert kind != "recurrent" or fed_back >= GRADED_CASES // 2
    if kind == "sdnn":
        assert sum(case.net.graded for case in cases) == GRADED_CASES


def test_pilotnet_sdnn_output_exact_on_torch(conformance_dir):
    """lava-dl's golden PilotNet SDNN output, on the torch path."""
    from neurodeploy.exporters.netx import read_netx

    folder = conformance_dir / "gts/pilotnet_sdnn"
    net = read_netx(folder / "network.net")
    steps = len(net.neuron_layers)
    image = np.load(folder / "input.npy").transpose(3, 2, 1, 0)  # (x, y, f, t) -> (t, C, H, W)
    rec = sim_torch.simulate(net, steps, spikes=np.repeat(image[None], steps, axis=1).astype(np.int64))
    golden = np.load(folder / "output.npy")
    assert np.abs(golden).sum() > 0 and np.array_equal(rec.s[net.neuron_layers[-1]][0].T, golden)


@pytest.mark.parametrize("layer", ["dense", "conv"])
def test_graded_input_into_the_first_layer(layer):
    rng = np.random.default_rng(8)
    neuron = CubaNeuron(vth=300, du=100, dv=50)
    if layer == "dense":
        net = Netlist([Dense(rng.integers(-60, 60, (9, 12)), neuron, weight_exp=-2)], input_shape=(12,))
        spikes = rng.integers(-5, 40, (2, 10, 12)) * (rng.random((2, 10, 12)) < 0.5)
    else:
        net = Netlist(
            [
                Conv(rng.integers(-90, 90, (4, 2, 3, 3)), neuron, padding=(1, 1), weight_exp=3),
                Flatten(),
                Dense(rng.integers(0, 40, (5, 4 * 5 * 6)), neuron),
            ],
            input_shape=(2, 5, 6),
        )
        spikes = rng.integers(0, 30, (2, 10, 2, 5, 6))
    ours, theirs = run_both(net, 10, spikes=spikes, record=RECORDABLE)
    assert ours.spike_count[0] > 0 and not differences(ours, theirs)


def test_sums_beyond_float64_run_in_int64_on_the_cpu():
    """Payloads of 2**39 + 1 into 300 weights of 255: sums past 2**53, whose low 32 bits (kept by u's
    int32 wrap) float64 would round away."""
    net = Netlist([Dense(np.full((3, 300), 255), CubaNeuron(vth=2**16, du=0, dv=0))], input_shape=(300,))
    spikes = np.full((1, 4, 300), 2**39 + 1)
    ours, theirs = run_both(net, 4, spikes=spikes, record=RECORDABLE)
    assert not differences(ours, theirs) and sum(ours.u_wraps.values()) > 0


def test_pilotnet_on_loihi2_conventions(conformance_dir):
    """lava-dl's PilotNet, its golden image as bias, 24 steps with resets every 16, as the chip runs it."""
    from neurodeploy.exporters.netx import read_netx

    folder = conformance_dir / "gts" / "pilotnet_lif"
    image = np.load(folder / "image.npy").transpose(2, 1, 0).astype(np.int64)
    ours, theirs = run_both(
        read_netx(folder / "network.net"), 24, bias=image, record=RECORDABLE, reset_interval=16, conventions="loihi2"
    )
    assert ours.spike_count[9] > 0 and not differences(ours, theirs)  # the last layer stays silent


def test_input_layer_with_bias_per_sample():
    rng = np.random.default_rng(9)
    net = Netlist(
        [
            Input((2, 4, 4), CubaNeuron(vth=20, du=4095, dv=10), np.zeros((2, 4, 4), int)),
            Conv(rng.integers(0, 50, (3, 2, 2, 2)), CubaNeuron(vth=40, du=0, dv=0), bias=np.array([1, 2, 3])),
        ]
    )
    ours, theirs = run_both(net, 12, bias=rng.integers(0, 3000, (3, 2, 4, 4)), record=("s", "v"))
    assert ours.spike_count[1] > 0 and not differences(ours, theirs)


def test_conformance_and_run_take_a_device(tmp_path):
    """`conformance --device cpu` compares the torch path; `run --device cpu` saves numpy's arrays."""

    def numpy_reference(cases):
        return [
            simulate(c.net, c.steps, spikes=c.spikes, bias=c.bias, record=c.record, reset_interval=c.reset_interval)
            for c in cases
        ]

    assert run_conformance(20, seed=2, reference=numpy_reference, device="cpu").ok
    from neurodeploy.exporters.netx import write_netx

    rng = np.random.default_rng(4)
    net = Netlist([Dense(rng.integers(0, 90, (7, 10)), CubaNeuron(vth=100, du=200, dv=100))], input_shape=(10,))
    write_netx(net, tmp_path / "net.net")
    np.save(tmp_path / "in.npy", rng.integers(0, 2, (3, 9, 10)).astype(np.int8))
    for name, extra in (("numpy.npz", []), ("torch.npz", ["--device", "cpu"])):
        assert (
            cli.main(
                [
                    "run",
                    str(tmp_path / "net.net"),
                    "--steps",
                    "9",
                    "--input",
                    str(tmp_path / "in.npy"),
                    "-o",
                    str(tmp_path / name),
                ]
                + extra
            )
            == 0
        )
    with np.load(tmp_path / "numpy.npz") as a, np.load(tmp_path / "torch.npz") as b:
        assert a.files == b.files and all(np.array_equal(a[f], b[f]) for f in a.files)
        assert a["spike_count"].sum() > 0


def test_a_missing_device_is_refused(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is present here")
    net = Netlist([Dense(np.ones((2, 3), int), CubaNeuron(vth=1, du=0, dv=0))], input_shape=(3,))
    from neurodeploy.exporters.netx import write_netx

    write_netx(net, tmp_path / "net.net")
    np.save(tmp_path / "in.npy", np.ones((4, 3), np.int8))
    args = ["run", str(tmp_path / "net.net"), "--steps", "4", "--input", str(tmp_path / "in.npy")]
    for device, message in [
        ("cuda", "--device cuda: torch finds no CUDA device"),
        ("gpu", "--device gpu: the torch simulator runs on cpu, cuda or cuda:N"),
    ]:
        assert cli.main([*args, "--device", device, "-o", str(tmp_path / "o.npz")]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "o.npz").exists()


def test_numpy_simulator_does_not_import_torch():
    code = (
        "import sys; from neurodeploy.simulators import simulator; from neurodeploy import conformance; "
        "import neurodeploy.commands.run; "
        "simulator(None); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"

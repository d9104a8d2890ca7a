"""The ONNX export reproduces the simulator's spikes exactly in onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from neurodeploy.conformance import random_case  # noqa: E402
from neurodeploy.errors import InputFileError  # noqa: E402
from neurodeploy.exporters.onnx import OnnxExportError, run_onnx, write_onnx  # noqa: E402
from neurodeploy.netlist import Conv, CubaNeuron, Dense, Input, Netlist  # noqa: E402
from neurodeploy.sim import simulate  # noqa: E402

BATCH = 100


def _inputs(rng: np.random.Generator, net: Netlist, steps: int) -> dict:
    """A batch of inputs: binary spikes, or per-sample bias and integer drive for an input layer."""
    first = net.layers[0]
    if not isinstance(first, Input):
        return {"spikes": rng.random((BATCH, steps) + net.input_shape) < rng.uniform(0.05, 0.6)}
    shape = (BATCH, steps) + tuple(first.shape)
    drive = rng.integers(-(2**19), 2**19 + 1, shape) * (rng.random(shape) < 0.3)
    return {"spikes": drive, "bias": rng.integers(-300, 301, (BATCH,) + tuple(first.shape))}


def _assert_same_spikes(out: dict, rec, net: Netlist) -> None:
    for i in net.neuron_layers:
        np.testing.assert_array_equal(out[f"spikes_{i}"], rec.s[i], err_msg=f"layer {i}")
    np.testing.assert_array_equal(out["output_counts"], rec.output_counts)
    np.testing.assert_array_equal(out["output_v"], rec.output_v)


def test_random_netlists_match_simulator_exactly(tmp_path):
    """Dense, conv (groups, dilation, padding), flatten, delays, biases, negative exponents,
    staggered resets and input layers: every spike of every layer, 100 samples a net."""
    rng = np.random.default_rng(7)
    wraps = saturations = resets = 0
    for k in range(12):
        case = random_case(rng)
        net, steps = case.net, case.steps
        feeds = _inputs(rng, net, steps)
        path = tmp_path / f"net{k}.onnx"
        write_onnx(net, path, steps)
        rec = simulate(net, steps, **feeds)
        _assert_same_spikes(run_onnx(path, **feeds), rec, net)
        wraps += sum(rec.u_wraps.values())
        saturations += sum(rec.v_saturations.values())
        resets += net.reset_interval is not None
    assert wraps and saturations and resets, "the random nets must reach u's wrap, v's saturation and resets"


def test_model_is_valid_and_integer(tmp_path):
    rng = np.random.default_rng(1)
    net = Netlist(
        [
            Conv(weight=rng.integers(-9, 10, (3, 2, 3, 3)), neuron=CubaNeuron(vth=3, du=500, dv=100), padding=(1, 1)),
            Dense(weight=rng.integers(-90, 90, (4, 3 * 5 * 5)), neuron=CubaNeuron(vth=2, du=4095, dv=0), weight_exp=-3),
        ],
        input_shape=(2, 5, 5),
        reset_interval=4,
    )
    path = tmp_path / "net.onnx"
    write_onnx(net, path, steps=6)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in model.graph.node].count("Loop") == 1
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16}
    assert all(t.data_type not in floats for t in model.graph.initializer)
    assert [i.name for i in model.graph.input] == ["spikes"]
    assert {o.name for o in model.graph.output} == {"spikes_0", "spikes_1", "output_counts", "output_v"}


def test_input_layer_defaults_to_its_own_bias(tmp_path):
    net = Netlist(
        [
            Input(shape=(6,), neuron=CubaNeuron(vth=1, du=4095, dv=0, bias_exp=6), bias=np.arange(-2, 4)),
            Dense(weight=np.eye(6, dtype=int) * 100, neuron=CubaNeuron(vth=30, du=4095, dv=0)),
        ]
    )
    path = tmp_path / "net.onnx"
    write_onnx(net, path, steps=12)
    _assert_same_spikes(run_onnx(path), simulate(net, 12), net)
    per_sample = np.array([[5, 0, 0, 0, 0, 1], [0, 0, 9, 0, 0, 0]])
    _assert_same_spikes(run_onnx(path, bias=per_sample), simulate(net, 12, bias=per_sample), net)


def test_pilotnet_matches_simulator(conformance_dir, tmp_path):
    """PilotNet from lava-dl's netx file, the image as the input layer's bias, resets every 16 steps."""
    read_netx = pytest.importorskip("neurodeploy.exporters.netx").read_netx
    gts = conformance_dir / "gts" / "pilotnet_lif"
    net = read_netx(gts / "network.net")
    net.reset_interval = 16
    image = np.load(gts / "image.npy").transpose(2, 1, 0)  # (x, y, f) -> (C, H, W)
    path = tmp_path / "pilotnet.onnx"
    write_onnx(net, path, steps=16)
    rec = simulate(net, 16, bias=image)
    _assert_same_spikes(run_onnx(path, bias=image), rec, net)
    assert rec.spike_count[1] > 0


def test_bad_inputs_and_overflow_are_refused(tmp_path):
    net = Netlist([Dense(weight=np.ones((2, 3), int), neuron=CubaNeuron(vth=1, du=0, dv=0))], input_shape=(3,))
    path = tmp_path / "net.onnx"
    write_onnx(net, path, steps=4)
    with pytest.raises(InputFileError, match="do not fit"):
        run_onnx(path, spikes=np.zeros((1, 3, 3), int))
    with pytest.raises(InputFileError, match="takes input spikes"):
        run_onnx(path)
    with pytest.raises(InputFileError, match="no input layer"):
        run_onnx(path, spikes=np.zeros((1, 4, 3), int), bias=np.zeros(3, int))
    huge = Netlist(
        [Conv(weight=np.full((1, 1, 2, 2), 2**40), neuron=CubaNeuron(vth=1, du=0, dv=0))], input_shape=(1, 3, 3)
    )
    with pytest.raises(OnnxExportError, match="overflow int64"):
        write_onnx(huge, tmp_path / "huge.onnx", steps=2)
    assert not (tmp_path / "huge.onnx").exists()


def test_input_layer_bias_for_a_batch_without_drive(tmp_path):
    """A batch of biases with the one-sample default drive (as the direct encoding runs)."""
    rng = np.random.default_rng(3)
    net = Netlist(
        [
            Input(shape=(128,), neuron=CubaNeuron(vth=200, du=1364, dv=819, bias_exp=6), bias=np.zeros(128, int)),
            Dense(weight=rng.integers(-128, 127, (10, 128)) * 2, neuron=CubaNeuron(vth=900, du=1364, dv=819)),
        ],
        reset_interval=6,
        reset_offset=0,
    )
    path = tmp_path / "net.onnx"
    write_onnx(net, path, steps=6)
    bias = rng.integers(-100, 400, (100, 128))
    _assert_same_spikes(run_onnx(path, bias=bias), simulate(net, 6, bias=bias), net)

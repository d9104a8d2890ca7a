"""Folding and quantization: the integer network computes what the float graph does."""

from __future__ import annotations

import numpy as np
import pytest
from neurodeploy import fixed_point as fx
from neurodeploy.fold import FoldError, fold
from neurodeploy.quantize import Limits, QuantizeError, chip_decays, layer_scale, quantize, run_quantized, weight_grid
from neurodeploy.sim import conv2d


def _neuron(drive="synaptic", tau_m=4.0, tau_s=2.0, vth=1.0):
    return {
        "op": "neuron",
        "model": "cuba",
        "tau_m": tau_m,
        "tau_s": tau_s,
        "vth": vth,
        "current_decay": 1 / tau_s,
        "voltage_decay": 1 / tau_m,
        "input_scale": 1 / tau_s,
        "drive": drive,
    }


def _float_run(layers, x, steps, direct):
    """Reference: the graph's per-step equations in float64, layer by layer in the same step."""
    batch = x.shape[0]
    spikes = []
    pre = x
    for k, layer in enumerate(layers):
        n = layer.shape
        u = np.zeros((batch,) + n)
        v = np.zeros((batch,) + n)
        out = np.zeros((batch, steps) + n, dtype=bool)
        bias = layer.bias if layer.kind == "dense" else layer.bias[:, None, None]
        for t in range(steps):
            if k == 0 and direct:
                drive = _affine(layer, pre) + bias
                syn = 0.0
            else:
                drive = bias
                syn = _affine(layer, pre[:, t])
            cd = layer.neuron["current_decay"] if not (k == 0 and direct) else 1.0
            u = (1 - cd) * u + syn
            v = (1 - layer.neuron["voltage_decay"]) * v + u + drive
            s = v > layer.neuron["vth"]
            v[s] = 0
            out[:, t] = s
        spikes.append(out)
        pre = out.astype(np.float64)
    return spikes


def _affine(layer, x):
    if layer.kind == "dense":
        return x.reshape(x.shape[0], -1) @ layer.weight.T
    return conv2d(x.reshape((x.shape[0],) + layer.in_shape), layer.weight, **layer.conv_args())


def test_batchnorm_folds_into_weights_and_bias():
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(5, 3)), rng.normal(size=5)
    bn = {
        "op": "batchnorm",
        "mean": rng.normal(size=5),
        "var": rng.random(5) + 0.5,
        "gamma": rng.normal(size=5),
        "beta": rng.normal(size=5),
        "eps": 1e-5,
    }
    graph = [
        {"op": "input", "kind": "current", "shape": (3,)},
        {"op": "dense", "weight": w, "bias": b},
        bn,
        _neuron("bias"),
    ]
    (layer,) = fold(graph)
    x = rng.normal(size=(4, 3))
    z = x @ w.T + b
    expected = bn["gamma"] * (z - bn["mean"]) / np.sqrt(bn["var"] + bn["eps"]) + bn["beta"]
    np.testing.assert_allclose(x @ layer.weight.T + layer.bias, expected, rtol=1e-12)


def test_sum_pooling_folds_into_the_next_conv_and_dense():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 2, size=(3, 4, 8, 8)).astype(np.float64)
    pooled = x.reshape(3, 4, 4, 2, 4, 2).sum(axis=(3, 5))
    wc = rng.normal(size=(6, 4, 3, 3))
    graph = [
        {"op": "input", "kind": "spikes", "shape": (4, 8, 8)},
        {
            "op": "conv",
            "weight": rng.normal(size=(4, 4, 1, 1)),
            "bias": None,
            "stride": (1, 1),
            "padding": (0, 0),
            "dilation": (1, 1),
            "groups": 1,
        },
        _neuron(),
        {"op": "sumpool", "kernel": 2, "stride": 2},
        {
            "op": "conv",
            "weight": wc,
            "bias": None,
            "stride": (1, 1),
            "padding": (1, 1),
            "dilation": (1, 1),
            "groups": 1,
        },
        _neuron(),
    ]
    conv = fold(graph)[1]
    expected = conv2d(pooled, wc, stride=(1, 1), padding=(1, 1), dilation=(1, 1), groups=1) / 2.0  # input scale 1/tau_s
    got = conv2d(
        x,
        conv.weight,
        stride=conv.conv["stride"],
        padding=conv.conv["padding"],
        dilation=conv.conv["dilation"],
        groups=1,
    )
    np.testing.assert_allclose(got, expected, atol=1e-12)

    wd = rng.normal(size=(5, 4 * 4 * 4))
    graph = graph[:4] + [{"op": "flatten"}, {"op": "dense", "weight": wd, "bias": None}, _neuron()]
    dense = fold(graph)[1]
    np.testing.assert_allclose(x.reshape(3, -1) @ dense.weight.T, pooled.reshape(3, -1) @ wd.T / 2.0, atol=1e-12)
    assert dense.flatten_before and dense.in_shape == (4, 8, 8)


def test_graded_spikes_are_refused():
    graph = [
        {"op": "input", "kind": "spikes", "shape": (3,)},
        {"op": "dense", "weight": np.ones((2, 3))},
        {**_neuron(), "spike": "graded", "input_relu": True},
    ]
    with pytest.raises(FoldError, match="graded"):
        fold(graph)


def test_quantized_parameters_follow_the_documented_rules():
    rng = np.random.default_rng(3)
    w1, w2 = rng.normal(0, 0.3, size=(20, 10)), rng.normal(0, 0.3, size=(4, 20))
    graph = [
        {"op": "input", "kind": "spikes", "shape": (10,)},
        {"op": "dense", "weight": w1, "bias": rng.normal(0, 0.05, 20)},
        _neuron(),
        {"op": "dense", "weight": w2, "bias": None},
        _neuron(),
    ]
    q = quantize(fold(graph), steps=8)
    for fact, layer in zip(q.layers, q.netlist.layers):
        assert (fact.du, fact.dv) == (2047, 1024)  # tau_s = 2, tau_m = 4
        assert layer.neuron.vth == round(fact.scale / 64)  # vth = 1
        assert fact.weight_exp <= 0 and np.all(layer.weight % 2 == 0)  # mixed: even mantissas
        assert layer.weight.min() >= -256 and layer.weight.max() <= 254
    net = q.netlist
    assert net.reset_offset == 1 and net.reset_interval == 8 + 2 and net.output_window == (2, 10)


@pytest.mark.parametrize("direct", [False, True])
def test_integer_spikes_track_the_float_model(direct):
    rng = np.random.default_rng(4)
    tau = dict(tau_m=4.0, tau_s=2.0)
    graph = [
        {"op": "input", "kind": "current" if direct else "spikes", "shape": (1, 6, 6)},
        {
            "op": "conv",
            "weight": rng.normal(0, 0.6, size=(4, 1, 3, 3)),
            "bias": rng.normal(0, 0.05, 4),
            "stride": (1, 1),
            "padding": (1, 1),
            "dilation": (1, 1),
            "groups": 1,
        },
        _neuron("bias" if direct else "synaptic", **tau),
        {"op": "sumpool", "kernel": 2, "stride": 2},
        {"op": "flatten"},
        {"op": "dense", "weight": rng.normal(0, 0.5, size=(10, 36)), "bias": None},
        _neuron(**tau),
    ]
    layers = fold(graph)
    steps = 12
    x = rng.random((64, 1, 6, 6))
    inputs = x if direct else rng.random((64, steps, 1, 6, 6)) < x[:, None]
    q = quantize(layers, steps, calibration=inputs)
    for layer in layers:
        layer.conv_args = lambda lay=layer: {k: lay.conv[k] for k in ("stride", "padding", "dilation", "groups")}
    ref = _float_run(layers, inputs if direct else inputs.astype(np.float64), steps, direct)
    rec = run_quantized(q, inputs)
    net = q.netlist
    for k, i in enumerate(net.neuron_layers):
        start = k + net.reset_offset
        got = rec.s[i][:, start : start + steps].reshape(ref[k].shape)
        assert ref[k].mean() > 0.02, "the fixture must make the layer fire"
        assert np.mean(got != ref[k]) < 0.03, f"layer {k}: spikes differ on {np.mean(got != ref[k]):.2%}"


def test_threshold_out_of_range_is_an_error():
    graph = [
        {"op": "input", "kind": "spikes", "shape": (3,)},
        {"op": "dense", "weight": np.full((2, 3), 1e-9)},
        _neuron(vth=1e-13),
    ]
    with pytest.raises(QuantizeError, match="threshold"):
        quantize(fold(graph), 4, limits=Limits(vth=(0, 10)))


@pytest.mark.parametrize(
    "mode, bits, expected",
    [
        ("exc", 8, (0, 255, 1, 8)),
        ("exc", 4, (0, 240, 16, 4)),
        ("exc", 9, (0, 255, 1, 8)),
        ("inh", 3, (-224, 0, 32, 3)),
        ("mixed", 8, (-256, 254, 2, 8)),
        ("mixed", 9, (-256, 254, 1, 9)),
        ("mixed", 4, (-256, 224, 32, 4)),
        ("mixed", 2, (-256, 128, 128, 2)),
    ],
)
def test_weight_grid_keeps_the_top_bits_of_an_8_bit_mantissa(mode, bits, expected):
    grid = weight_grid(mode, Limits(weight_bits=bits))
    assert (grid.lo, grid.hi, grid.step, grid.bits) == expected
    values = np.arange(grid.lo, grid.hi + 1, grid.step)
    assert len(np.unique(values)) <= 2**bits
    np.testing.assert_array_equal(fx.dense_weights(values, grid.bits), values)  # what Lava's Dense keeps


def test_weight_grid_is_cut_to_the_mantissa_range_and_refuses_what_cannot_fit():
    grid = weight_grid("mixed", Limits(weight_bits=6, weight_mantissa=(-100, 100)))
    assert (grid.lo, grid.hi, grid.step) == (-96, 96, 8)
    with pytest.raises(QuantizeError, match=r"layer 3: no nonzero mixed-sign weight fits 1-bit weights"):
        weight_grid("mixed", Limits(weight_bits=1), "layer 3")


def _two_layer_graph(rng, bias=0.05):
    return [
        {"op": "input", "kind": "spikes", "shape": (10,)},
        {"op": "dense", "weight": rng.normal(0, 0.3, size=(20, 10)), "bias": rng.normal(0, bias, 20)},
        _neuron(),
        {"op": "dense", "weight": rng.normal(0, 0.3, size=(4, 20)), "bias": None},
        _neuron(),
    ]


@pytest.mark.parametrize("bits", [2, 4, 6, 9])
def test_every_dense_layer_holds_the_targets_weight_bits(bits):
    q = quantize(fold(_two_layer_graph(np.random.default_rng(5))), 8, limits=Limits(weight_bits=bits))
    for fact, layer in zip(q.layers, q.netlist.layers):
        assert layer.weight_bits == fact.weight_bits == bits
        assert fx.weight_bits_used(layer.weight) == bits  # the mantissas use all of them, no more
        assert len(np.unique(layer.weight)) <= 2**bits


def test_conv_weights_and_decay_and_bias_ranges_come_from_the_limits():
    rng = np.random.default_rng(6)
    graph = [
        {"op": "input", "kind": "spikes", "shape": (1, 6, 6)},
        {
            "op": "conv",
            "weight": rng.normal(0, 0.6, size=(4, 1, 3, 3)),
            "bias": rng.normal(0, 0.05, 4),
            "stride": (1, 1),
            "padding": (1, 1),
            "dilation": (1, 1),
            "groups": 1,
        },
        _neuron(),
    ]
    q = quantize(fold(graph), 8, limits=Limits(weight_bits=3, bias_exp=(0, 3), vth=(0, 5000)))
    conv = q.netlist.layers[0]
    assert conv.weight_bits == 3 and len(np.unique(conv.weight)) <= 8
    assert conv.neuron.bias_exp == 3 and q.layers[0].bias_exp == 3
    assert conv.neuron.vth <= 5000
    with pytest.raises(
        QuantizeError, match=r"layer 0 \(conv .*decay du=2047 is outside the target's range \[0, 2000\]"
    ):
        quantize(fold(graph), 8, limits=Limits(du=(0, 2000)))


def test_a_layer_whose_positive_weights_round_away_takes_the_inhibitory_grid():
    graph = [
        {"op": "input", "kind": "spikes", "shape": (3,)},
        {"op": "dense", "weight": np.array([[-1.0, -0.5, 0.01], [-0.9, -0.2, -0.7]]), "bias": None},
        _neuron(),
    ]
    q = quantize(fold(graph), 4, limits=Limits(weight_bits=4))
    layer = q.netlist.layers[0]
    assert fx.sign_mode(layer.weight) == "inh" and layer.weight_bits == 4
    np.testing.assert_array_equal(fx.dense_weights(layer.weight, 4), layer.weight)


def test_layer_scale_rounds_torch_weights_as_the_quantizer_does_with_straight_through_gradients():
    torch = pytest.importorskip("torch")
    layers = fold(_two_layer_graph(np.random.default_rng(7)))
    limits = Limits(weight_bits=4)
    q = quantize(layers, 8, limits=limits)
    for layer, fact, net_layer in zip(layers, q.layers, q.netlist.layers):
        scale = layer_scale(layer, limits=limits)
        w = torch.tensor(layer.weight, requires_grad=True)
        chip = scale.weight(w)
        np.testing.assert_allclose(chip.detach().numpy(), net_layer.weight * scale.weight_unit)
        np.testing.assert_allclose(scale.weight(layer.weight), net_layer.weight * scale.weight_unit)
        chip.sum().backward()
        np.testing.assert_array_equal(w.grad.numpy(), np.ones_like(layer.weight))
        assert scale.vth(float(layer.neuron["vth"])) * fact.scale / 64 == pytest.approx(fact.vth)
        assert chip_decays(fact.du, fact.dv) == pytest.approx(
            (layer.neuron["current_decay"], layer.neuron["voltage_decay"]), abs=1 / 8192
        )


@pytest.mark.parametrize("copies,step,lo,hi", [(2, 2, -256, 254), (3, 1, 0, 255), (4, 2, -256, 254), (5, 4, -252, 0)])
def test_split_mantissas_sums_to_the_total_on_the_grid(copies, step, lo, hi):
    from neurodeploy.quantize import split_mantissas

    rng = np.random.default_rng(copies)
    total = rng.integers(copies * lo // step, copies * hi // step + 1, (6, 50)) * step
    total[0, :4] = [copies * lo, copies * hi, 0, step if hi else -step]  # the wide grid's ends, and one step
    parts = split_mantissas(total, copies, step).reshape(6, copies, 50)
    np.testing.assert_array_equal(parts.sum(axis=1), total)
    assert parts.min() >= lo and parts.max() <= hi and np.all(parts % step == 0)
    assert np.all(parts.max(axis=1) - parts.min(axis=1) <= step)

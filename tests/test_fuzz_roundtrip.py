"""Random valid netlists through every exporter: netx and NIR read back computing the same, and the
ONNX graph reproduces the simulator. Properties drawn by hypothesis (NEURODEPLOY_FUZZ=nightly: 20x)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from neurodeploy import fixed_point as fx
from neurodeploy.exporters.netx import NetxExportError, integer_weights, read_netx, write_netx
from neurodeploy.netlist import Conv, CubaNeuron, Dense, Flatten, Input, Netlist
from neurodeploy.sim import simulate

from fuzzing import SCALE

EXAMPLES = 60
STEPS = 12
SETTINGS = settings(
    max_examples=EXAMPLES * SCALE,
    deadline=None,
    derandomize=SCALE == 1,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --------------------------------------------------------------------------- random valid netlists


def _neuron(draw, netx: bool) -> CubaNeuron:
    return CubaNeuron(
        vth=draw(st.sampled_from([0, 1, 7, 100, 4095, 2**17 - 1])),
        du=draw(st.integers(-1, 4095)),
        dv=draw(st.integers(0, 4096)),
        bias_exp=6 if netx else draw(st.integers(-8, 12)),
    )


def _bias(draw, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray | None:
    if not draw(st.booleans()):
        return None
    return rng.integers(-300, 300, shape)


def _dense_weights(draw, rng: np.random.Generator, shape: tuple[int, int], netx: bool) -> tuple[np.ndarray, int, int]:
    """(weight, weight_bits, weight_exp): for netx, integers netx encodes exactly (8 bits, exponent 0)."""
    mode = draw(st.sampled_from(["exc", "inh", "mixed"]))
    lo, hi = {"exc": (0, 255), "inh": (-255, 0), "mixed": (-128, 127)}[mode]
    weight = rng.integers(lo, hi + 1, shape)
    weight.reshape(-1)[0] = hi if mode != "inh" else lo  # never all zero
    if netx:
        return weight, 8, 0
    bits = draw(st.integers(1, 9 if mode == "mixed" else 8))
    return weight, bits, draw(st.integers(-6, 6))


@st.composite
def netlists(draw, netx: bool = False) -> Netlist:
    """Small valid netlists: input layers, (grouped, strided, dilated) convs, flattens, dense layers with
    delays and biases, and the run conventions. ``netx`` keeps to what netx stores exactly."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    spatial = draw(st.integers(0, 2)) > 0
    shape = (
        (draw(st.integers(1, 3)), draw(st.integers(2, 7)), draw(st.integers(2, 7)))
        if spatial
        else (draw(st.integers(1, 20)),)
    )
    layers: list = []
    if draw(st.booleans()):
        bias = rng.integers(-100, 100, shape)
        layers.append(Input(shape=shape, neuron=_neuron(draw, netx), bias=bias))
    in_shape = shape
    for _ in range(draw(st.integers(1, 4))):
        conv = _conv(draw, rng, shape, netx) if len(shape) == 3 and draw(st.integers(0, 3)) > 0 else None
        if conv is not None:
            layers.append(conv)
            shape = conv.shape
            continue
        if len(shape) == 3:
            layers.append(Flatten())
        n_out = draw(st.integers(1, 12))
        weight, bits, exp = _dense_weights(draw, rng, (n_out, int(np.prod(shape))), netx)
        delay = rng.integers(0, draw(st.sampled_from([1, 4, 63])), weight.shape) if draw(st.booleans()) else None
        layers.append(
            Dense(
                weight,
                _neuron(draw, netx),
                bias=_bias(draw, rng, (n_out,)),
                weight_exp=exp,
                weight_bits=bits,
                delay=delay,
                name=draw(st.sampled_from(["", "hidden", "out"])),
            )
        )
        shape = (n_out,)
    start = draw(st.integers(0, 5))
    return Netlist(
        layers,
        input_shape=None if isinstance(layers[0], Input) else in_shape,
        reset_interval=draw(st.one_of(st.none(), st.integers(1, 40))),
        reset_offset=draw(st.integers(0, 6)),
        output_window=draw(st.one_of(st.none(), st.just((start, start + draw(st.integers(0, 20)))))),
    )


def _conv(draw, rng: np.random.Generator, in_shape: tuple[int, int, int], netx: bool) -> Conv | None:
    c, h, w = in_shape
    groups = draw(st.sampled_from([g for g in (1, 2, 3) if c % g == 0]))
    out = groups * draw(st.integers(1, 3))
    k = draw(st.sampled_from([1, 3])) if not netx else draw(st.integers(1, 3))
    kernel = (k, k) if draw(st.booleans()) or not netx else (k, draw(st.integers(1, 3)))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    if any(size + 2 * p - d * (kk - 1) < 1 for size, kk, p, d in zip((h, w), kernel, padding, dilation)):
        return None
    weight = rng.integers(-20, 21, (out, c // groups) + kernel)
    layer = Conv(
        weight=weight,
        neuron=_neuron(draw, netx),
        in_shape=in_shape,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        weight_exp=draw(st.integers(0, 3)),
    )
    per_neuron = draw(st.booleans())
    layer.bias = _bias(draw, rng, layer.shape if per_neuron else (out,))
    return layer


# --------------------------------------------------------------------------- netlist equivalence


def canonical(net: Netlist) -> list:
    """What a netlist computes, layer by layer, independent of how a format encodes it: effective
    synaptic weights, per-neuron effective biases, delays, geometry, neuron constants and run conventions."""
    out: list = [
        (
            "conventions",
            net.input_shape,
            net.reset_interval if net.reset_interval else None,
            net.reset_offset,
            net.output_window,
        )
    ]
    for layer in net.layers:
        if isinstance(layer, Flatten):
            continue
        n = layer.neuron
        bias = np.zeros(layer.shape, np.int64)
        if layer.bias is not None:
            b = np.asarray(layer.bias)
            bias = bias + (b.reshape(-1, 1, 1) if b.ndim == 1 and len(layer.shape) == 3 else b)
        row = [layer.kind, tuple(layer.shape), n.vth, n.du, n.dv, fx.effective_bias(bias, n.bias_exp).tolist()]
        if isinstance(layer, Dense):
            held = fx.dense_weights(layer.weight, layer.weight_bits)
            exact = integer_weights(held, layer.weight_exp)
            row += [("exact", exact.tolist()) if exact is not None else ("shifted", held.tolist(), layer.weight_exp)]
            delay = np.zeros(layer.weight.shape, np.int64) if layer.delay is None else layer.delay
            row.append(delay.tolist())
        elif isinstance(layer, Conv):
            row += [
                (layer.weight << layer.weight_exp).tolist(),
                layer.stride,
                layer.padding,
                layer.dilation,
                layer.groups,
                layer.in_shape,
            ]
        out.append(row)
    return out


# --------------------------------------------------------------------------- properties


def _feeds(net: Netlist, seed: int, batch: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    first = net.layers[0]
    if isinstance(first, Input):
        drive = rng.integers(-3000, 3000, (batch, STEPS) + first.shape) * (
            rng.random((batch, STEPS) + first.shape) < 0.3
        )
        return {"spikes": drive, "bias": rng.integers(-300, 300, (batch,) + first.shape)}
    return {"spikes": rng.random((batch, STEPS) + net.input_shape) < 0.4}


def _kinds(net: Netlist) -> str:
    """The kinds of layer a netlist holds, and whether it has delays: hypothesis's coverage statistics."""
    kinds = {layer.kind for layer in net.layers} | {
        "delay" for layer in net.layers if getattr(layer, "delay", None) is not None
    }
    return " ".join(sorted(kinds))


def _same_run(a: Netlist, b: Netlist, feeds: dict) -> None:
    ra = simulate(a, STEPS, record=("s", "u", "v"), **feeds)
    rb = simulate(b, STEPS, record=("s", "u", "v"), **feeds)
    for i, j in zip(a.neuron_layers, b.neuron_layers):
        for name in "suv":
            np.testing.assert_array_equal(getattr(ra, name)[i], getattr(rb, name)[j], err_msg=f"{name}{i}")


@SETTINGS
@given(net=netlists(netx=True))
def test_netx_round_trip_computes_the_same(net):
    event(_kinds(net))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.net"
        try:
            write_netx(net, path)
        except NetxExportError as err:
            assert str(err).startswith("layer "), err  # a refusal names the layer
            event("refused by the netx writer")
            assume(False)
        back = read_netx(path)
    assert canonical(back) == canonical(net)
    _same_run(net, back, _feeds(net, 0))


@SETTINGS
@given(net=netlists())
def test_nir_round_trip_is_exact(net):
    pytest.importorskip("nir")
    from neurodeploy.exporters.nir import read_nir, write_nir

    event(_kinds(net))
    net.meta = {"note": "fuzz", "window": (1, 2), "scale": np.arange(3.0)}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.nir"
        write_nir(net, path)
        back = read_nir(path)
    assert canonical(back) == canonical(net)
    assert back.meta.keys() == net.meta.keys() and np.array_equal(back.meta["scale"], net.meta["scale"])


@settings(SETTINGS, max_examples=max(10, EXAMPLES * SCALE // 3))
@given(net=netlists())
def test_onnx_graph_reproduces_the_simulator(net):
    pytest.importorskip("onnxruntime")
    from neurodeploy.exporters.onnx import run_onnx, write_onnx

    feeds = _feeds(net, 1)
    rec = simulate(net, STEPS, **feeds)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "net.onnx"
        write_onnx(net, path, STEPS)
        out = run_onnx(path, **feeds)
    for i in net.neuron_layers:
        np.testing.assert_array_equal(out[f"spikes_{i}"], rec.s[i], err_msg=f"layer {i}")
    np.testing.assert_array_equal(out["output_counts"], rec.output_counts)

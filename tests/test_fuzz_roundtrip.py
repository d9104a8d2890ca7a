"""Random valid netlists through every exporter: netx and NIR read back computing the same, and the
ONNX graph reproduces the simulator. Properties drawn by hypothesis (NEURODEPLOY_FUZZ=nightly: 20x)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings

from fuzzing import SCALE, canonical, netlists
from neurodeploy.exporters.netx import NetxExportError, read_netx, write_netx
from neurodeploy.netlist import Input, Netlist
from neurodeploy.sim import simulate

EXAMPLES = 60
STEPS = 12
SETTINGS = settings(max_examples=EXAMPLES * SCALE, deadline=None, derandomize=SCALE == 1,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _feeds(net: Netlist, seed: int, batch: int = 3) -> dict:
    rng = np.random.default_rng(seed)
    first = net.layers[0]
    if isinstance(first, Input):
        drive = rng.integers(-3000, 3000, (batch, STEPS) + first.shape) * (rng.random((batch, STEPS) + first.shape) < 0.3)
        return {"spikes": drive, "bias": rng.integers(-300, 300, (batch,) + first.shape)}
    return {"spikes": rng.random((batch, STEPS) + net.input_shape) < 0.4}


def _kinds(net: Netlist) -> str:
    """The kinds of layer a netlist holds, and whether it has delays: hypothesis's coverage statistics."""
    kinds = {layer.kind for layer in net.layers} | {"delay" for layer in net.layers if getattr(layer, "delay", None) is not None}
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

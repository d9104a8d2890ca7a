"""NIR graphs from other frameworks: discretised, quantized, and run like our own models."""

from __future__ import annotations

import nir
import numpy as np
import pytest
from neurodeploy.cli import main
from neurodeploy.errors import InputFileError
from neurodeploy.export import export_model
from neurodeploy.exporters.netx import read_netx
from neurodeploy.float_model import float_model_from_nir
from neurodeploy.quantize import run_quantized
from neurodeploy.targets import load_target

DT = 1e-3


def _graph(rng, reset=0.0):
    w1, b1, w2 = rng.normal(0, 2.0, (16, 12)), rng.normal(0, 0.2, 16), rng.normal(0, 1.0, (4, 16))
    nodes = {
        "input": nir.Input(input_type=np.array([12])),
        "fc1": nir.Affine(weight=w1, bias=b1),
        "lif1": nir.CubaLIF(
            tau_syn=np.full(16, 2e-3),
            tau_mem=np.full(16, 4e-3),
            r=np.full(16, 2.0),
            v_leak=np.zeros(16),
            v_threshold=np.linspace(0.5, 1.5, 16),
            v_reset=np.full(16, reset),
            w_in=np.ones(16),
        ),
        "fc2": nir.Linear(weight=w2),
        "lif2": nir.LIF(
            tau=np.full(4, 2e-3), r=np.ones(4), v_leak=np.zeros(4), v_threshold=np.full(4, 0.3), v_reset=np.zeros(4)
        ),
        "output": nir.Output(output_type=np.array([4])),
    }
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges), (w1, b1, w2)


def _euler(params, x):
    """NIR's equations, forward Euler with DT, per neuron thresholds, layer by layer."""
    w1, b1, w2 = params
    batch, steps, _ = x.shape
    i1, v1, v2 = np.zeros((batch, 16)), np.zeros((batch, 16)), np.zeros((batch, 4))
    theta = np.linspace(0.5, 1.5, 16)
    s1, s2 = np.zeros((batch, steps, 16), bool), np.zeros((batch, steps, 4), bool)
    for t in range(steps):
        i1 = (1 - DT / 2e-3) * i1 + DT / 2e-3 * (x[:, t] @ w1.T + b1)
        v1 = (1 - DT / 4e-3) * v1 + DT / 4e-3 * 2.0 * i1
        s1[:, t] = v1 > theta
        v1[s1[:, t]] = 0
        v2 = (1 - DT / 2e-3) * v2 + DT / 2e-3 * (s1[:, t] @ w2.T)
        s2[:, t] = v2 > 0.3
        v2[s2[:, t]] = 0
    return s1, s2


def test_peer_graph_exports_and_simulates_like_its_equations(tmp_path):
    rng = np.random.default_rng(5)
    graph, params = _graph(rng)
    nir.write(tmp_path / "peer.nir", graph)
    steps = 20
    result = export_model(tmp_path / "peer.nir", load_target("loihi2"), tmp_path / "out", steps=steps, dt=DT)
    net = read_netx(result.files["netx"])
    assert net.reset_interval == steps + 2
    x = rng.random((32, steps, 12)) < 0.3
    s1, s2 = _euler(params, x.astype(np.float64))
    rec = run_quantized(result.quantized, x)
    got1 = rec.s[0][:, 1 : 1 + steps]
    assert s1.mean() > 0.05
    # The bias enters at its steady state on the chip, so the first steps may differ.
    assert np.mean(got1[:, 5:] != s1[:, 5:]) < 0.03
    got2 = rec.s[1][:, 2 : 2 + steps]
    assert s2.mean() > 0.05 and np.mean(got2[:, 5:] != s2[:, 5:]) < 0.03


def test_cli_export_of_a_nir_graph(tmp_path):
    graph, _ = _graph(np.random.default_rng(1))
    nir.write(tmp_path / "g.nir", graph)
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "g.nir"), "--steps", "8", "--dt", str(DT), "-o", str(out)]) == 0
    assert (out / "g.net").exists()
    assert main(["export", str(tmp_path / "g.nir"), "--dt", str(DT), "-o", str(tmp_path / "o2")]) == 2


def test_nonzero_reset_and_missing_dt_are_refused(tmp_path):
    graph, _ = _graph(np.random.default_rng(2), reset=0.1)
    nir.write(tmp_path / "r.nir", graph)
    with pytest.raises(InputFileError, match="v_reset"):
        float_model_from_nir(tmp_path / "r.nir", dt=DT, steps=4)
    graph, _ = _graph(np.random.default_rng(2))
    nir.write(tmp_path / "d.nir", graph)
    with pytest.raises(InputFileError, match="dt"):
        float_model_from_nir(tmp_path / "d.nir", steps=4)

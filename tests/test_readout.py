"""The membrane readout end to end: the integer network the chip runs classifies as the float model does.

A BPSA network with the ``membrane`` readout is trained briefly on digits, exported
to netx, read back, and run from the file; its output layer never fires and its
classes come from v at the window's last step, on both sides.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from neurodeploy.compare import compare_model, decode_predictions, quantized_predictions, simulate_inputs
from neurodeploy.datasets import load_dataset
from neurodeploy.export import export_model, load_float_model, quantize_model
from neurodeploy.exporters.netx import read_netx
from neurodeploy.exporters.onnx import run_onnx
from neurodeploy.netio import load_netlist
from neurodeploy.targets import load_target
from neurodeploy.train import TrainConfig, train


@pytest.fixture(scope="module")
def membrane_model(tmp_path_factory):
    result = train(
        TrainConfig(rule="bpsa", arch="64-48-10", steps=5, epochs=4, limit=500, threads=1, progress=False),
        log=lambda _: None,
        warn=lambda _: None,
    )
    path = tmp_path_factory.mktemp("readout") / "m.pt"
    torch.save(result.checkpoint, path)
    assert result.checkpoint["rule_options"]["readout"] == "membrane"
    return path


def test_decode_membrane_takes_v_at_the_windows_last_step():
    v = np.zeros((2, 4, 3), np.int64)
    v[0, 3] = [1, 5, 2]
    v[0, 1] = [9, 0, 0]  # earlier in the window: ignored
    v[1, 3] = [4, 0, 4]  # a tie: class 0
    assert decode_predictions(v, (1, 4), "membrane").tolist() == [1, 0]


def test_exported_network_classifies_as_the_float_model(membrane_model, tmp_path):
    target = load_target("loihi2")
    result = export_model(membrane_model, target, tmp_path / "out", formats=("netx", "nir", "onnx"))
    net = read_netx(result.files["netx"])
    assert net.readout == "membrane" and result.quantized.netlist.readout == "membrane"
    assert load_netlist(result.files["nir"]).readout == "membrane"
    assert net.layers[-1].neuron.vth == target.vth[1]
    fm = load_float_model(membrane_model)
    x, y = load_dataset("digits", split="test")
    comparison = compare_model(fm, quantize_model(fm, target), x, y, progress=False)
    assert np.mean(comparison.float_pred == y) > 0.8  # a trained network, not a silent one
    assert np.mean(comparison.float_pred == comparison.quant_pred) >= 0.97
    rec = simulate_inputs(net, net.output_window[1], comparison.inputs, comparison.input_kind, record=("s", "v"))
    last = net.neuron_layers[-1]
    assert not rec.s[last].any() and np.abs(rec.output_v).max() > 0  # the readout never fires
    from_file = decode_predictions(rec.v[last], net.output_window, "membrane")
    assert np.array_equal(from_file, comparison.quant_pred)
    assert np.array_equal(quantized_predictions(rec, net), from_file)
    onnx_out = run_onnx(result.files["onnx"], bias=comparison.inputs[:64])
    assert np.array_equal(onnx_out["output_v"].argmax(axis=1), from_file[:64])

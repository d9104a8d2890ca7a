"""Quantization-aware training: the network trained is the integer network exported.

Short runs on digits for a loihi2 with 4-bit weights: the checkpoint records the
frozen scales, export for that target keeps them, and the integer netlist's
mantissas, thresholds and decays are exactly those of the trained forward pass.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from neurodeploy.compare import compare_model
from neurodeploy.datasets import load_dataset
from neurodeploy.export import export_model, load_float_model, quantize_model
from neurodeploy.models import load_checkpoint
from neurodeploy.models.qat import neuron_layers
from neurodeploy.netlist import Dense
from neurodeploy.targets import load_target
from neurodeploy.train import TrainConfig, main, train

BITS = 4


def four_bit():
    return dataclasses.replace(load_target("loihi2"), name="loihi2-w4", weight_bits=BITS)


@pytest.fixture(scope="module", params=["bpsa", "tssl"])
def qat_model(request, tmp_path_factory):
    cfg = TrainConfig(
        rule=request.param,
        arch="64-32-10",
        steps=5,
        epochs=6,
        limit=600,
        threads=1,
        progress=False,
        qat=True,
        target=four_bit(),
    )
    result = train(cfg, log=lambda _: None, warn=lambda _: None)
    path = tmp_path_factory.mktemp("qat") / "m.pt"
    torch.save(result.checkpoint, path)
    return path


def test_checkpoint_records_the_training(qat_model):
    ckpt = torch.load(qat_model, weights_only=True)
    assert ckpt["qat"]["target"] == "loihi2-w4" and ckpt["qat"]["limits"]["weight_bits"] == BITS
    assert len(ckpt["qat"]["scales"]) == 2 and ckpt["training"]["qat"] is True
    model, _ = load_checkpoint(qat_model)
    assert all(layer.quantizer is not None and layer.quantizer.fixed is not None for layer in neuron_layers(model))


def test_export_gives_the_network_training_used(qat_model, tmp_path):
    target = four_bit()
    result = export_model(qat_model, target, tmp_path / "out")
    q = result.quantized
    model, meta = load_checkpoint(qat_model)
    layers = neuron_layers(model)
    dense = q.netlist.layers[-1]
    assert isinstance(dense, Dense) and dense.weight_bits == BITS
    scale = layers[-1].quantizer.fixed
    s_in = layers[-1].quantizer.input_scale(layers[-1])
    mant = layers[-1].synapse.weight.detach().double().numpy() * s_in / scale.weight_unit
    np.testing.assert_allclose(mant, np.rint(mant), atol=1e-4)  # the trained weights lie on the grid (float32)
    np.testing.assert_array_equal(dense.weight, np.rint(mant).astype(np.int64))  # and are the exported ones
    assert len(np.unique(dense.weight)) <= 2**BITS
    for k, layer in enumerate(layers):
        fixed = layer.quantizer.fixed
        assert q.layers[k].scale == fixed.lam and q.layers[k].weight_exp == fixed.weight_exp
    hidden = q.netlist.layers[q.netlist.neuron_layers[0]].neuron
    assert hidden.vth == int(np.rint(layers[0].rule.neuron.vth * layers[0].quantizer.fixed.lam / 64))
    if meta["rule"] == "bpsa":
        assert q.netlist.readout == "membrane"
    else:  # trained with the decays the integers give: tau_s = 4096 / 1365, tau_m = 4096 / 819
        assert (hidden.du, hidden.dv) == (1364, 819)
        assert meta["neuron"]["tau_s"] == pytest.approx(4096 / 1365) and meta["neuron"]["tau_m"] == pytest.approx(
            4096 / 819
        )
    fm = load_float_model(qat_model)
    x, y = load_dataset("digits", split="test")
    comparison = compare_model(fm, q, x, y, progress=False)
    assert np.mean(comparison.float_pred == y) > 0.6
    assert np.mean(comparison.float_pred == comparison.quant_pred) >= 0.98


def test_another_target_is_quantized_afresh(qat_model):
    fm = load_float_model(qat_model)
    q8 = quantize_model(fm, load_target("loihi2"), calibrate=0)
    assert q8.netlist.layers[-1].weight_bits == 8


@pytest.mark.parametrize(
    "args, words",
    [
        (["--qat"], "--qat needs --target"),
        (["--target", "loihi2"], "add --qat"),
        (["--qat", "--target", "loihi2", "--arch", "64-16bn-10"], "neuron layer 1: batch norm"),
        (["--qat", "--target", "loihi2", "--rule", "bpsa", "--variant", "graded"], "not deployable"),
    ],
)
def test_bad_qat_arguments_exit_2(tmp_path, capsys, args, words):
    assert main([*args, "--epochs", "1", "--limit", "32", "--no-progress", "-o", str(tmp_path / "m.pt")]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()

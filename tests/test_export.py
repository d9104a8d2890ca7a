"""The export command: checked, all-or-nothing, reproducible by every consumer."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from neurodeploy.cli import main
from neurodeploy.datasets import load_dataset
from neurodeploy.export import encoded_inputs, export_model, load_float_model, quantize_model
from neurodeploy.exporters.netx import read_netx
from neurodeploy.models import make_rule, parse_arch, save_checkpoint
from neurodeploy.models.network import SpikingNetwork
from neurodeploy.quantize import run_quantized
from neurodeploy.sim import simulate
from neurodeploy.targets import load_target

from datafiles import mnist_folder

SMALL_TARGET = """
name = "tiny-core"
description = "a test target: small cores that may not be split"
[system]
chips = 1
cores_per_chip = 4
allow_split = false
[core]
neurons = 1024
input_axons = 4096
[synapse]
weight_bits = 8
weight_mantissa = [-256, 255]
weight_exp = [-7, 7]
[neuron]
vth = [0, 131071]
bias_mantissa = [-4096, 4095]
bias_exp = [0, 7]
du = [0, 4095]
dv = [0, 4095]
"""


def _checkpoint(path, arch="64-32-10", rule="tssl", encoding="direct", seed=0):
    torch.manual_seed(seed)
    model = SpikingNetwork(
        parse_arch(arch), (1, 8, 8), make_rule(rule), "current" if encoding == "direct" else "spikes"
    )
    for p in model.parameters():
        torch.nn.init.normal_(p, 0.0, 0.4)
    save_checkpoint(
        path,
        model,
        encoding={"name": encoding},
        steps=6,
        dataset="digits",
        split={},
        float_test_accuracy=0.0,
        seed=seed,
    )
    return path


def test_over_limit_network_names_every_violation_and_writes_nothing(tmp_path):
    target_file = tmp_path / "tiny.toml"
    target_file.write_text(SMALL_TARGET)
    ckpt = _checkpoint(tmp_path / "big.pt", arch="64-2000-5000-10", rule="bpsa")
    out = tmp_path / "out"
    code = main(["export", str(ckpt), "--target", str(target_file), "-o", str(out), "--calibrate", "0"])
    assert code == 2
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(Exception) as err:
        export_model(ckpt, load_target(target_file), out, calibrate=0)
    text = str(err.value)
    assert "big.pt" in text and "tiny-core" in text
    assert "layer 0" in text and "2000" in text and "1024" in text  # neurons over a core, no split
    assert "layer 1" in text and "5000" in text  # the second oversized layer is named too
    assert "layer 2" in text and "fan-in" in text  # 5000 inputs exceed 4096 input axons


def test_export_writes_consistent_files_and_refuses_to_overwrite(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "m.pt")
    out = tmp_path / "out"
    assert main(["export", str(ckpt), "--target", "loihi2", "-o", str(out), "--calibrate", "32"]) == 0
    summary = json.loads((out / "export.json").read_text())
    net = read_netx(out / "m.net")
    assert summary["reset_interval"] == net.reset_interval == 6 + net.latency
    assert tuple(summary["output_window"]) == net.output_window
    assert [layer["vth"] for layer in summary["layers"]] == [net.layers[i].neuron.vth for i in net.neuron_layers]
    assert summary["design_rules"]["passed"]
    assert summary["conventions"] == "loihi2"
    call = f"netx.hdf5.Network(net_config={str(out / 'm.net')!r}, reset_interval={net.reset_interval}, reset_offset=0)"
    assert summary["lava_dl_call"] == call and call in capsys.readouterr().out
    before = (out / "m.net").read_bytes()
    assert main(["export", str(ckpt), "--target", "loihi2", "-o", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "m.net").read_bytes() == before


@pytest.mark.parametrize("encoding", ["direct", "rate"])
def test_exported_file_computes_what_the_quantizer_simulated(tmp_path, encoding):
    ckpt = _checkpoint(tmp_path / "m.pt", encoding=encoding)
    target = load_target("loihi2")
    result = export_model(ckpt, target, tmp_path / "out", calibrate=32)
    fm = load_float_model(ckpt)
    x, _ = load_dataset("digits", split="test")
    inputs, _ = encoded_inputs(fm, x[:40], seed=3)
    expected = run_quantized(result.quantized, inputs)
    net = read_netx(result.files["netx"])
    steps = net.output_window[1]
    if encoding == "direct":
        transform = dict(np.load(result.files["input_transform"]))
        bias = result.quantized.input_bias(inputs)
        assert set(transform) >= {"weight", "bias", "clip"}
        got = simulate(net, steps, bias=bias)
    else:
        spikes = np.zeros((40, steps, 64), bool)
        spikes[:, :6] = inputs.reshape(40, 6, 64)
        got = simulate(net, steps, spikes=spikes)
    last = net.neuron_layers[-1]
    np.testing.assert_array_equal(got.s[last], expected.s[last])


def test_quantize_model_is_deterministic(tmp_path):
    ckpt = _checkpoint(tmp_path / "m.pt", encoding="rate")
    fm = load_float_model(ckpt)
    a = quantize_model(fm, load_target("loihi1"), calibrate=16)
    b = quantize_model(fm, load_target("loihi1"), calibrate=16)
    for la, lb in zip(a.netlist.layers, b.netlist.layers):
        if hasattr(la, "weight"):
            np.testing.assert_array_equal(la.weight, lb.weight)


def test_a_target_with_4_bit_weights_exports_4_bit_weights(tmp_path, capsys):
    target_file = tmp_path / "four.toml"
    target_file.write_text(SMALL_TARGET.replace("weight_bits = 8", "weight_bits = 4"))
    ckpt = _checkpoint(tmp_path / "m.pt", arch="8C3p1-16-10", encoding="rate")
    out = tmp_path / "out"
    assert main(["export", str(ckpt), "--target", str(target_file), "-o", str(out), "--calibrate", "32"]) == 0
    summary = json.loads((out / "export.json").read_text())
    assert summary["design_rules"]["passed"]
    assert [layer["weight_bits"] for layer in summary["layers"]] == [4, 4, 4]
    net = read_netx(out / "m.net")
    synaptic = [layer for layer in net.layers if hasattr(layer, "weight")]
    assert [type(layer).__name__ for layer in synaptic] == ["Conv", "Dense", "Dense"]
    for layer in synaptic:
        assert layer.weight_bits == 4 and len(np.unique(layer.weight)) <= 16
    x, _ = load_dataset("digits", split="test")
    inputs, _ = encoded_inputs(load_float_model(ckpt), x[:20])
    q = export_model(ckpt, load_target(target_file), tmp_path / "again", calibrate=32).quantized
    assert run_quantized(q, inputs).s[q.netlist.neuron_layers[-1]].any(), "the 4-bit network must spike"


def test_loihi1_and_loihi2_exports_differ_where_their_weight_bits_do(tmp_path):
    ckpt = _checkpoint(tmp_path / "m.pt")
    nets = {}
    for name in ("loihi1", "loihi2"):
        result = export_model(ckpt, load_target(name), tmp_path / name, calibrate=32)
        nets[name] = read_netx(result.files["netx"])
        assert not result.violations
    one, two = (nets[name].layers[1] for name in ("loihi1", "loihi2"))
    assert (one.weight_bits, two.weight_bits) == (9, 8)  # Loihi 1: sign + 8 bits; Loihi 2 (Lava): 8 with the sign
    assert np.any(one.weight % 2) and not np.any(two.weight % 2)
    assert (tmp_path / "loihi1" / "m.net").read_bytes() != (tmp_path / "loihi2" / "m.net").read_bytes()


def test_export_as_typed_uses_the_training_folder_and_without_it_exports_uncalibrated(tmp_path, capsys):
    data = mnist_folder(tmp_path / "data")
    model = tmp_path / "model.pt"
    assert (
        main(
            [
                "train",
                "--dataset",
                "mnist",
                "--data-root",
                str(data),
                "--arch",
                "784-16-10",
                "--steps",
                "4",
                "--epochs",
                "1",
                "--threads",
                "1",
                "--no-progress",
                "-o",
                str(model),
            ]
        )
        == 0
    )
    out = tmp_path / "export"
    assert main(["export", str(model), "--target", "loihi2", "-o", str(out)]) == 0
    assert "no calibration" not in capsys.readouterr().out
    calibration = json.loads((out / "export.json").read_text())["calibration"]
    assert calibration == {"samples": 20, "method": "max", "data_root": str(data.resolve())}

    data.rename(tmp_path / "moved")
    assert main(["export", str(model), "--target", "loihi2", "-o", str(out), "--force"]) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if "calibration" in line]
    assert len(said) == 1 and said[0].startswith("no calibration: dataset 'mnist' has no data folder")
    assert str(data.resolve()) in said[0] and "no longer exists" in said[0]
    calibration = json.loads((out / "export.json").read_text())["calibration"]
    assert calibration["samples"] == 0 and "--data-root" in calibration["reason"]
    assert read_netx(out / "model.net").layers[-1].weight.any()

    assert (
        main(
            [
                "export",
                str(model),
                "--target",
                "loihi2",
                "-o",
                str(out),
                "--force",
                "--data-root",
                str(tmp_path / "moved"),
            ]
        )
        == 0
    )
    assert json.loads((out / "export.json").read_text())["calibration"]["samples"] == 20
    assert main(["export", str(model), "-o", str(out), "--force", "--calibration", "rate"]) == 2
    assert "calibration 'rate' needs calibration samples" in capsys.readouterr().err


def test_export_names_the_host_layer_of_the_direct_encoding(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "m.pt")
    out = tmp_path / "out"
    assert main(["export", str(ckpt), "--target", "loihi2", "-o", str(out), "--calibrate", "8"]) == 0
    printed = capsys.readouterr().out
    assert (
        "layer 0 (dense 64->32, synapses on the host): its 2,048 multiply-adds a sample run on the host "
        "(m.input.npz holds them); its neurons run on the chip"
    ) in printed
    # Every line about layer 0 (the scales, the host work, the numerical faults) names it as the same dense layer.
    layer0 = [line.strip() for line in printed.splitlines() if line.strip().startswith("layer 0")]
    assert len(layer0) == 3, layer0
    assert all(line.startswith(("layer 0 dense ", "layer 0 (dense 64->32, synapses on the host)")) for line in layer0)
    host = json.loads((out / "export.json").read_text())["host_layer"]
    assert host["host_multiply_adds"] == 64 * 32 and "not in the energy" in host["note"]
    rate = _checkpoint(tmp_path / "r.pt", encoding="rate")
    assert main(["export", str(rate), "--target", "loihi2", "-o", str(tmp_path / "r"), "--calibrate", "8"]) == 0
    assert json.loads((tmp_path / "r" / "export.json").read_text())["host_layer"] is None

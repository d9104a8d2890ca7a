"""Exported digits models run in lava-dl's netx on Lava fixed_pt exactly as in the simulator."""

from __future__ import annotations

import numpy as np
import pytest
from neurodeploy.backends.lava import run_netx_in_lava
from neurodeploy.datasets import load_dataset
from neurodeploy.export import encoded_inputs, export_model, load_float_model
from neurodeploy.exporters.netx import read_netx
from neurodeploy.quantize import run_quantized
from neurodeploy.targets import load_target
from neurodeploy.train import TrainConfig, train

SAMPLES = 100


@pytest.mark.lava
@pytest.mark.parametrize(
    "rule, arch, encoding, target",
    [
        ("tssl", "64-128-10", "direct", "loihi2"),
        ("bpsa", "64-128-10bn", "rate", "loihi2"),
        ("tssl", "64-128-10", "direct", "loihi1"),  # 9-bit mixed-sign weights
        ("bpsa", "64-128-10bn", "rate", "4-bit"),
    ],
)
def test_exported_digits_model_runs_in_lava_netx_like_the_simulator(tmp_path, lava_exe, rule, arch, encoding, target):
    cfg = TrainConfig(rule=rule, arch=arch, steps=5, epochs=2, encoding=encoding, progress=False, device="cpu")
    path = tmp_path / f"{rule}.pt"
    from neurodeploy.models import save_checkpoint

    result = train(cfg, log=lambda *a, **k: None)
    save_checkpoint(
        path,
        result.model,
        **{k: result.checkpoint[k] for k in ("encoding", "steps", "dataset", "split", "float_test_accuracy", "seed")},
    )
    if target == "4-bit":
        target = tmp_path / "four.toml"
        target.write_text(
            'name = "four"\n[system]\ncores_per_chip = 128\n[core]\nneurons = 8192\n[synapse]\nweight_bits = 4\n'
        )
    exported = export_model(path, load_target(target), tmp_path / "out", calibrate=64)
    q = exported.quantized
    net = read_netx(exported.files["netx"])
    fm = load_float_model(path)
    x, _ = load_dataset("digits", split="test")
    inputs, _ = encoded_inputs(fm, x[:SAMPLES], seed=1)
    steps = net.output_window[1]
    record = ("s", "v") if net.readout == "membrane" else ("s",)  # BPSA reads its classes from the output v
    expected = run_quantized(q, inputs, record=record)
    conventions = dict(reset_interval=net.reset_interval, reset_offset=net.reset_offset, record=record)
    if q.input_transform is not None:
        lava = run_netx_in_lava(exported.files["netx"], steps, bias=q.input_bias(inputs), **conventions)
    else:
        spikes = np.zeros((SAMPLES, steps) + tuple(net.input_shape), bool)
        spikes[:, : inputs.shape[1]] = inputs.reshape((SAMPLES, inputs.shape[1]) + tuple(net.input_shape))
        lava = run_netx_in_lava(exported.files["netx"], steps, spikes=spikes, **conventions)
    last = net.neuron_layers[-1]
    if net.readout == "membrane":
        assert rule == "bpsa" and not expected.s[last].any() and np.abs(expected.v[last]).max() > 0
        np.testing.assert_array_equal(lava.v[max(lava.v)], expected.v[last])
        assert expected.s[last - 1].any(), "the hidden layer must spike for the comparison to mean anything"
        np.testing.assert_array_equal(lava.s[max(lava.s) - 1], expected.s[last - 1])
        return
    assert expected.s[last].any(), "the model must spike for the comparison to mean anything"
    np.testing.assert_array_equal(lava.s[max(lava.s)], expected.s[last])  # keyed by the file's layers


@pytest.mark.lava
def test_the_printed_lava_dl_call_loads_the_export_with_our_spikes(tmp_path, lava_exe, capsys, monkeypatch):
    """`export` prints the call; lava-dl, given that call verbatim, spikes as the simulator on real test
    digits. The same file loaded without the call's arguments gives other spikes."""
    import json

    from neurodeploy.backends.lava import run_lava_dl_call
    from neurodeploy.cli import main
    from neurodeploy.models import save_checkpoint
    from neurodeploy.quantize import input_bias
    from neurodeploy.sim import simulate

    cfg = TrainConfig(rule="tssl", arch="64-128-10", steps=5, epochs=2, encoding="direct", progress=False, device="cpu")
    result = train(cfg, log=lambda *a, **k: None)
    save_checkpoint(
        tmp_path / "digits.pt",
        result.model,
        **{k: result.checkpoint[k] for k in ("encoding", "steps", "dataset", "split", "float_test_accuracy", "seed")},
    )
    monkeypatch.chdir(tmp_path)  # the call names the file as the user gave it: relative to here
    assert main(["export", "digits.pt", "--target", "loihi2", "--calibrate", "64", "-o", "out"]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if "netx.hdf5.Network(" in line]
    assert len(printed) == 1
    call = printed[0].split("net = ", 1)[1]
    assert json.loads((tmp_path / "out/export.json").read_text())["lava_dl_call"] == call
    net = read_netx(tmp_path / "out/digits.net")
    assert net.reset_interval and f"reset_interval={net.reset_interval}" in call
    with np.load(tmp_path / "out/digits.input.npz") as transform:
        x, _ = load_dataset("digits", split="test")
        bias = input_bias({k: transform[k] for k in transform.files}, x[:SAMPLES])
    steps = net.output_window[1]
    expected = simulate(net, steps, bias=bias).s[net.neuron_layers[-1]]
    assert expected.sum() > 0, "the output layer must spike for the comparison to mean anything"
    lava = run_lava_dl_call(call, steps, bias=bias)
    assert np.count_nonzero(lava.s[max(lava.s)] != expected) == 0
    bare = run_lava_dl_call("netx.hdf5.Network(net_config='out/digits.net')", steps, bias=bias)
    assert np.count_nonzero(bare.s[max(bare.s)] != expected) > 0

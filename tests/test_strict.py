"""Numerical faults are counted and shown by export, run and compare; --strict makes any an error
(exit 2, naming the layer and the count)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from neurodeploy.cli import main
from neurodeploy.exporters.netx import write_netx
from neurodeploy.models import make_rule, parse_arch, save_checkpoint
from neurodeploy.models.network import SpikingNetwork
from neurodeploy.netlist import CubaNeuron, Dense, Netlist

WIDE_THRESHOLDS = """
name = "wide-vth"
[system]
cores_per_chip = 128
[core]
neurons = 8192
[neuron]
vth = [0, 8388607]
"""


def _checkpoint(path, weight_scale: float = 1.0):
    """A rate-encoded 64-256-10 network: the percentile calibration clips the top 0.1% of its 16,384
    first-layer weights."""
    torch.manual_seed(0)
    model = SpikingNetwork(parse_arch("64-256-10"), (1, 8, 8), make_rule("tssl"), "spikes")
    with torch.no_grad():
        for p in model.parameters():
            torch.nn.init.normal_(p, 0.0, 0.3 * weight_scale)
    save_checkpoint(
        path,
        model,
        encoding={"name": "rate", "gain": 1.0},
        steps=6,
        dataset="digits",
        split={},
        float_test_accuracy=0.0,
        seed=0,
    )
    return path


def _overflowing_netlist(path):
    """u wraps in layer 0 (128 inputs of weight 255, no current decay) and v saturates in layer 1 (no
    voltage decay, a threshold out of reach)."""
    net = Netlist(
        [
            Dense(np.full((16, 128), 255), CubaNeuron(vth=10, du=-1, dv=0)),
            Dense(np.full((2, 16), 255), CubaNeuron(vth=2**23 - 1, du=-1, dv=0)),
        ],
        input_shape=(128,),
    )
    write_netx(net, path)
    return path


def test_export_counts_clipped_weights_and_strict_refuses_them(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "m.pt")
    args = ["export", str(ckpt), "--calibrate", "64", "--calibration", "percentile"]
    assert main([*args, "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "export.json").read_text())["numerical_faults"]
    clipped = summary["layers"][0]["weights_clipped"]
    assert clipped >= 1 and summary["total"] >= clipped
    assert f"layer 0 (dense 64->256): weights clipped {clipped}" in out

    assert main([*args, "-o", str(tmp_path / "strict"), "--strict"]) == 2
    err = capsys.readouterr().err
    assert f"--strict: numerical faults: layer 0 (dense 64->256): {clipped} weights clipped" in err
    assert not (tmp_path / "strict").exists() or not any((tmp_path / "strict").iterdir())


def test_export_counts_thresholds_beyond_17_bits(tmp_path, capsys):
    target = tmp_path / "wide.toml"
    target.write_text(WIDE_THRESHOLDS)
    ckpt = _checkpoint(tmp_path / "m.pt", weight_scale=1e-3)
    args = ["export", str(ckpt), "--target", str(target), "--calibrate", "0"]
    assert main([*args, "-o", str(tmp_path / "out")]) == 0
    layers = json.loads((tmp_path / "out" / "export.json").read_text())["layers"]
    wide = [k for k, layer in enumerate(layers) if layer["vth"] > 2**17 - 1]
    assert wide and all(layers[k]["thresholds_beyond_17_bits"] == 1 for k in wide)
    capsys.readouterr()
    assert main([*args, "-o", str(tmp_path / "strict"), "--strict"]) == 2
    err = capsys.readouterr().err
    assert f"layer {wide[0]} (dense" in err and ": 1 thresholds beyond 17 bits" in err


def test_clean_export_passes_strict(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "m.pt")
    assert main(["export", str(ckpt), "--calibrate", "32", "-o", str(tmp_path / "out"), "--strict"]) == 0
    assert "numerical faults (quantizer; u and v on the calibration samples): 0" in capsys.readouterr().out


def test_run_prints_wraps_and_saturations_per_layer_and_strict_fails(tmp_path, capsys):
    net = _overflowing_netlist(tmp_path / "hot.net")
    spikes = tmp_path / "spikes.npy"
    np.save(spikes, np.ones((2, 24, 128), dtype=bool))
    args = ["run", str(net), "--steps", "24", "--input", str(spikes), "-o", str(tmp_path / "out.npz")]
    assert main(args) == 0
    out = capsys.readouterr().out
    saved = np.load(tmp_path / "out.npz")
    wraps, saturations = saved["u_wraps"], saved["v_saturations"]
    assert wraps[0] > 0 and saturations[1] > 0
    assert f"layer 0 (dense 128->16): u wraps {wraps[0]}, v saturations {saturations[0]}" in out
    assert f"layer 1 (dense 16->2): u wraps {wraps[1]}, v saturations {saturations[1]}" in out

    (tmp_path / "out.npz").unlink()
    assert main([*args, "--strict"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"neurodeploy run: error: {net}: --strict: numerical faults: layer 0 (dense 128->16): "
        f"{wraps[0]} u wraps, {saturations[0]} v saturations; layer 1 (dense 16->2): "
        f"{saturations[1]} v saturations\n"
    )
    assert (tmp_path / "out.npz").exists()  # the run's arrays are saved first, to look into


def test_compare_reports_faults_and_strict_fails_after_writing(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "m.pt")
    args = [
        "compare",
        str(ckpt),
        "--samples",
        "24",
        "--calibrate",
        "64",
        "--calibration",
        "percentile",
        "--no-plots",
        "--no-progress",
    ]
    assert main([*args, "-o", str(tmp_path / "report")]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    found = report["numerical_faults"]
    clipped = found["layers"][0]["weights_clipped"]
    assert clipped >= 1 and set(found["layers"][0]) >= {"u_wraps", "v_saturations", "weights_clipped"}
    assert "## Numerical faults" in (tmp_path / "report" / "report.md").read_text()
    assert f"numerical faults   {found['total']}" in capsys.readouterr().out

    assert main([*args, "-o", str(tmp_path / "strict"), "--strict"]) == 2
    assert f"layer 0 (dense 64->256): {clipped} weights clipped" in capsys.readouterr().err
    assert (tmp_path / "strict" / "report.json").exists()


@pytest.mark.parametrize("count", [0, 3])
def test_require_none_names_layer_and_count(count):
    from neurodeploy.faults import NumericalFaultError, require_none

    counts = [{"u_wraps": 0}, {"u_wraps": 0, "v_saturations": count}]
    labels = ["layer 0 (dense 4->3)", "layer 1 (dense 3->2)"]
    if not count:
        require_none(counts, labels, "net.net")
        return
    with pytest.raises(
        NumericalFaultError,
        match=r"net\.net: --strict: numerical faults: layer 1 \(dense 3->2\): "
        r"3 v saturations$",
    ):
        require_none(counts, labels, "net.net")


@pytest.mark.lava
def test_strict_run_in_lava_counts_with_the_simulator(tmp_path, capsys, lava_exe):
    net = _overflowing_netlist(tmp_path / "hot.net")
    np.save(tmp_path / "spikes.npy", np.ones((1, 24, 128), dtype=bool))
    args = ["run", str(net), "--steps", "24", "--input", str(tmp_path / "spikes.npy")]
    assert main([*args, "-o", str(tmp_path / "sim.npz")]) == 0
    capsys.readouterr()
    assert main([*args, "-o", str(tmp_path / "lava.npz"), "--backend", "lava", "--strict"]) == 2
    with np.load(tmp_path / "sim.npz") as sim, np.load(tmp_path / "lava.npz") as lava:
        assert np.array_equal(sim["s1"], lava["s1"]) and np.array_equal(sim["v1"], lava["v1"])
        expected = f"layer 0 (dense 128->16): {sim['u_wraps'][0]} u wraps"
    assert expected in capsys.readouterr().err

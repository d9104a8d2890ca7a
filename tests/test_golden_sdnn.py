"""Our simulator on lava-dl's sigma-delta golden data: every compared value equal.

The golden arrays are in Lava's (x, y, f, t) = (W, H, C, t) order (1-D layers (n, t));
ours are (batch, t, C, H, W). PilotNet SDNN's input holds one step, which Lava's
RingBuffer plays on every step.
"""

from __future__ import annotations

import numpy as np
import pytest
from neurodeploy.exporters.netx import read_netx
from neurodeploy.netlist import Conv, DeltaNeuron, Dense, Input, Netlist, SigmaDeltaNeuron, SigmaNeuron
from neurodeploy.sim import simulate

SQUARE_STEPS = 20
TINY_VTH = 20  # the threshold lava-dl's block tests give the tinynet_sdnn input and conv blocks


def xyf_t(golden: np.ndarray) -> np.ndarray:
    """(x, y, f, t) -> (t, C, H, W); (n, t) -> (t, n)."""
    return golden.transpose(3, 2, 1, 0) if golden.ndim == 4 else golden.T


def lava_kernel(kernel: np.ndarray) -> np.ndarray:
    """Lava's convolution kernel (out, x, y, in) as our cross-correlation weight (out, in, kH, kW)."""
    return kernel.transpose(0, 3, 2, 1)[:, :, ::-1, ::-1]


def _pilotnet(conformance_dir, spike_exp: int | None = None):
    folder = conformance_dir / "gts/pilotnet_sdnn"
    net = read_netx(folder / "network.net", spike_exp=spike_exp)
    steps = len(net.neuron_layers)
    image = xyf_t(np.load(folder / "input.npy"))  # (1, C, H, W)
    spikes = np.repeat(image[None], steps, axis=1).astype(np.int64)
    rec = simulate(net, steps, spikes=spikes)
    return rec.s[net.neuron_layers[-1]][0].T, np.load(folder / "output.npy")


def test_pilotnet_sdnn_output_exact(conformance_dir):
    ours, golden = _pilotnet(conformance_dir)
    assert np.abs(golden).sum() > 0
    assert np.array_equal(ours, golden)


def test_pilotnet_sdnn_spike_exp_0(conformance_dir):
    """lava-dl's own check with spike_exp=0: mean error below twice the scale of 2**6."""
    ours, golden = _pilotnet(conformance_dir, spike_exp=0)
    scale = 1 << 6
    assert np.abs(ours).sum() > 0
    assert np.abs(ours - golden / scale).mean() < 2 * scale


def test_pilotnet_sdnn_square_sigma_every_step(conformance_dir):
    """The square net without its input layer, first-layer activations in: sigma of layers 1-4 at every step."""
    folder = conformance_dir / "gts/pilotnet_sdnn"
    full = read_netx(folder / "square_network.net")
    net = Netlist(full.layers[1:], input_shape=full.layers[0].shape, input_message_bits=16)
    act0 = xyf_t(np.load(folder / "act0.npy")[:33, :33])[None].astype(np.int64)
    rec = simulate(net, SQUARE_STEPS, spikes=act0, record=("s", "sigma"))
    for k, i in enumerate(net.neuron_layers[:4]):
        golden = xyf_t(np.load(folder / f"sigma{k + 1}_square.npy"))
        assert np.abs(golden).sum() > 0
        assert np.array_equal(rec.sigma[i][0], golden), f"layer {k + 1}"


@pytest.fixture(scope="module")
def tiny(conformance_dir):
    folder = conformance_dir / "gts/tinynet_sdnn"
    return lambda name: np.load(folder / f"{name}.npy")


def test_tinynet_sdnn_input_block(tiny):
    steps = 15
    drive = tiny("input_bias")[..., None] * np.sin(2 * np.pi * np.arange(steps) / steps)
    shape = (3, 16, 16)
    net = Netlist([Input(shape=shape, neuron=DeltaNeuron(vth=TINY_VTH), bias=np.zeros(shape, int))])
    rec = simulate(net, steps, spikes=xyf_t(drive.astype(int))[None].astype(np.int64))
    golden = xyf_t(tiny("input"))
    assert np.abs(golden).sum() > 0
    assert np.array_equal(rec.s[0][0], golden)


def test_tinynet_sdnn_conv_block(tiny):
    """lava-dl's test runs the block one step (the golden's later steps are empty): that step equal."""
    conv = Conv(
        weight=lava_kernel(tiny("layer1_kernel")),
        neuron=SigmaDeltaNeuron(vth=TINY_VTH),
        in_shape=(3, 16, 16),
        stride=(2, 2),
        bias=tiny("layer1_bias"),
    )
    net = Netlist([conv], input_shape=(3, 16, 16), input_message_bits=16)
    rec = simulate(net, 1, spikes=xyf_t(tiny("input"))[None].astype(np.int64))
    golden = xyf_t(tiny("layer1"))
    assert np.count_nonzero(golden[0]) > 0
    assert np.array_equal(rec.s[0][0], golden[:1])


def test_tinynet_sdnn_dense_block(tiny):
    """A Sigma readout behind dense synapses; lava-dl's block takes binary input (input_message_bits 0)."""
    layer1 = tiny("layer1").reshape(-1, 16)
    net = Netlist([Dense(weight=tiny("layer2_weight"), neuron=SigmaNeuron())], input_shape=(layer1.shape[0],))
    rec = simulate(net, 16, spikes=layer1.T[None].astype(np.int64))
    golden = xyf_t(tiny("layer2"))
    assert np.abs(golden).sum() > 0
    assert np.array_equal(rec.s[0][0], golden)


def test_netx_read_write_read_is_identity(conformance_dir, tmp_path):
    import dataclasses

    from neurodeploy.exporters.netx import write_netx

    first = read_netx(conformance_dir / "gts/pilotnet_sdnn/network.net", spike_exp=4)
    write_netx(first, tmp_path / "a.net")
    second = read_netx(tmp_path / "a.net")
    assert len(first.layers) == len(second.layers)
    for a, b in zip(first.layers, second.layers):
        for f in dataclasses.fields(a):
            x, y = getattr(a, f.name), getattr(b, f.name)
            assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y, f.name
    assert second.layers[1].neuron.spike_exp == 4


def test_cli_inspect_and_run_pilotnet_sdnn(conformance_dir, tmp_path, capsys):
    from neurodeploy.cli import main

    folder = conformance_dir / "gts/pilotnet_sdnn"
    assert main(["inspect", str(folder / "network.net")]) == 0
    table = capsys.readouterr().out
    assert "sigma_delta" in table and "sigma-delta network" in table
    out = tmp_path / "out.npz"
    assert (
        main(
            [
                "run",
                str(folder / "network.net"),
                "--steps",
                "9",
                "--input",
                str(folder / "input.npy"),
                "--input-order",
                "lava",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    with np.load(out) as saved:
        assert np.array_equal(saved["s9"][0].T, np.load(folder / "output.npy"))
        assert "sigma1" in saved and "u1" not in saved
    printed = capsys.readouterr().out
    assert "numerical faults: 0 (sigma-delta layers count none" in printed
    assert "u wraps" not in printed  # sigma-delta layers have no u or v


def test_onnx_and_nir_refuse_sigma_delta_by_name(conformance_dir, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("nir")
    from neurodeploy.exporters.nir import NirExportError, write_nir
    from neurodeploy.exporters.onnx import OnnxExportError, write_onnx

    net = read_netx(conformance_dir / "gts/pilotnet_sdnn/network.net")
    with pytest.raises(OnnxExportError, match=r"layer 0 .*sigma-delta"):
        write_onnx(net, tmp_path / "a.onnx", steps=9)
    with pytest.raises(NirExportError, match="NIR has no node for sigma-delta"):
        write_nir(net, tmp_path / "a.nir")
    assert not list(tmp_path.iterdir())

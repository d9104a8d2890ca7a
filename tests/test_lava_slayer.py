"""netx files lava-dl writes itself (SLAYER's export_hdf5, the bootstrap tutorial's MNIST network), run by
``neurodeploy run`` and by lava-dl's own netx on Lava fixed_pt: the same spikes, every layer, every step."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from neurodeploy.backends.lava import run_netx_in_lava
from neurodeploy.cli import main
from neurodeploy.datasets import load_dataset

pytestmark = pytest.mark.lava

SCRIPT = Path(__file__).parent / "lava_scripts" / "slayer_nets.py"
SLAYER_NETS = {"dense": (30,), "conv_flatten_dense": (2, 9, 11), "stride_padding": (2, 9, 11)}  # as SCRIPT's
STEPS = 24
BATCH = 3


@pytest.fixture(scope="module")
def slayer_dir(lava_exe, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("slayer")
    done = subprocess.run([lava_exe, str(SCRIPT), str(out)], capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _run_ours(tmp_path: Path, net: Path, steps: int, flag: str, data: np.ndarray) -> dict[str, np.ndarray]:
    np.save(tmp_path / "in.npy", data)
    out = tmp_path / "ours.npz"
    assert main(["run", str(net), "--steps", str(steps), flag, str(tmp_path / "in.npy"), "-o", str(out)]) == 0
    with np.load(out) as saved:
        return {k: saved[k] for k in saved.files}


def _mismatches(ours: dict[str, np.ndarray], lava, names=("s",)) -> dict[str, int]:
    """Differing values per recorded layer; our layer i is the file's layer i."""
    assert sorted(int(i) for i in ours["layers"]) == sorted(lava.s)
    return {f"{n}{i}": int(np.count_nonzero(ours[f"{n}{i}"] != getattr(lava, n)[i])) for n in names for i in lava.s}


@pytest.mark.parametrize("name", sorted(SLAYER_NETS))
def test_slayer_export_runs_as_in_lava_netx(slayer_dir, tmp_path, name):
    net = slayer_dir / f"{name}.net"
    spikes = np.random.default_rng(len(name)).random((BATCH, STEPS) + SLAYER_NETS[name]) < 0.4
    ours = _run_ours(tmp_path, net, STEPS, "--input", spikes.astype(np.int8))
    lava = run_netx_in_lava(net, STEPS, spikes=spikes)
    last = max(lava.s)
    assert lava.s[last].sum() > 0, "the output layer must spike for the comparison to mean anything"
    assert _mismatches(ours, lava) == dict.fromkeys(_mismatches(ours, lava), 0)


def test_bootstrap_mnist_runs_as_in_lava_netx(conformance_dir, tmp_path):
    """lava-dl's bootstrap-trained MNIST net, its input layer driven by digit images (8x8 scaled to 24x24
    in a 28x28 frame). The readout layer cannot spike (vth << 6 = 2**23 is above v's 24-bit range): its
    u and v are compared too, and the layer before it must spike."""
    net = conformance_dir / "trained/bootstrap_mnist.net"
    x, _ = load_dataset("digits", split="test")
    frame = np.zeros((4, 28, 28))
    frame[:, 2:26, 2:26] = np.kron(x[:4, 0], np.ones((3, 3)))
    bias = np.rint(frame * 160).astype(np.int32).reshape(4, 784)
    ours = _run_ours(tmp_path, net, 16, "--input-bias", bias)
    lava = run_netx_in_lava(net, 16, bias=bias, record=("s", "u", "v"))
    readout = max(lava.s)
    assert lava.s[readout - 1].sum() > 0 and np.abs(lava.u[readout]).max() > 0
    found = _mismatches(ours, lava, ("s", "u", "v"))
    assert found == dict.fromkeys(found, 0)


def test_pilotnet_tutorial_network_runs_as_in_lava_netx(conformance_dir, tmp_path):
    """lava-dl's PilotNet SNN tutorial network (the file of gts/pilotnet_lif), its image as the input
    layer's bias, reset every 16 steps, past the second reset: every layer's spikes, the readout's u and v."""
    net = conformance_dir / "gts/pilotnet_lif/network.net"
    image = np.load(conformance_dir / "gts/pilotnet_lif/image.npy").transpose(2, 1, 0).astype(np.int32)
    np.save(tmp_path / "in.npy", image)
    out = tmp_path / "ours.npz"
    assert (
        main(
            [
                "run",
                str(net),
                "--steps",
                "20",
                "--input-bias",
                str(tmp_path / "in.npy"),
                "--reset-interval",
                "16",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    lava = run_netx_in_lava(net, 20, bias=image, reset_interval=16, record=("s", "u", "v"))
    with np.load(out) as saved:
        ours = {k: saved[k] for k in saved.files}
    readout = max(lava.s)
    assert all(lava.s[i].sum() > 0 for i in lava.s if i != readout) and np.abs(lava.u[readout]).max() > 0
    found = _mismatches(ours, lava, ("s",))
    found |= {f"{n}{readout}": int(np.count_nonzero(ours[f"{n}{readout}"] != getattr(lava, n)[readout])) for n in "uv"}
    assert found == dict.fromkeys(found, 0)

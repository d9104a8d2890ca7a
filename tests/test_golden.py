"""Our simulator on lava-dl's golden data: every compared value equal, zero mismatches.

The golden arrays come in two orders: tinynet's in (C, H, W, t), PilotNet's and the
dense layer's in Lava's (x, y, f, t) = (W, H, C, t). Ours are (batch, t, C, H, W).
"""

from __future__ import annotations

import numpy as np
import pytest
from neurodeploy import fixed_point as fx
from neurodeploy.exporters.netx import read_netx
from neurodeploy.netlist import CubaNeuron, Dense, Netlist
from neurodeploy.sim import simulate

PILOTNET_RESET = 16
PILOTNET_STEPS = 24
# netlist layer index -> golden file stem; k, the layer's place among neuron layers, sets its resets
PILOTNET_TRACES = {
    0: ("input", 0),
    1: ("conv-0", 1),
    2: ("conv-1", 2),
    3: ("conv-2", 3),
    4: ("conv-3", 4),
    5: ("conv-4", 5),
    7: ("fc-0", 6),
    8: ("fc-1", 7),
    9: ("fc-2", 8),
}


def chw_t(golden: np.ndarray) -> np.ndarray:
    """(C, H, W, t) -> (t, C, H, W)."""
    return np.moveaxis(golden, -1, 0)


def xyf_t(golden: np.ndarray) -> np.ndarray:
    """(x, y, f, t) = (W, H, C, t) -> (t, C, H, W); 1-D layers (n, t) -> (t, n)."""
    return golden.transpose(3, 2, 1, 0) if golden.ndim == 4 else golden.T


# ---------------------------------------------------------------------------- tinynet


@pytest.fixture(scope="module")
def tinynet(conformance_dir):
    """tiny.net driven by its golden input bias, reset every 17 steps staggered by layer."""
    net = read_netx(conformance_dir / "tiny.net")
    bias = np.load(conformance_dir / "gts/tinynet/input_bias.npy").transpose(2, 1, 0)  # (x, y, f) -> (C, H, W)
    return simulate(net, 17 + 3, bias=bias.astype(np.int64), record=("s", "u"), reset_interval=17)


def test_tinynet_output(tinynet, conformance_dir):
    golden = chw_t(np.load(conformance_dir / "gts/tinynet/output.npy")[0])
    ours = tinynet.s[2][0]
    assert golden[1:].sum() > 0
    assert np.array_equal(ours[2:17], golden[1:])  # steps 2..16 against the golden's 1..15


def test_tinynet_input_spikes(tinynet, conformance_dir):
    golden = chw_t(np.load(conformance_dir / "gts/tinynet/input.npy")[0])
    assert np.array_equal(tinynet.s[0][0][:15], golden[1:])  # the golden trace starts a step earlier


def test_tinynet_first_conv_current_and_spikes(tinynet, conformance_dir):
    current = chw_t(np.load(conformance_dir / "gts/tinynet/current.npy")[0])
    spikes = chw_t(np.load(conformance_dir / "gts/tinynet/layer1.npy")[0])
    assert np.array_equal(tinynet.u[1][0][:16], current * 64)  # golden u is in units of 2**6
    # step 0: the biases alone make 144 neurons spike; the golden trace (and lava-dl's own test) leave it out
    assert np.array_equal(tinynet.s[1][0][1:16], spikes[1:])


def test_tinynet_kernel_is_flipped_for_lava(conformance_dir):
    """Our cross-correlation kernel, flipped and in (out, x, y, in), is Lava's true-convolution kernel."""
    conv = read_netx(conformance_dir / "tiny.net").layers[1]
    lava_kernel = np.load(conformance_dir / "gts/tinynet/layer1_kernel.npy")
    assert np.array_equal(conv.weight[:, :, ::-1, ::-1].transpose(0, 3, 2, 1), lava_kernel)
    assert np.array_equal(conv.bias, np.load(conformance_dir / "gts/tinynet/layer1_bias.npy"))


# ---------------------------------------------------------------------------- dense


def test_dense_current_and_spikes(conformance_dir):
    root = conformance_dir / "gts/dense"
    weight = np.load(root / "weight.npy")
    spikes_in = np.load(root / "in.npy").T[None].astype(bool)  # (n, t) -> (1, t, n)
    net = Netlist([Dense(weight, CubaNeuron(vth=6, du=4095, dv=415, bias_exp=6))], input_shape=(weight.shape[1],))
    rec = simulate(net, spikes_in.shape[1], spikes=spikes_in, record=("s", "u"))
    assert np.array_equal(rec.u[0][0], np.load(root / "current.npy").T * 64)
    out = np.load(root / "out.npy").T
    assert out.sum() > 0
    assert np.array_equal(rec.s[0][0], out.astype(bool))


# ---------------------------------------------------------------------------- PilotNet on Loihi 2


def pilotnet_run(conformance_dir, conventions: str):
    net = read_netx(conformance_dir / "gts/pilotnet_lif/network.net")
    image = np.load(conformance_dir / "gts/pilotnet_lif/image.npy").transpose(2, 1, 0)
    return simulate(
        net,
        PILOTNET_STEPS,
        bias=image.astype(np.int64),
        record=("s", "u", "v"),
        reset_interval=PILOTNET_RESET,
        conventions=conventions,
    )


@pytest.fixture(scope="module")
def pilotnet(conformance_dir):
    """PilotNet under Lava's conventions."""
    return pilotnet_run(conformance_dir, "lava")


@pytest.fixture(scope="module")
def pilotnet_chip(conformance_dir):
    """PilotNet under Loihi 2's conventions."""
    return pilotnet_run(conformance_dir, "loihi2")


def golden_trace(conformance_dir, layer: int, var: str) -> np.ndarray:
    stem, _ = PILOTNET_TRACES[layer]
    suffix = "" if var == "s" else f"-{var}"
    return xyf_t(np.load(conformance_dir / f"gts/pilotnet_lif/{stem}{suffix}.npy"))


def before_second_reset(k: int) -> slice:
    """Steps before layer k's second reset (t = 16 + k), after which Lava's reset timing is not the chip's."""
    return slice(0, PILOTNET_RESET + k)


TRACED = [(i, var) for i in sorted(PILOTNET_TRACES) for var in "suv" if var == "s" or i > 1]  # no u/v of 0, 1


@pytest.mark.parametrize("layer,var", TRACED)
def test_pilotnet_chip_every_step(pilotnet_chip, conformance_dir, layer, var):
    """Under the loihi2 conventions every recorded value equals the chip's, all 24 steps, past the reset."""
    golden = golden_trace(conformance_dir, layer, var)
    ours = getattr(pilotnet_chip, var)[layer][0].reshape(golden.shape)
    _, k = PILOTNET_TRACES[layer]
    past = golden[PILOTNET_RESET + k :]  # from Lava's second reset of the layer on (none within 24 steps for fc-2)
    assert past.size == 0 or np.abs(past).max() > 0
    assert np.count_nonzero(ours != golden) == 0


@pytest.mark.parametrize("layer,var", [(i, v) for i, v in TRACED if i not in (0, 9)])
def test_pilotnet_lava_conventions_part_from_the_chip_past_the_reset(pilotnet, conformance_dir, layer, var):
    """Lava's reset timing differs from the chip's from layer k's second reset on (fc-2's barely moves)."""
    golden = golden_trace(conformance_dir, layer, var)
    ours = getattr(pilotnet, var)[layer][0].reshape(golden.shape)
    _, k = PILOTNET_TRACES[layer]
    past = slice(PILOTNET_RESET + k, None)
    assert np.count_nonzero(ours[past] != golden[past]) > 0


@pytest.mark.parametrize("layer", sorted(PILOTNET_TRACES))
def test_pilotnet_spikes(pilotnet, conformance_dir, layer):
    golden = golden_trace(conformance_dir, layer, "s")
    ours = pilotnet.s[layer][0].reshape(golden.shape)
    steps = before_second_reset(PILOTNET_TRACES[layer][1])
    assert np.array_equal(ours[steps], golden[steps])


@pytest.mark.parametrize("layer", [i for i in sorted(PILOTNET_TRACES) if i > 1])  # no u/v traces of layers 0, 1
def test_pilotnet_current(pilotnet, conformance_dir, layer):
    golden = golden_trace(conformance_dir, layer, "u")
    ours = pilotnet.u[layer][0].reshape(golden.shape)
    steps = before_second_reset(PILOTNET_TRACES[layer][1])
    assert np.abs(golden[steps]).max() > 0
    assert np.array_equal(ours[steps], golden[steps])


@pytest.mark.parametrize("layer", [i for i in sorted(PILOTNET_TRACES) if i > 1])
def test_pilotnet_voltage_except_the_spike_step(pilotnet, conformance_dir, layer):
    steps = before_second_reset(PILOTNET_TRACES[layer][1])
    golden = golden_trace(conformance_dir, layer, "v")[steps]
    ours = pilotnet.v[layer][0][steps].reshape(golden.shape)
    spiked = pilotnet.s[layer][0][steps].reshape(golden.shape)
    assert spiked.any()
    assert np.all(ours[spiked] == 0)
    assert np.all(golden[spiked] == fx.LOIHI2_SPIKE_V)
    assert np.array_equal(ours[~spiked], golden[~spiked])


def test_pilotnet_last_layer_trace_is_not_compared(conformance_dir):
    """fc-3-*.npy hold 25 float steps from another run: Lava 0.10's fixed_pt differs from them too.

    Measured once: Lava's own u of that layer is 0 0 0 640 0 0 0 -3840 -1536 ..., ours the
    same; fc-3-u.npy has 0 at step 8, where layer fc-2 (matched above) sends -1536.
    """
    golden = np.load(conformance_dir / "gts/pilotnet_lif/fc-3-u.npy")
    assert golden.shape == (1, PILOTNET_STEPS + 1) and golden.dtype == np.float64

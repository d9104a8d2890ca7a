"""Files our netx writer writes with sigma-delta and recurrent layers, run by lava-dl's own netx loader."""

from __future__ import annotations

import numpy as np
import pytest
from neurodeploy.backends.lava import run_netx_in_lava
from neurodeploy.exporters.netx import read_netx, write_netx
from neurodeploy.netlist import CubaNeuron, Dense, Netlist, RecurrentDense
from neurodeploy.sim import simulate

pytestmark = pytest.mark.lava


@pytest.mark.parametrize("spike_exp", [6, 0])
def test_pilotnet_sdnn_as_we_write_it_runs_alike_in_netx(conformance_dir, tmp_path, lava_exe, spike_exp):
    """Every layer's graded messages equal, with netx's default spike_exp and with lava-dl's test's 0."""
    folder = conformance_dir / "gts/pilotnet_sdnn"
    write_netx(read_netx(folder / "network.net", spike_exp=spike_exp), tmp_path / "p.net")
    net = read_netx(tmp_path / "p.net")
    steps = len(net.neuron_layers)
    image = np.load(folder / "input.npy").transpose(3, 2, 1, 0)
    spikes = np.repeat(image[None], steps, axis=1).astype(np.int64)
    ref = run_netx_in_lava(tmp_path / "p.net", steps, spikes=spikes, spike_exp=spike_exp)
    ours = simulate(net, steps, spikes=spikes)
    assert set(ref.s) == set(ours.s)
    for i in ours.s:
        assert np.count_nonzero(ours.s[i]) > 0
        assert np.array_equal(ref.s[i], ours.s[i]), f"layer {i}"


def test_dense_rec_as_we_write_it_runs_alike_in_netx(tmp_path, lava_exe):
    rng = np.random.default_rng(1)
    neuron = CubaNeuron(vth=100, du=500, dv=300, bias_exp=6)
    net = Netlist(
        [
            RecurrentDense(
                weight=rng.integers(-100, 120, (12, 8)), weight_rec=rng.integers(-128, 127, (12, 12)), neuron=neuron
            ),
            Dense(weight=rng.integers(-100, 120, (5, 12)), neuron=neuron),
        ],
        input_shape=(8,),
    )
    write_netx(net, tmp_path / "r.net")
    back = read_netx(tmp_path / "r.net")
    assert isinstance(back.layers[0], RecurrentDense)
    spikes = rng.random((1, 20, 8)) < 0.4
    ref = run_netx_in_lava(tmp_path / "r.net", 20, spikes=spikes, record=("s", "u", "v"))
    ours = simulate(back, 20, spikes=spikes, record=("s", "u", "v"))
    without = simulate(
        Netlist(
            [
                Dense(
                    weight=back.layers[0].weight,
                    neuron=neuron,
                    weight_exp=back.layers[0].weight_exp,
                    weight_bits=back.layers[0].weight_bits,
                )
            ],
            input_shape=(8,),
        ),
        20,
        spikes=spikes,
    )
    assert not np.array_equal(without.s[0], ours.s[0])  # the recurrent synapses change what the layer does
    for i in ours.s:
        for var in ("s", "u", "v"):
            assert np.array_equal(getattr(ref, var)[i + 1], getattr(ours, var)[i]), f"layer {i} {var}"

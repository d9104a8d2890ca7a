"""Files written by our netx writer, run by lava-dl's own ``netx.hdf5.Network``, spike as our simulator does."""

from __future__ import annotations

import numpy as np
import pytest
from neurodeploy.backends.lava import run_netx_in_lava
from neurodeploy.exporters.netx import read_netx, write_netx
from neurodeploy.netlist import Conv, CubaNeuron, Dense, Flatten, Input, Netlist
from neurodeploy.sim import simulate

pytestmark = pytest.mark.lava


def _assert_same(lava, sim, names=("s",)) -> None:
    """Layers in order (file and netlist number them differently), every value of every step."""
    assert len(lava.s) == len(sim.s)
    for name in names:
        for (i, ours), j in zip(sorted(getattr(sim, name).items()), sorted(getattr(lava, name))):
            where = f"netlist layer {i}, file layer {j}, {name}"
            np.testing.assert_array_equal(getattr(lava, name)[j], ours, err_msg=where)


def test_tiny_net_rewritten_runs_alike(lava_exe, conformance_dir, tmp_path):
    original = read_netx(conformance_dir / "tiny.net")
    write_netx(original, tmp_path / "tiny.net")
    net = read_netx(tmp_path / "tiny.net")
    bias = np.load(conformance_dir / "gts/tinynet/input_bias.npy").transpose(2, 1, 0).astype(np.int64)
    lava = run_netx_in_lava(tmp_path / "tiny.net", 20, bias=bias, reset_interval=17, record=("s", "u", "v"))
    sim = simulate(net, 20, bias=bias, reset_interval=17, record=("s", "u", "v"))
    assert sum(sim.spike_count.values()) > 0
    _assert_same(lava, sim, ("s", "u", "v"))


def test_written_dense_and_conv_nets_run_alike(lava_exe, tmp_path):
    rng = np.random.default_rng(5)
    with_input = Netlist(
        [
            Input(
                shape=(2, 5, 6),
                neuron=CubaNeuron(vth=40, du=300, dv=200, bias_exp=6),
                bias=rng.integers(0, 90, (2, 5, 6)),
            ),
            Conv(
                weight=rng.integers(-60, 60, (3, 2, 3, 2)),
                neuron=CubaNeuron(vth=30, du=100, dv=900, bias_exp=6),
                stride=(1, 2),
                padding=(1, 0),
                bias=rng.integers(-20, 20, 3),
            ),
            Flatten(),
            Dense(weight=rng.integers(-100, 100, (7, 3 * 5 * 3)), neuron=CubaNeuron(vth=20, du=4095, dv=0, bias_exp=6)),
        ],
        reset_interval=9,
    )
    spiking_in = Netlist(
        [
            Dense(
                weight=rng.integers(0, 127, (12, 30)),
                neuron=CubaNeuron(vth=50, du=-1, dv=100, bias_exp=6),
                delay=rng.integers(0, 4, (12, 30)),
            ),
            Dense(weight=rng.integers(-128, 127, (4, 12)), neuron=CubaNeuron(vth=10, du=2000, dv=4096, bias_exp=6)),
        ],
        input_shape=(30,),
    )
    steps = 16
    spikes = rng.random((2, steps, 30)) < 0.3
    for k, net in enumerate((with_input, spiking_in)):
        path = tmp_path / f"net{k}.net"
        write_netx(net, path)
        back = read_netx(path)
        first = back.layers[0]
        bias = first.bias if isinstance(first, Input) else None
        x = None if isinstance(first, Input) else spikes
        lava = run_netx_in_lava(path, steps, bias=bias, spikes=x, reset_interval=back.reset_interval)
        sim = simulate(back, steps, spikes=x, bias=bias)
        assert sum(sim.spike_count.values()) > 0
        _assert_same(lava, sim)

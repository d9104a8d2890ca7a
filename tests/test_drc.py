"""Design-rule checks: each rule on a small netlist, and every violation reported at once."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from neurodeploy.drc import DesignRuleError, check, require, unchecked
from neurodeploy.netlist import Conv, CubaNeuron, Dense, Flatten, Input, Netlist
from neurodeploy.targets import load_target

LOIHI1 = load_target("loihi1")
LOIHI2 = load_target("loihi2")
NEURON = CubaNeuron(vth=100, du=4095, dv=0)


def dense_net(n_in: int, n_out: int, seed: int = 0, **kwargs) -> Netlist:
    weight = np.random.default_rng(seed).integers(-8, 8, (n_out, n_in))
    weight[:, 0] = 1  # every neuron has at least one input
    return Netlist([Dense(weight, kwargs.pop("neuron", NEURON), **kwargs)], input_shape=(n_in,))


def quantities(violations) -> list[str]:
    return [v.quantity for v in violations]


def test_a_fitting_network_has_no_violations():
    net = Netlist(
        [
            Input((2, 6, 6), NEURON, np.zeros((2, 6, 6), int)),
            Conv(np.ones((3, 2, 3, 3), int), NEURON),
            Flatten(),
            Dense(np.ones((4, 48), int), NEURON, bias=np.arange(4)),
        ]
    )
    assert check(net, LOIHI1) == []
    require(net, LOIHI1)


def test_over_limit_network_names_every_violation(tmp_path):
    """2000 neurons with fan-in 5000 on a target of 1024 neurons a core that does not split layers."""
    path = tmp_path / "small.toml"
    path.write_text("""
name = "small"
[system]
cores_per_chip = 128
allow_split = false
[core]
neurons = 1024
input_axons = 4096
[neuron]
vth = [0, 131071]
du = [0, 4095]
""")
    target = load_target(path)
    weight = np.ones((2000, 5000), int)
    net = dense_net(5000, 2000, neuron=CubaNeuron(vth=200000, du=-1, dv=0))
    net.layers[0].weight = weight
    found = check(net, target)
    assert quantities(found) == ["vth", "du", "fan-in", "neurons"]
    assert all(v.layer == 0 and v.description == "dense 5000->2000" for v in found)
    fan_in = found[2]
    assert (fan_in.value, fan_in.limit) == (5000, 4096)
    with pytest.raises(DesignRuleError) as info:
        require(net, target)
    lines = str(info.value).splitlines()
    assert "4 design-rule violation(s) against target small" in lines[0] and str(path) in lines[0]
    assert lines[1:] == [
        "  layer 0 (dense 5000->2000): vth 200000 is above the range [0, 131071]",
        "  layer 0 (dense 5000->2000): du -1 is below the range [0, 4095]",
        "  layer 0 (dense 5000->2000): fan-in 5000 exceeds 4096 input axons a core (2000 neuron(s))",
        "  layer 0 (dense 5000->2000): 2000 neurons exceed 1024 neurons a core, and the target does not split layers",
    ]


def test_parameter_ranges_of_loihi1():
    neuron = CubaNeuron(vth=131072, du=4095, dv=4096, bias_exp=8)
    net = dense_net(10, 4, neuron=neuron, bias=np.array([0, 5000, -5000, 1]), weight_exp=-8)
    net.layers[0].weight[0, 1] = -256
    found = {v.quantity: v for v in check(net, LOIHI1)}
    assert set(found) == {"vth", "dv", "bias exponent", "bias mantissa", "weight exponent"}
    assert (found["vth"].value, found["vth"].limit) == (131072, "[0, 131071]")
    assert found["bias mantissa"].message.endswith("(1 of 4 values)")
    assert found["weight exponent"].value == -8


def test_both_ends_of_a_range_are_reported():
    net = dense_net(10, 4, bias=np.array([-5000, 0, 0, 5000]))
    found = [v for v in check(net, LOIHI1) if v.quantity == "bias mantissa"]
    assert [v.value for v in found] == [-5000, 5000]


def test_weight_bits_nine_fit_loihi1_but_not_loihi2():
    net = dense_net(10, 4, weight_bits=9)
    assert check(net, LOIHI1) == []
    assert quantities(check(net, LOIHI2)) == ["weight bits"]


def test_delays_beyond_the_target():
    target = dataclasses.replace(LOIHI1, delay=(0, 7))
    net = dense_net(10, 4, delay=np.full((4, 10), 9))
    (v,) = check(net, target)
    assert (v.quantity, v.value, v.limit) == ("delay", 9, "[0, 7]")


def test_one_neurons_synapses_overflowing_synapse_memory():
    target = dataclasses.replace(LOIHI1, synapse_memory_bits=1000)
    net = dense_net(60, 3)
    net.layers[0].weight[:] = 1
    (v,) = check(net, target)
    assert v.quantity == "synapse memory" and v.value == 60 * (8 + 10)  # 8 weight + 10 index bits


def test_graded_input():
    net = dense_net(10, 4)
    assert quantities(check(net, LOIHI1, input_payload=5)) == ["graded input"]
    assert check(net, LOIHI2, input_payload=2**23 - 1) == []
    assert quantities(check(net, LOIHI2, input_payload=2**23)) == ["graded payload"]


def test_cores_of_the_whole_network_against_the_chips():
    target = dataclasses.replace(LOIHI1, cores_per_chip=2, neurons_per_core=10)
    net = dense_net(5, 25)  # 3 cores
    (v,) = check(net, target)
    assert (v.layer, v.quantity, v.value, v.limit) == (None, "cores", 3, 2)
    assert str(v).startswith("network: needs 3 cores") and "2 chips would hold it" in str(v)
    assert check(net, dataclasses.replace(target, chips=2)) == []


def test_chip_level_neuron_and_synapse_limits():
    target = dataclasses.replace(LOIHI2, neurons_per_chip=20, synapses_per_chip=50)
    net = dense_net(5, 25)
    net.layers[0].weight[:] = 1
    assert quantities(check(net, target)) == ["neurons", "synapses"]


def test_unchecked_names_what_a_target_leaves_out():
    assert unchecked(LOIHI1) == []
    assert {"input axons a core", "synapse memory a core", "weight exponent range"} <= set(unchecked(LOIHI2))

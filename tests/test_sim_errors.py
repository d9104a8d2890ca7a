"""The simulator refuses a run the netlist cannot take with a neurodeploy error, which the CLI prints."""

from __future__ import annotations

import numpy as np
import pytest
from neurodeploy.errors import NeurodeployError, SimulationError
from neurodeploy.netlist import CubaNeuron, Dense, Input, Netlist
from neurodeploy.sim import simulate

NEURON = CubaNeuron(vth=2, du=4095, dv=0)


def dense_net() -> Netlist:
    return Netlist([Dense(np.ones((3, 4), np.int64), weight_exp=0, neuron=NEURON)], input_shape=(4,))


def input_net() -> Netlist:
    return Netlist([Input(shape=(2, 3, 3), neuron=NEURON, bias=np.zeros((2, 3, 3), np.int64))])


@pytest.mark.parametrize(
    "net,kwargs,message",
    [
        (dense_net(), {"record": ("s", "w")}, r"cannot record \['w'\]"),
        (dense_net(), {"conventions": "loihi3"}, "unknown run conventions 'loihi3'"),
        (dense_net(), {"spikes": np.ones((1, 5, 5), bool)}, r"input spikes have shape \(5,\) per step"),
        (dense_net(), {"spikes": np.ones((1, 2, 4), bool)}, "input spikes cover 2 steps, 5 were asked for"),
        (input_net(), {"bias": np.ones((3, 3), np.int64)}, r"bias of shape \(3, 3\) does not fit a layer of shape"),
    ],
)
def test_bad_run_arguments_raise_a_simulation_error(net, kwargs, message):
    with pytest.raises(SimulationError, match=message) as caught:
        simulate(net, 5, **kwargs)
    assert isinstance(caught.value, NeurodeployError)

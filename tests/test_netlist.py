"""The netlist's shared helpers: conv geometry, bias layout, labels and typed accessors."""

from __future__ import annotations

import numpy as np
import pytest
from neurodeploy.netlist import (
    Conv,
    CubaNeuron,
    Dense,
    Flatten,
    Input,
    Netlist,
    NetlistError,
    RecurrentDense,
    SigmaDeltaNeuron,
    bias_per_neuron,
    conv_output_size,
    cuba_neuron,
    describe_layer,
    layer_label,
    neuron_layer,
    synaptic_layer,
)

CUBA = CubaNeuron(vth=10, du=0, dv=0)


@pytest.mark.parametrize(
    "size, kernel, stride, padding, dilation",
    [
        ((7, 5), (3, 3), (1, 1), (0, 0), (1, 1)),
        ((8, 9), (3, 2), (2, 3), (1, 2), (2, 1)),
        ((5, 5), (5, 5), (1, 1), (0, 0), (1, 1)),
    ],
)
def test_conv_output_size_is_torchs(size, kernel, stride, padding, dilation):
    torch = pytest.importorskip("torch")
    out = torch.nn.functional.conv2d(
        torch.zeros(1, 1, *size), torch.zeros(1, 1, *kernel), stride=stride, padding=padding, dilation=dilation
    )
    assert conv_output_size(size, kernel, stride, padding, dilation) == tuple(out.shape[2:])


def test_bias_per_neuron_repeats_a_channel_bias_and_keeps_others():
    bias = np.array([1, -2, 3])
    per = bias_per_neuron(bias, (3, 2, 4))
    assert per.shape == (3, 2, 4) and all(np.all(per[c] == bias[c]) for c in range(3))
    full = np.arange(24).reshape(3, 2, 4)
    assert bias_per_neuron(full, (3, 2, 4)) is full
    assert bias_per_neuron(bias, (3,)) is bias


def test_labels_and_descriptions_name_kind_shape_and_name():
    conv = Conv(weight=np.ones((4, 2, 3, 3), int), neuron=CUBA, in_shape=(2, 6, 6), name="c1")
    dense = Dense(weight=np.ones((5, 64), int), neuron=CUBA)
    net = Netlist([conv, Flatten(), dense], input_shape=(2, 6, 6))
    assert layer_label(0, net.layers[0]) == "layer 0 (conv c1)" and layer_label(2, dense) == "layer 2 (dense)"
    assert describe_layer(conv) == "conv 2x6x6->4x4x4 c1" and describe_layer(dense) == "dense 64->5"
    assert describe_layer(net.layers[1]) == "flatten 4x4x4"
    with pytest.raises(NetlistError, match="layer 1 \\(conv\\): weight expects 2 input channels, input has 3"):
        Netlist([Input((3, 6, 6), CUBA, np.zeros((3, 6, 6), int)), Conv(np.ones((4, 2, 3, 3), int), CUBA)])


def test_accessors_narrow_or_say_what_the_layer_lacks():
    flatten = Flatten(in_shape=(2, 3, 3), name="f")
    with pytest.raises(NetlistError, match="flatten layer 'f' holds no neurons"):
        neuron_layer(flatten)
    with pytest.raises(NetlistError, match="flatten layer 'f' holds no synapses"):
        synaptic_layer(flatten)
    graded = Dense(weight=np.ones((2, 3), int), neuron=SigmaDeltaNeuron(vth=1), name="g")
    with pytest.raises(NetlistError, match="dense layer 'g': SigmaDeltaNeuron neurons are not CUBA"):
        cuba_neuron(graded)
    rec = RecurrentDense(weight=np.ones((2, 3), int), neuron=CUBA, name="r")
    with pytest.raises(NetlistError, match="dense_rec layer 'r': weight_rec is missing"):
        rec.recurrent_weight  # noqa: B018
    assert cuba_neuron(rec) is CUBA and synaptic_layer(rec) is rec


def test_external_shape_is_the_input_layers_or_input_shape():
    first = Input((3,), CUBA, np.zeros(3, int))
    assert Netlist([first, Dense(weight=np.ones((2, 3), int), neuron=CUBA)]).external_shape == (3,)
    assert Netlist([Dense(weight=np.ones((2, 12), int), neuron=CUBA)], input_shape=(3, 2, 2)).external_shape == (
        3,
        2,
        2,
    )

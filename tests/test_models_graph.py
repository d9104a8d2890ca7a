"""float_graph: its ops run with the documented CUBA equations reproduce the model's spikes.

The simulator below uses numpy only and reads nothing but the graph, as a quantizer would.
"""

import numpy as np
import pytest
import torch
from neurodeploy.encoding import encode, make_encoding
from neurodeploy.models import float_graph, make_rule, parse_arch
from neurodeploy.models.network import NeuronLayer, SpikingNetwork
from numpy.lib.stride_tricks import sliding_window_view


def _conv(x, op):
    """Cross-correlation of x (B, C, H, W) with op's weight, stride and padding (groups = 1)."""
    (ph, pw), (sh, sw) = op["padding"], op["stride"]
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    kh, kw = op["weight"].shape[2:]
    win = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    return np.einsum("bchwij,ocij->bohw", win, op["weight"])


def _channel(v, x):
    return v.reshape(-1, *([1] * (x.ndim - 2)))


def simulate_graph(graph, x, membrane=None):
    """Spikes of every neuron op for input x (T, B, ...), by the docstring's equations.

    ``membrane``, a list, receives the v of the last neuron op at every step.
    """
    steps = x.shape[0]
    state, out = {}, {}
    for t in range(steps):
        p = x[t]
        for i, op in enumerate(graph):
            kind = op["op"]
            if kind == "sumpool":
                k = op["kernel"]
                b, c, h, w = p.shape
                p = p[:, :, : h // k * k, : w // k * k].reshape(b, c, h // k, k, w // k, k).sum((3, 5))
            elif kind == "flatten":
                p = p.reshape(p.shape[0], -1)
            elif kind == "dense":
                zw = p @ op["weight"].T
                c = np.zeros_like(zw) + (0 if op["bias"] is None else op["bias"])
            elif kind == "conv":
                zw = _conv(p, op)
                c = np.zeros_like(zw) + (0 if op["bias"] is None else _channel(op["bias"], zw))
            elif kind == "batchnorm":
                gain = op["gamma"] / np.sqrt(op["var"] + op["eps"])
                zw = zw * _channel(gain, zw)
                c = _channel(gain, c) * (c - _channel(op["mean"], c)) + _channel(op["beta"], c)
            elif kind == "neuron":
                u, v = state.get(i, (np.zeros_like(zw), np.zeros_like(zw)))
                if op["input_relu"]:
                    zw, c = np.maximum(zw + c, 0.0), 0.0
                if op["drive"] == "bias":
                    u, drive = np.zeros_like(zw), zw + c
                else:
                    u = (1 - op["current_decay"]) * u + op["input_scale"] * zw
                    drive = u + c
                v = (1 - op["voltage_decay"]) * v + drive
                s = v > op["vth"] if op.get("readout") != "membrane" else np.zeros(v.shape, bool)
                if membrane is not None and i == len(graph) - 1:
                    membrane.append(v)
                emitted = np.where(s, v, 0.0) if op["spike"] == "graded" else s.astype(np.float64)
                v = np.where(s, 0.0, v)
                state[i] = (u, v)
                out.setdefault(i, []).append(s)
                p = emitted
    return [np.stack(out[i]) for i in sorted(out)]


def _model(rule, spec, kind, seed=0, wscale=2.0, **rule_kw):
    torch.manual_seed(seed)
    model = SpikingNetwork(parse_arch(spec), (1, 8, 8), make_rule(rule, **rule_kw), kind).double()
    gen = torch.Generator().manual_seed(seed)
    for block in model.blocks:
        if isinstance(block, NeuronLayer):
            block.synapse.weight.data *= wscale
            if block.norm is not None:
                n = block.norm.num_features
                block.norm.running_mean.copy_(torch.randn(n, generator=gen, dtype=torch.float64) * 0.3)
                block.norm.running_var.copy_(torch.rand(n, generator=gen, dtype=torch.float64) + 0.5)
                block.norm.weight.data.copy_(torch.rand(n, generator=gen, dtype=torch.float64) + 0.5)
                block.norm.bias.data.copy_(torch.randn(n, generator=gen, dtype=torch.float64) * 0.3)
    return model.eval()


CASES = [
    ("tssl", "64-32-10", "rate", {}),
    ("tssl", "4C3p1bn-P2-6C3p1-P2-D0.3-16-10", "direct", {}),
    ("tssl", "4C3-P2-10bn", "latency", {"tau_m": 8.0, "tau_s": 4.0, "vth": 0.7}),
    ("bpsa", "4C3p1bn-P2-16bn-10bn", "rate", {"readout": "spikes"}),
    ("bpsa", "4C3p1bn-P2-16bn-10bn", "rate", {}),
    ("bpsa", "64-32-10", "direct", {"variant": "graded"}),
    ("bptt-lif", "4C3p1-P2-10", "rate", {}),
    ("bptt-if", "64-24-10", "direct", {}),
]


@pytest.mark.parametrize("rule, spec, enc, kw", CASES)
def test_graph_reproduces_model_spikes(rule, spec, enc, kw):
    encoding = make_encoding(enc)
    model = _model(rule, spec, "current" if enc == "direct" else "spikes", **kw)
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    inputs = encode(x, encoding, 6, torch.Generator().manual_seed(2)).double()
    with torch.no_grad():
        output, layers = model(inputs, record=True)
    membrane = []
    expected = simulate_graph(float_graph(model), inputs.numpy(), membrane)
    if model.rule.readout == "membrane":  # the output is the last layer's v, and that layer never fires
        np.testing.assert_allclose(output.numpy(), np.stack(membrane), rtol=1e-9, atol=1e-9)
        assert np.abs(output.numpy()).max() > 0.1
    assert len(expected) == len(layers)
    for got, want in zip(layers, expected):
        assert got.shape == want.shape
        assert np.array_equal(got.numpy() > 0, want), f"{int((got.numpy() > 0 != want).sum())} spikes differ"
    assert 0.02 < np.mean([s.mean() for s in expected]) < 0.9  # the case is not trivially silent


def test_graph_ops_and_neuron_constants():
    graph = float_graph(_model("tssl", "4C3p1-P2-10", "spikes"))
    assert [op["op"] for op in graph] == ["input", "conv", "neuron", "sumpool", "flatten", "dense", "neuron"]
    assert graph[0] == {"op": "input", "kind": "spikes", "shape": (1, 8, 8)}
    conv = graph[1]
    assert conv["weight"].shape == (4, 1, 3, 3) and conv["stride"] == (1, 1) and conv["padding"] == (1, 1)
    neuron = graph[2]
    assert neuron["current_decay"] == neuron["input_scale"] == pytest.approx(1 / 3)
    assert neuron["voltage_decay"] == pytest.approx(1 / 5) and neuron["vth"] == 1.0 and neuron["drive"] == "synaptic"
    assert graph[3] == {"op": "sumpool", "kernel": 2, "stride": 2, "shape": (4, 4, 4)}
    bpsa = float_graph(_model("bpsa", "64-10", "current"))
    assert bpsa[-1]["current_decay"] == 1.0 and bpsa[-1]["voltage_decay"] == 0.0 and bpsa[-1]["vth"] == 0.5
    assert bpsa[-1]["drive"] == "bias" and bpsa[-1]["spike"] == "binary"

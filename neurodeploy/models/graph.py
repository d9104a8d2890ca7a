r"""The eval-time network as plain numpy data, for quantizers that know no torch.

:func:`float_graph` lists the operations in order. Each is a dict with ``op`` and
``shape`` (the output shape of one sample, C-order, (C, H, W) or (N,)):

* ``{"op": "input", "kind": "spikes" | "current"}``: ``spikes`` are binary input spikes
  each step; ``current`` (direct encoding) is the sample itself, constant over time.
* ``{"op": "conv", "weight": (out, in/groups, kh, kw), "bias": (out,) | None, "stride",
  "padding", "dilation": (2,) tuples, "groups"}``: cross-correlation, as PyTorch.
* ``{"op": "dense", "weight": (out, in), "bias": (out,) | None}``.
* ``{"op": "batchnorm", "mean", "var", "gamma", "beta": (C,), "eps"}``:
  ``y = gamma (z - mean) / sqrt(var + eps) + beta`` per output channel.
* ``{"op": "sumpool", "kernel": k, "stride": k}``: sum over k x k windows; no neurons.
* ``{"op": "flatten"}``: (C, H, W) -> (C*H*W,), channel slowest.
* ``{"op": "neuron", "model": "cuba", ...}`` closes a layer: the ops since the previous
  neuron (or the input) are its synapses.

Neuron semantics. Fold the affine ops of a layer (conv/dense, batch norm, and any
sum pooling and flatten before them) into ``z[t] = A x[t] + c``, where ``x`` are the
layer's presynaptic spikes (binary; pooling makes them counts until folded into A)
and ``c`` collects every constant term (biases, batch-norm shift). Then each step::

    u[t] = (1 - current_decay) * u[t-1] + input_scale * (A x[t])     synaptic current
    v[t] = (1 - voltage_decay) * v[t-1] + u[t] + c                   voltage (bias c)
    s[t] = v[t] > vth  (strictly);   v[t] = 0 where s[t]             reset; u is kept

with ``u[-1] = v[-1] = 0``. ``drive = "bias"`` (first layer under the direct encoding)
means ``x`` is the constant sample: ``A x + c`` is a constant bias and ``u = 0``.
For TSSL-BP ``current_decay = input_scale = 1/tau_s`` and ``voltage_decay = 1/tau_m``
(``u`` is then ``A`` times the trace of the presynaptic spikes); for BPSA and the IF
baseline ``current_decay = input_scale = 1`` (current cleared each step) and
``voltage_decay = 0``. ``spike = "graded"`` (BPSA's BrainCog variant, not deployable)
emits ``v[t]`` instead of 1 where it spikes and applies ReLU to ``z`` first
(``input_relu``). ``readout = "membrane"`` (the output layer of a network that
classifies by what it integrates) means the neurons never fire: ``s[t] = 0`` and the
class is the argmax of ``v`` at the window's last step. The float model sees a layer's
spikes in the same step; a chip adds one step of latency a layer.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .network import Flatten, NeuronLayer, SpikingNetwork, SumPool2d, TimeDropout


def _array(t) -> np.ndarray | None:
    return None if t is None else t.detach().cpu().double().numpy().copy()


def _synapse_ops(layer: NeuronLayer, shape: tuple) -> list[dict[str, Any]]:
    syn = layer.synapse
    if isinstance(syn, nn.Linear):
        ops: list[dict[str, Any]] = [
            {"op": "dense", "weight": _array(syn.weight), "bias": _array(syn.bias), "shape": (syn.out_features,)}
        ]
    else:
        ops = [
            {
                "op": "conv",
                "weight": _array(syn.weight),
                "bias": _array(syn.bias),
                "stride": tuple(syn.stride),
                "padding": tuple(syn.padding),
                "dilation": tuple(syn.dilation),
                "groups": syn.groups,
                "shape": shape,
            }
        ]
    if layer.norm is not None:
        bn = cast(_BatchNorm, layer.norm)
        ops.append(
            {
                "op": "batchnorm",
                "mean": _array(bn.running_mean),
                "var": _array(bn.running_var),
                "gamma": _array(bn.weight),
                "beta": _array(bn.bias),
                "eps": float(bn.eps),
                "shape": shape,
            }
        )
    return ops


def _neuron_op(layer: NeuronLayer, shape: tuple, drive: str) -> dict:
    rule = layer.rule
    op = {
        "op": "neuron",
        **rule.neuron.as_dict(),
        "rule": rule.name,
        "reset": "zero",
        "spike": rule.variant,
        "input_relu": rule.variant == "graded",
        "drive": drive,
        "shape": shape,
    }
    return {**op, "readout": "membrane"} if layer.readout else op


@torch.no_grad()
def _out_shapes(model: SpikingNetwork) -> list[tuple]:
    param = next(model.parameters())
    x = torch.zeros(1, 1, *model.input_shape, dtype=param.dtype, device=param.device)
    shapes = []
    for block in model.blocks:
        x = block(x)[0] if isinstance(block, NeuronLayer) else block(x)
        shapes.append(tuple(x.shape[2:]))
    return shapes


def float_graph(model: SpikingNetwork) -> list[dict]:
    """The eval-time ``model`` as an ordered list of plain-data ops (module docstring)."""
    was_training = model.training
    model.eval()
    graph: list[dict] = [{"op": "input", "kind": model.input_kind, "shape": model.input_shape}]
    first = True
    for block, shape in zip(model.blocks, _out_shapes(model)):
        if isinstance(block, NeuronLayer):
            graph += _synapse_ops(block, shape)
            graph.append(_neuron_op(block, shape, "bias" if first and model.input_kind == "current" else "synaptic"))
            first = False
        elif isinstance(block, SumPool2d):
            graph.append({"op": "sumpool", "kernel": block.kernel, "stride": block.kernel, "shape": shape})
        elif isinstance(block, Flatten):
            graph.append({"op": "flatten", "shape": shape})
        elif not isinstance(block, TimeDropout):
            raise TypeError(f"float_graph: no description for {type(block).__name__}")
    model.train(was_training)
    return graph

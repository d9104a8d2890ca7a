"""Quantization-aware training: the forward pass computes what the chip computes.

:func:`enable_qat` gives every neuron layer a :class:`LayerQuantizer`. Each
forward pass, a layer's scale comes from its current weights exactly as the
quantizer computes it for export (:func:`neurodeploy.quantize.layer_scale`), and
the layer then runs with

* its weights (times the synaptic input scale, as folded) on the target's weight
  grid, and its biases on the bias grid;
* for the direct encoding's first layer, the input current ``W x + b`` on the
  bias grid (the host sends it as the input layer's bias mantissas);
* its threshold as the integer threshold compares it;
* the time constants the target's integer decays give (``tau_s = 4096 / (du + 1)``,
  ``tau_m = 4096 / dv``), set on the rule once.

Rounding and clipping pass the gradient straight through (as lava-dl's
``quantize_8bit`` pre-hook does for SLAYER). :func:`fix_scales` ends training: it
freezes every layer's scale and puts the weights and biases on their grids; the
checkpoint records those scales (:func:`qat_entry`), loading one rebuilds this
forward pass, and export of it for the same target uses them as they are, so
the integer network is the one training used. Batch norm is refused: its folded
weights change with the batch statistics.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neurodeploy.errors import NeurodeployError
from neurodeploy.fold import FloatLayer
from neurodeploy.quantize import LayerScale, Limits, WeightGrid, chip_decays, decays, layer_scale

from .network import NeuronLayer, SpikingNetwork, over_time
from .rules import Rule


class QatError(NeurodeployError, ValueError):
    """A network or checkpoint entry that quantization-aware training cannot use."""


def chip_rule(rule: Rule, limits: Limits) -> Rule:
    """``rule`` with the time constants that the target's integer decays give."""
    du, dv = decays(rule.neuron.as_dict(), limits, f"rule {rule.name}")
    current, voltage = chip_decays(du, dv)
    neuron = dataclasses.replace(rule.neuron, tau_s=1.0 / current, tau_m=math.inf if voltage == 0 else 1.0 / voltage)
    return dataclasses.replace(rule, neuron=neuron)


class LayerQuantizer:
    """The chip's rounding of one neuron layer; ``fixed`` freezes its scale."""

    def __init__(self, limits: Limits, bias_drive: bool, label: str, fixed: LayerScale | None = None):
        self.limits, self.bias_drive, self.label, self.fixed = limits, bias_drive, label, fixed

    def input_scale(self, layer: NeuronLayer) -> float:
        """The synaptic input scale ``1/tau_s`` the fold puts into the weights (1 for a bias-driven layer)."""
        return 1.0 if self.bias_drive else 1.0 / layer.rule.neuron.tau_s

    def scale(self, layer: NeuronLayer) -> LayerScale:
        """The frozen scale, or the one export would compute from the current weights."""
        if self.fixed is not None:
            return self.fixed
        syn = layer.synapse
        neuron = {**layer.rule.neuron.as_dict(), "drive": "bias" if self.bias_drive else "synaptic"}
        weight = syn.weight.detach().double().cpu().numpy() * self.input_scale(layer)
        bias = np.zeros(weight.shape[0]) if syn.bias is None else syn.bias.detach().double().cpu().numpy()
        kind = "dense" if isinstance(syn, nn.Linear) else "conv"
        return layer_scale(FloatLayer(kind, weight, bias, neuron, (), ()), self.limits, label=self.label)

    def parameters(self, layer: NeuronLayer, scale: LayerScale) -> tuple[Tensor, Tensor | None]:
        """(weight, bias) as the chip holds them, in the layer's float units."""
        syn, s_in = layer.synapse, self.input_scale(layer)
        if self.bias_drive:
            return syn.weight, syn.bias
        weight = scale.weight(syn.weight * s_in) / s_in
        return weight, None if syn.bias is None else scale.bias(syn.bias)

    def __call__(self, layer: NeuronLayer, x: Tensor) -> tuple[Tensor, float]:
        """(input current, threshold) of ``layer`` for input ``x`` (T, B, ...), as the chip has them."""
        scale = self.scale(layer)
        weight, bias = self.parameters(layer, scale)
        syn = layer.synapse
        if isinstance(syn, nn.Linear):
            z = over_time(lambda v: F.linear(v, weight, bias), x)
        else:
            z = over_time(lambda v: F.conv2d(v, weight, bias, syn.stride, syn.padding, syn.dilation, syn.groups), x)
        if self.bias_drive:
            z = scale.bias(z)
        return z, float(scale.vth(np.float64(layer.rule.neuron.vth)))


def neuron_layers(model: SpikingNetwork) -> list[NeuronLayer]:
    return [b for b in model.blocks if isinstance(b, NeuronLayer)]


def enable_qat(model: SpikingNetwork, limits: Limits, scales: list[LayerScale] | None = None) -> None:
    """Make ``model``'s forward pass the chip's (module docstring); ``scales`` freezes the layers' scales."""
    layers = neuron_layers(model)
    if not model.rule.deployable:
        raise QatError(f"rule {model.rule.name} {model.rule.variant} is not deployable: nothing to train it for")
    for k, layer in enumerate(layers):
        if layer.norm is not None:
            raise QatError(
                f"arch {model.arch.spec!r}, neuron layer {k + 1}: batch norm cannot be trained "
                "quantization-aware (its folded weights follow the batch); drop 'bn'"
            )
    if scales is not None and len(scales) != len(layers):
        raise QatError(f"{len(scales)} quantization scales for {len(layers)} neuron layers")
    model.rule = chip_rule(model.rule, limits)
    for k, layer in enumerate(layers):
        layer.rule = model.rule
        first_direct = k == 0 and model.input_kind == "current"
        layer.quantizer = LayerQuantizer(
            limits, first_direct, f"neuron layer {k + 1}", None if scales is None else scales[k]
        )


@torch.no_grad()
def fix_scales(model: SpikingNetwork) -> list[LayerScale]:
    """Freeze every layer's scale at its current value and put its weights and biases on their grids."""
    scales = []
    for layer in neuron_layers(model):
        q = layer.quantizer
        if not isinstance(q, LayerQuantizer):
            raise QatError("fix_scales needs a model made quantization-aware by enable_qat")
        scale = q.scale(layer)
        weight, bias = q.parameters(layer, scale)
        layer.synapse.weight.copy_(weight)
        if bias is not None and layer.synapse.bias is not None:
            layer.synapse.bias.copy_(bias)
        q.fixed = scale
        scales.append(scale)
    return scales


def qat_entry(target_name: str, limits: Limits, scales: list[LayerScale]) -> dict:
    """The checkpoint's ``qat`` entry: the target, its limits and every layer's frozen scale."""
    return {
        "target": target_name,
        "limits": dataclasses.asdict(limits),
        "scales": [dataclasses.asdict(s) for s in scales],
    }


def from_entry(entry: dict, source: str) -> tuple[Limits, list[LayerScale]]:
    """(limits, scales) of a checkpoint's ``qat`` entry; :class:`QatError` naming what is wrong."""
    try:
        given: dict[str, Any] = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in entry["limits"].items()}
        limits = Limits(**given)
        scales = []
        for d in entry["scales"]:
            grid = WeightGrid(**d["grid"])
            low, high = (int(b) for b in d["bias_mantissa"])
            scales.append(
                LayerScale(
                    float(d["lam"]),
                    int(d["weight_exp"]),
                    grid,
                    int(d["bias_exp"]),
                    (low, high),
                    float(d["weight_range"]),
                )
            )
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise QatError(f"{source}: qat entry: {type(err).__name__}: {err}") from None
    if not all(math.isfinite(s.lam) and s.lam > 0 for s in scales):
        raise QatError(f"{source}: qat entry: every scale must be a finite number > 0")
    return limits, scales

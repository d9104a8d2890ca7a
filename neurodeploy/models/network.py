"""The spiking network built from an architecture spec and a rule.

Every tensor is time-major, ``(T, batch, ...)``. A neuron layer computes its input
current ``I[t] = BN(W x[t] + b)`` (batch norm optional) from what the previous layer
passes on (``x``: spikes, or their trace for TSSL-BP; the encoded input for the first
layer) and runs the rule's neuron on it (:mod:`neurodeploy.models.neurons`). Sum
pooling and flattening act on ``x`` between layers and hold no neurons.

The rule's readout says what the classes are read from (:func:`predict`, ties to
the lowest class index): ``spikes``, the class whose output neuron spiked most over
the window; ``membrane``, the class whose output neuron integrated most: the output
layer's neurons never fire, and its membrane ``v[t] = (1 - 1/tau_m) v[t-1] + I[t]``
at the window's last step decides.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .arch import Architecture, Conv, Dense, Dropout, SumPool, layer_shapes
from .neurons import BPSAFunction, TSSLBPFunction, bptt_neuron, integrate, psp
from .rules import Rule


class RunOutput(NamedTuple):
    """Result of :meth:`SpikingNetwork.run`.

    ``output``: what the classes are read from (T, B, classes), detached: the binary
    output spikes, or the output membrane under the ``membrane`` readout; ``signal``:
    what the loss differentiates (the output trace for ``tssl``, the output membrane
    under the ``membrane`` readout, else the emitted spikes, graded for BPSA's graded
    variant); ``layers``: the binary spikes of every neuron layer, detached, in order
    (the last is the output layer's).
    """

    output: Tensor
    signal: Tensor
    layers: list[Tensor]

    @property
    def spikes(self) -> Tensor:
        """The output layer's binary spikes (T, B, classes)."""
        return self.layers[-1]


def over_time(module: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Apply a per-sample ``module`` to every step of a time-major tensor."""
    steps, batch = x.shape[:2]
    y = module(x.reshape(steps * batch, *x.shape[2:]))
    return y.reshape(steps, batch, *y.shape[1:])


class SumPool2d(nn.Module):
    """Sum over K x K windows with stride K, time-major (no neurons; folds into the next layer)."""

    def __init__(self, kernel: int):
        super().__init__()
        self.kernel = kernel

    def forward(self, x: Tensor) -> Tensor:
        pooled = F.avg_pool2d(x.flatten(0, 1), self.kernel) * (self.kernel * self.kernel)
        return pooled.reshape(*x.shape[:2], *pooled.shape[1:])


class TimeDropout(nn.Module):
    """Dropout with one mask a sample for the whole window; identity in eval mode."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty_like(x[0]).bernoulli_(1.0 - self.p) / (1.0 - self.p)
        return x * keep


class Flatten(nn.Module):
    """(T, B, C, H, W) -> (T, B, C*H*W), channel slowest."""

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(2)


class NeuronLayer(nn.Module):
    """Synapses (dense or conv), optional batch norm, and the rule's neurons."""

    def __init__(self, synapse: nn.Linear | nn.Conv2d, norm: nn.Module | None, rule: Rule, readout: bool = False):
        super().__init__()
        self.synapse = synapse
        self.norm = norm
        self.rule = rule
        self.readout = readout  # a membrane readout: the neurons integrate and never fire
        # quantization-aware training's rounding (neurodeploy.models.qat), if any: (input current, threshold)
        self.quantizer: Callable[[NeuronLayer, Tensor], tuple[Tensor, float]] | None = None

    def current(self, x: Tensor) -> Tensor:
        z = over_time(self.synapse, x)
        if self.norm is not None:
            z = over_time(self.norm, z)
        if self.rule.variant == "graded":
            z = torch.relu(z)
        return z

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return (what the next layer receives, what the neurons emit).

        The emitted values are the spikes, or BPSA's graded outputs; they carry the
        rule's gradient except under TSSL-BP, whose gradient flows through the trace.
        """
        n = self.rule.neuron
        z, vth = self.quantizer(self, x) if self.quantizer is not None else (self.current(x), n.vth)
        if self.readout:
            v = integrate(z, n.tau_m)
            return v, v
        if self.rule.name == "tssl":
            return TSSLBPFunction.apply(z, n.tau_m, n.tau_s, vth, self.rule.tssl_grad == "reference")
        if self.rule.name == "bpsa":
            out = BPSAFunction.apply(z, vth, self.rule.variant == "graded")
            return out, out
        spikes = bptt_neuron(z, n.tau_m, vth, self.rule.surrogate_width)
        return (psp(spikes, n.tau_s) if self.rule.passes_trace else spikes), spikes


def _neuron_layer(layer: Dense | Conv, in_shape: tuple[int, ...], rule: Rule, readout: bool) -> NeuronLayer:
    bias = not layer.batchnorm
    if isinstance(layer, Dense):
        synapse: nn.Linear | nn.Conv2d = nn.Linear(math.prod(in_shape), layer.units, bias=bias)
        norm: nn.Module | None = nn.BatchNorm1d(layer.units) if layer.batchnorm else None
    else:
        synapse = nn.Conv2d(in_shape[0], layer.channels, layer.kernel, layer.stride, layer.padding, bias=bias)
        norm = nn.BatchNorm2d(layer.channels) if layer.batchnorm else None
    return NeuronLayer(synapse, norm, rule, readout)


class SpikingNetwork(nn.Module):
    """A feed-forward SNN: ``model(x)`` -> its output (T, B, classes), as :func:`predict` reads it.

    ``x`` is the encoded input (:func:`neurodeploy.encoding.encode`): spikes, or for the
    ``direct`` encoding the constant input current, shaped (T, B, *input_shape). The
    output is the output layer's spikes, or its membrane under the ``membrane`` readout.
    ``model(x, record=True)`` -> (output, [spikes of every neuron layer]).
    """

    def __init__(self, arch: Architecture, input_shape: tuple[int, ...], rule: Rule, input_kind: str = "spikes"):
        super().__init__()
        if input_kind not in ("spikes", "current"):
            raise ValueError(f"input_kind must be 'spikes' or 'current', got {input_kind!r}")
        self.arch = arch
        self.input_shape = tuple(int(s) for s in input_shape)
        self.rule = rule
        self.input_kind = input_kind
        self.blocks = nn.ModuleList()
        shape = self.input_shape
        last = len(arch.layers) - 1
        for i, (layer, out_shape) in enumerate(zip(arch.layers, layer_shapes(arch, self.input_shape))):
            if isinstance(layer, Dense) and len(shape) > 1:
                self.blocks.append(Flatten())
            if isinstance(layer, (Dense, Conv)):
                self.blocks.append(_neuron_layer(layer, shape, rule, i == last and rule.readout == "membrane"))
            elif isinstance(layer, SumPool):
                self.blocks.append(SumPool2d(layer.kernel))
            elif isinstance(layer, Dropout):
                self.blocks.append(TimeDropout(layer.p))
            shape = out_shape

    def run(self, x: Tensor) -> RunOutput:
        """Forward pass with everything training needs."""
        if x.shape[2:] != self.input_shape:
            raise ValueError(
                f"input has shape {tuple(x.shape)}, expected (T, B, {', '.join(map(str, self.input_shape))})"
            )
        signal = x
        if self.input_kind == "spikes" and self.rule.passes_trace:
            signal = psp(x, self.rule.neuron.tau_s)
        layers = []
        for block in self.blocks:
            if isinstance(block, NeuronLayer):
                signal, emitted = block(signal)
                fired = torch.zeros_like(emitted) if block.readout else emitted.detach() > 0
                layers.append(fired.detach().to(emitted.dtype))
            else:
                signal = block(signal)
        output = emitted.detach() if self.rule.readout == "membrane" else layers[-1]
        return RunOutput(output, signal if self.rule.name == "tssl" else emitted, layers)

    def forward(self, x: Tensor, record: bool = False):
        out = self.run(x)
        return (out.output, out.layers) if record else out.output


def class_scores(output: Tensor, readout: str = "spikes") -> Tensor:
    """(B, classes) from a time-major output: spike counts, or the membrane at the last step."""
    return output[-1] if readout == "membrane" else output.sum(0)


def predict(output: Tensor, readout: str = "spikes") -> Tensor:
    """Class of each sample: argmax of :func:`class_scores`, ties to the lowest index."""
    return class_scores(output, readout).argmax(-1)

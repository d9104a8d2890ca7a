"""The integer netlist: the hub every stage after the quantizer reads and writes.

Plain dataclasses over integer numpy arrays; no torch. Shapes are in (C, H, W)
order for spatial layers and (N,) for dense ones. Every layer with neurons is a
current-based (CUBA) leaky integrate-and-fire population run with the fixed-point
semantics of Loihi (see :mod:`neurodeploy.sim`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np

from neurodeploy import budget
from neurodeploy import fixed_point as fx
from neurodeploy.errors import NeurodeployError

MAX_DELAY = 62
MAX_LAYERS = 256  # layers a netlist may hold (reading a file's layers takes time: its count is bounded first)
READOUTS = ("spikes", "membrane")  # what a netlist's classes are read from (Netlist.readout)


class NetlistError(NeurodeployError):
    """A netlist that breaks its own rules; the message names layer and field."""


def _int_array(layer: str, name: str, value, ndim: int | None = None) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise NetlistError(f"{layer}: {name} must hold integers, got non-integer values")
    elif arr.dtype.kind not in "iub":
        raise NetlistError(f"{layer}: {name} must be an integer array, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise NetlistError(f"{layer}: {name} must have {ndim} dimensions, got shape {arr.shape}")
    return arr.astype(np.int64)


def _check_range(layer: str, name: str, value, lo: int, hi: int) -> None:
    arr = np.asarray(value)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        bad = arr.min() if arr.min() < lo else arr.max()
        raise NetlistError(f"{layer}: {name} = {int(bad)} is outside [{lo}, {hi}]")


@dataclass
class CubaNeuron:
    r"""Parameters of a CUBA LIF population, in Lava's fixed-point convention.

    Each step: :math:`u \leftarrow \mathrm{trunc}(u (4096 - du - 1) / 4096) + (a_{in} \ll 6)`
    wrapped to 24 bits; :math:`v \leftarrow \mathrm{trunc}(v (4096 - dv) / 4096) + u + b`
    saturated to 24 bits, with :math:`b = \mathrm{bias} \ll \mathrm{bias\_exp}`;
    spike where :math:`v > \mathrm{vth} \ll 6`, then :math:`v \leftarrow 0`.
    """

    vth: int  # threshold mantissa, compared as vth << 6
    du: int  # current decay, -1 (keep) .. 4095 (clear)
    dv: int  # voltage decay, 0 (keep) .. 4096 (clear)
    bias_exp: int = 0  # bias = bias_mant << bias_exp (>> when negative)

    def validate(self, layer: str) -> None:
        for name in ("vth", "du", "dv", "bias_exp"):
            if not isinstance(getattr(self, name), (int, np.integer)):
                raise NetlistError(f"{layer}: neuron.{name} must be an integer, got {getattr(self, name)!r}")
        _check_range(layer, "neuron.vth", self.vth, 0, 2**23 - 1)
        _check_range(layer, "neuron.du", self.du, -1, 4095)
        _check_range(layer, "neuron.dv", self.dv, 0, 4096)
        _check_range(layer, "neuron.bias_exp", self.bias_exp, -24, 24)


def _shape(layer: str, shape) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if not shape or any(s <= 0 for s in shape):
        raise NetlistError(f"{layer}: shape must be positive sizes, got {shape}")
    return shape


@dataclass
class Input:
    """Input neurons driven by their bias (e.g. an image); no synapses.

    ``bias`` holds one mantissa a neuron, in ``shape``; a run may replace it.
    """

    shape: tuple[int, ...]
    neuron: CubaNeuron
    bias: np.ndarray  # int, shaped like `shape`
    name: str = ""

    kind = "input"

    def validate(self, label: str, in_shape: tuple[int, ...] | None) -> None:
        self.shape = _shape(label, self.shape)
        self.neuron.validate(label)
        self.bias = _int_array(label, "bias", self.bias)
        if self.bias.shape != self.shape:
            raise NetlistError(f"{label}: bias shape {self.bias.shape} differs from layer shape {self.shape}")


@dataclass
class Dense:
    """Dense synapses (out, in) into a CUBA population of ``out`` neurons.

    Binary spikes add the weights of the inputs that spiked; the sum is shifted by
    ``weight_exp`` and reaches the neurons one step later (plus ``delay``).
    Weights are stored as the chip holds them: 8-bit mantissas already truncated
    to ``weight_bits``. Mixed-sign weights may have 9 bits (sign and 8 bits, no
    truncation), as netx encodes some files for Lava.
    """

    weight: np.ndarray  # int (out, in)
    neuron: CubaNeuron
    bias: np.ndarray | None = None  # int (out,) mantissas
    weight_exp: int = 0
    weight_bits: int = 8
    delay: np.ndarray | None = None  # int (out, in), 0..62 extra steps
    name: str = ""

    kind = "dense"

    @property
    def shape(self) -> tuple[int, ...]:
        return (int(self.weight.shape[0]),)

    def validate(self, label: str, in_shape: tuple[int, ...] | None) -> None:
        self.weight = _int_array(label, "weight", self.weight, ndim=2)
        self.neuron.validate(label)
        if in_shape is not None and int(np.prod(in_shape)) != self.weight.shape[1]:
            raise NetlistError(
                f"{label}: weight has {self.weight.shape[1]} inputs but the previous layer has "
                f"{int(np.prod(in_shape))} neurons {in_shape}"
            )
        mixed = bool(np.any(self.weight < 0) and np.any(self.weight > 0))
        _check_range(label, "weight_bits", self.weight_bits, 1, 9 if mixed else 8)
        _check_range(label, "weight_exp", self.weight_exp, -16, 16)
        if self.bias is not None:
            self.bias = _int_array(label, "bias", self.bias, ndim=1)
            if self.bias.shape != self.shape:
                raise NetlistError(f"{label}: bias has shape {self.bias.shape}, expected {self.shape}")
        if self.delay is not None:
            self.delay = _int_array(label, "delay", self.delay)
            if self.delay.shape != self.weight.shape:
                raise NetlistError(f"{label}: delay shape {self.delay.shape} differs from weight {self.weight.shape}")
            _check_range(label, "delay", self.delay, 0, MAX_DELAY)


@dataclass
class Conv:
    """2-D convolution synapses into a CUBA population of shape (C_out, H_out, W_out).

    ``weight`` is (out, in / groups, kH, kW) applied as cross-correlation (the
    PyTorch convention); outputs wrap to 24 bits and arrive one step later.
    """

    weight: np.ndarray  # int (out, in/groups, kH, kW)
    neuron: CubaNeuron
    in_shape: tuple[int, int, int] = (0, 0, 0)  # (C, H, W) of the input
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    bias: np.ndarray | None = None  # int (out,) or (C_out, H_out, W_out)
    weight_exp: int = 0
    name: str = ""

    kind = "conv"

    @property
    def weight_bits(self) -> int:
        """Weight bits its mantissas need, counted as a dense layer's ``weight_bits`` (the chip keeps them whole)."""
        return fx.weight_bits_used(self.weight)

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.in_shape
        kh, kw = self.weight.shape[2:]
        ho = (h + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        wo = (w + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        return (int(self.weight.shape[0]), int(ho), int(wo))

    def validate(self, label: str, in_shape: tuple[int, ...] | None) -> None:
        self.weight = _int_array(label, "weight", self.weight, ndim=4)
        self.neuron.validate(label)
        if in_shape is not None:
            if len(in_shape) != 3:
                raise NetlistError(f"{label}: conv needs a (C, H, W) input, got {in_shape}")
            self.in_shape = tuple(int(s) for s in in_shape)
        self.stride, self.padding, self.dilation = (
            tuple(int(x) for x in np.broadcast_to(np.asarray(p), (2,))) for p in (self.stride, self.padding, self.dilation)
        )
        self.groups = int(self.groups)
        if self.groups < 1 or self.weight.shape[0] % self.groups or self.in_shape[0] % self.groups:
            raise NetlistError(f"{label}: groups = {self.groups} does not divide the channels")
        if self.weight.shape[1] * self.groups != self.in_shape[0]:
            raise NetlistError(
                f"{label}: weight expects {self.weight.shape[1] * self.groups} input channels, input has {self.in_shape[0]}"
            )
        if min(self.stride) < 1 or min(self.dilation) < 1 or min(self.padding) < 0:
            raise NetlistError(f"{label}: stride and dilation must be >= 1 and padding >= 0")
        if min(self.shape) < 1:
            raise NetlistError(f"{label}: output shape {self.shape} is empty")
        if self.bias is not None:
            self.bias = _int_array(label, "bias", self.bias)
            if self.bias.shape not in ((self.shape[0],), self.shape):
                raise NetlistError(f"{label}: bias shape {self.bias.shape} fits neither ({self.shape[0]},) nor {self.shape}")


@dataclass
class Flatten:
    """Reshape to (N,) in C-order (channel slowest); no neurons, no latency."""

    in_shape: tuple[int, ...] = ()
    name: str = ""

    kind = "flatten"

    @property
    def shape(self) -> tuple[int]:
        return (int(np.prod(self.in_shape)),)

    def validate(self, label: str, in_shape: tuple[int, ...] | None) -> None:
        if in_shape is not None:
            self.in_shape = tuple(int(s) for s in in_shape)


Layer = Union[Input, Dense, Conv, Flatten]


@dataclass
class Netlist:
    """An ordered chain of layers, feed-forward, with the run conventions.

    ``input_shape`` is the shape of external spikes when layer 0 is not an
    :class:`Input`. ``reset_interval`` resets u and v of the k-th neuron layer
    (0-based, flatten layers not counted) at every step t (0-based) with
    ``t % reset_interval == (k + reset_offset) % reset_interval``, as netx
    staggers Lava's resets; ``None`` for never. A quantized network sets
    ``reset_offset`` so that each layer resets on the step its first input
    arrives, which aligns the chip's latency with the float model's steps. ``output_window`` is the (start, stop) of steps
    over which consumers count output spikes. ``meta["readout"] = "membrane"`` says the
    classes are read from the output layer's v at the window's last step instead
    (:attr:`readout`; its neurons have the largest threshold and never fire).
    """

    layers: list[Layer]
    input_shape: tuple[int, ...] | None = None
    reset_interval: int | None = None
    reset_offset: int = 0
    output_window: tuple[int, int] | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not self.layers:
            raise NetlistError("netlist has no layers")
        if len(self.layers) > MAX_LAYERS:
            raise NetlistError(f"netlist: {len(self.layers)} layers, more than the limit of {MAX_LAYERS}")
        if self.input_shape is not None:
            self.input_shape = _shape("netlist input", self.input_shape)
        shape, neurons = self.input_shape, 0
        for i, layer in enumerate(self.layers):
            label = f"layer {i} ({layer.kind}{' ' + layer.name if layer.name else ''})"
            if isinstance(layer, Input) and i != 0:
                raise NetlistError(f"{label}: an input layer may only come first")
            if shape is None and not isinstance(layer, Input):
                raise NetlistError(f"{label}: the netlist needs input_shape when layer 0 is not an input layer")
            layer.validate(label, shape)
            shape = layer.shape
            neurons += 0 if isinstance(layer, Flatten) else int(np.prod(shape, dtype=object))
            try:
                budget.require(neurons * budget.NEURON_BYTES, f"{label}: the {neurons} neurons up to here")
            except budget.BudgetError as err:
                raise NetlistError(str(err)) from None
        if self.reset_interval is not None and int(self.reset_interval) < 1:
            raise NetlistError(f"netlist: reset_interval = {self.reset_interval} must be >= 1")
        if self.readout not in READOUTS:
            raise NetlistError(f"netlist: meta readout = {self.readout!r} must be one of {', '.join(READOUTS)}")

    @property
    def readout(self) -> str:
        """What the classes are read from: ``spikes`` (counts over the window) or ``membrane``."""
        return self.meta.get("readout", "spikes")

    @property
    def neuron_layers(self) -> list[int]:
        """Indices of the layers that hold neurons (all but flatten)."""
        return [i for i, layer in enumerate(self.layers) if not isinstance(layer, Flatten)]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.layers[-1].shape

    @property
    def latency(self) -> int:
        """Steps from an input spike to the last layer: one a synaptic layer."""
        return sum(isinstance(layer, (Dense, Conv)) for layer in self.layers)

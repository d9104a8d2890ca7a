"""The integer netlist: the hub every stage after the quantizer reads and writes.

Plain dataclasses over integer numpy arrays; no torch. Shapes are in (C, H, W)
order for spatial layers and (N,) for dense ones. A layer's neurons are either a
current-based (CUBA) leaky integrate-and-fire population or, in a sigma-delta
network, Loihi 2's graded-spike neurons (:class:`DeltaNeuron`,
:class:`SigmaDeltaNeuron`, :class:`SigmaNeuron`), all run with the fixed-point
semantics of Lava's models (see :mod:`neurodeploy.sim`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neurodeploy import budget
from neurodeploy import fixed_point as fx
from neurodeploy.errors import NeurodeployError
from neurodeploy.fixed_point import INT32_MAX, STATE_EXP

MAX_DELAY = 62
MAX_MESSAGE_BITS = 24  # a graded spike's payload on Loihi 2
ACTIVATIONS = ("relu", "none")
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


def _check_ints(layer: str, neuron, names: tuple[str, ...]) -> None:
    for name in names:
        if not isinstance(getattr(neuron, name), (int, np.integer)) or isinstance(getattr(neuron, name), bool):
            raise NetlistError(f"{layer}: neuron.{name} must be an integer, got {getattr(neuron, name)!r}")


def _check_graded(layer: str, neuron) -> None:
    """Fields shared by the delta encoders: vth, spike_exp, message_bits, cum_error."""
    _check_ints(layer, neuron, ("vth", "spike_exp", "message_bits"))
    if not isinstance(neuron.cum_error, (bool, np.bool_)):
        raise NetlistError(f"{layer}: neuron.cum_error must be True or False, got {neuron.cum_error!r}")
    _check_range(layer, "neuron.spike_exp", neuron.spike_exp, 0, 31 - STATE_EXP)
    _check_range(layer, "neuron.message_bits", neuron.message_bits, 1, MAX_MESSAGE_BITS)
    _check_range(layer, "neuron.vth", neuron.vth, 0, INT32_MAX >> (neuron.spike_exp + STATE_EXP))


@dataclass
class DeltaNeuron:
    r"""The delta encoder of a sigma-delta network's input layer (Lava's fixed_pt ``Delta``).

    All in int32 arithmetic, wrapping modulo 2**32, with
    :math:`e = \mathrm{spike\_exp} + 6`. Each step the input x becomes
    :math:`a = x \ll e`; :math:`d = a - a_{prev} + r` (r the residue); the
    encoder sends :math:`d` where :math:`|d| \ge \mathrm{vth} \ll e` (with
    ``cum_error``, where the accumulated :math:`\epsilon \mathrel{+}= d`
    passes it; :math:`\epsilon` clears where a message goes), else 0; then
    :math:`r = d - \mathrm{sent}`, :math:`a_{prev} = a`. The message is
    :math:`\mathrm{sent} \gg 6` (a floor shift), a graded spike of
    ``message_bits`` bits.
    """

    vth: int  # threshold mantissa, compared as vth << (spike_exp + 6)
    spike_exp: int = 6  # fraction bits of a graded message
    message_bits: int = 16
    cum_error: bool = False

    kind = "delta"

    def validate(self, layer: str) -> None:
        _check_graded(layer, self)


@dataclass
class SigmaDeltaNeuron:
    r"""A sigma-delta neuron with graded spikes (Lava's fixed_pt ``SigmaDelta``).

    All in int32 arithmetic, wrapping modulo 2**32, with
    :math:`e = \mathrm{spike\_exp} + 6`. Each step
    :math:`\sigma \mathrel{+}= a_{in}`; the activation is
    :math:`a = \max(\sigma + b, 0)` (``relu``) or :math:`\sigma + b` (``none``),
    with :math:`b = \mathrm{bias} \ll e`; then the delta encoding of
    :class:`DeltaNeuron` on a: :math:`d = a - a_{prev} + r`, sent where
    :math:`|d| \ge \mathrm{vth} \ll e`, the message :math:`\mathrm{sent} \gg 6`.
    """

    vth: int  # threshold mantissa, compared as vth << (spike_exp + 6)
    spike_exp: int = 6
    message_bits: int = 16
    activation: str = "relu"  # "relu" or "none"
    cum_error: bool = False

    kind = "sigma_delta"

    def validate(self, layer: str) -> None:
        _check_graded(layer, self)
        if self.activation not in ACTIVATIONS:
            raise NetlistError(f"{layer}: neuron.activation = {self.activation!r}, expected one of {ACTIVATIONS}")


@dataclass
class SigmaNeuron:
    r"""The readout of a sigma-delta network (Lava's fixed_pt ``Sigma``).

    Each step :math:`\sigma \mathrel{+}= a_{in}` (int32, wrapping modulo
    2**32), and the neuron sends :math:`\sigma` as a graded message of
    ``message_bits`` bits. It has no bias and no threshold.
    """

    message_bits: int = 16

    kind = "sigma"

    def validate(self, layer: str) -> None:
        _check_ints(layer, self, ("message_bits",))
        _check_range(layer, "neuron.message_bits", self.message_bits, 1, MAX_MESSAGE_BITS)


GRADED = (DeltaNeuron, SigmaDeltaNeuron, SigmaNeuron)
Neuron = CubaNeuron | DeltaNeuron | SigmaDeltaNeuron | SigmaNeuron


def is_graded(neuron) -> bool:
    """Whether a neuron sends graded spikes (a sigma-delta kind)."""
    return isinstance(neuron, GRADED)


def _check_neuron(label: str, neuron: Neuron, allowed: tuple[type, ...]) -> None:
    if not isinstance(neuron, allowed):
        names = ", ".join(k.__name__ for k in allowed)
        raise NetlistError(f"{label}: neuron is a {type(neuron).__name__}; this layer takes {names}")
    neuron.validate(label)


def _check_graded_bias(label: str, neuron, bias) -> None:
    """A sigma-delta bias b enters as b << (spike_exp + 6) in int32; Delta and Sigma take none."""
    if bias is None or not is_graded(neuron):
        return
    if isinstance(neuron, (DeltaNeuron, SigmaNeuron)):
        if np.any(bias):
            raise NetlistError(f"{label}: a {type(neuron).__name__} takes no bias (Lava's process has none)")
        return
    limit = INT32_MAX >> (neuron.spike_exp + STATE_EXP)
    _check_range(
        label, f"bias (shifted by spike_exp + 6 = {neuron.spike_exp + STATE_EXP} into int32)", bias, -limit - 1, limit
    )


def pair(value) -> tuple[int, int]:
    """One int or two as an (a, b) pair."""
    a, b = (int(x) for x in np.broadcast_to(np.asarray(value), (2,)))
    return a, b


def conv_output_size(
    size: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[int, int]:
    """(H_out, W_out) of a 2-D convolution over an (H, W) input, each argument an (H, W) pair.

    On each axis ``(n + 2 padding - dilation (kernel - 1) - 1) // stride + 1``.
    """
    (h, w), (kh, kw) = size, kernel
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    return int(ho), int(wo)


def bias_per_neuron(bias: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A (C, H, W) layer's per-channel (C,) bias repeated over H and W (a read-only view); any other bias as is."""
    if len(shape) == 3 and bias.shape == (shape[0],):
        return np.broadcast_to(bias.reshape(-1, 1, 1), shape)
    return bias


def _shape(layer: str, shape) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if not shape or any(s <= 0 for s in shape):
        raise NetlistError(f"{layer}: shape must be positive sizes, got {shape}")
    return shape


@dataclass
class Input:
    """Input neurons driven by their bias (e.g. an image) or by external input; no synapses.

    ``bias`` holds one mantissa a neuron, in ``shape``; a run may replace it. A
    :class:`DeltaNeuron` input layer encodes the external input of each step
    (graded) and has no bias (all zero).
    """

    shape: tuple[int, ...]
    neuron: CubaNeuron | DeltaNeuron
    bias: np.ndarray  # int, shaped like `shape`
    name: str = ""

    kind = "input"

    def validate(self, label: str, in_shape: tuple[int, ...] | None) -> None:
        self.shape = _shape(label, self.shape)
        _check_neuron(label, self.neuron, (CubaNeuron, DeltaNeuron))
        self.bias = _int_array(label, "bias", self.bias)
        if self.bias.shape != self.shape:
            raise NetlistError(f"{label}: bias shape {self.bias.shape} differs from layer shape {self.shape}")
        _check_graded_bias(label, self.neuron, self.bias)


@dataclass
class Dense:
    """Dense synapses (out, in) into a population of ``out`` neurons.

    Binary spikes add the weights of the inputs that spiked; graded spikes add
    weight times payload (an int32 sum, wrapping modulo 2**32). The sum is shifted
    by ``weight_exp`` and reaches the neurons one step later (plus ``delay``).
    Weights are stored as the chip holds them: 8-bit mantissas already truncated
    to ``weight_bits``. Mixed-sign weights may have 9 bits (sign and 8 bits, no
    truncation), as netx encodes some files for Lava.
    """

    weight: np.ndarray  # int (out, in)
    neuron: Neuron
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
        _check_neuron(label, self.neuron, (CubaNeuron, SigmaDeltaNeuron, SigmaNeuron))
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
            _check_graded_bias(label, self.neuron, self.bias)
        if self.delay is not None:
            self.delay = _int_array(label, "delay", self.delay)
            if self.delay.shape != self.weight.shape:
                raise NetlistError(f"{label}: delay shape {self.delay.shape} differs from weight {self.weight.shape}")
            _check_range(label, "delay", self.delay, 0, MAX_DELAY)


@dataclass
class RecurrentDense(Dense):
    """Dense synapses (out, in) plus recurrent ones (out, out) from the layer's own output (netx's ``dense_rec``).

    The recurrent synapses take the layer's messages of step t and deliver at step
    t + 1, like the feed-forward ones; both matrices share ``weight_bits`` and
    ``weight_exp`` (each is clipped and truncated by its own sign mode), and their
    inputs add. The recurrent messages have the bits of the layer's input
    messages (netx's convention): binary when the input is binary. No delays.
    """

    weight_rec: np.ndarray | None = None  # int (out, out)

    kind = "dense_rec"

    def validate(self, label: str, in_shape: tuple[int, ...] | None) -> None:
        super().validate(label, in_shape)
        if self.weight_rec is None:
            raise NetlistError(f"{label}: weight_rec is missing")
        self.weight_rec = _int_array(label, "weight_rec", self.weight_rec, ndim=2)
        if self.weight_rec.shape != (self.shape[0],) * 2:
            raise NetlistError(
                f"{label}: weight_rec has shape {self.weight_rec.shape}, expected {(self.shape[0],) * 2}"
            )
        mixed = bool(np.any(self.weight_rec < 0) and np.any(self.weight_rec > 0))
        _check_range(label, "weight_bits (for weight_rec)", self.weight_bits, 1, 9 if mixed else 8)
        if self.delay is not None and np.any(self.delay):
            raise NetlistError(f"{label}: delay: a recurrent layer takes no delays (netx drops their weight exponent)")

    @property
    def recurrent_weight(self) -> np.ndarray:
        """``weight_rec``, which a valid layer always has."""
        if self.weight_rec is None:
            raise NetlistError(f"{self.kind} layer {self.name!r}: weight_rec is missing")
        return self.weight_rec


@dataclass
class Conv:
    """2-D convolution synapses into a population of shape (C_out, H_out, W_out).

    ``weight`` is (out, in / groups, kH, kW) applied as cross-correlation (the
    PyTorch convention); outputs wrap to 24 bits and arrive one step later.
    """

    weight: np.ndarray  # int (out, in/groups, kH, kW)
    neuron: Neuron
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
        _c, h, w = self.in_shape
        kh, kw = self.weight.shape[2:]
        ho, wo = conv_output_size((h, w), (kh, kw), self.stride, self.padding, self.dilation)
        return (int(self.weight.shape[0]), ho, wo)

    def validate(self, label: str, in_shape: tuple[int, ...] | None) -> None:
        self.weight = _int_array(label, "weight", self.weight, ndim=4)
        _check_neuron(label, self.neuron, (CubaNeuron, SigmaDeltaNeuron, SigmaNeuron))
        if in_shape is not None:
            if len(in_shape) != 3:
                raise NetlistError(f"{label}: conv needs a (C, H, W) input, got {in_shape}")
            c, h, w = (int(s) for s in in_shape)
            self.in_shape = (c, h, w)
        self.stride, self.padding, self.dilation = (pair(p) for p in (self.stride, self.padding, self.dilation))
        self.groups = int(self.groups)
        if self.groups < 1 or self.weight.shape[0] % self.groups or self.in_shape[0] % self.groups:
            raise NetlistError(f"{label}: groups = {self.groups} does not divide the channels")
        if self.weight.shape[1] * self.groups != self.in_shape[0]:
            raise NetlistError(
                f"{label}: weight expects {self.weight.shape[1] * self.groups} input channels, "
                f"input has {self.in_shape[0]}"
            )
        if min(self.stride) < 1 or min(self.dilation) < 1 or min(self.padding) < 0:
            raise NetlistError(f"{label}: stride and dilation must be >= 1 and padding >= 0")
        _check_range(label, "weight_exp", self.weight_exp, -16, 16)
        if min(self.shape) < 1:
            raise NetlistError(f"{label}: output shape {self.shape} is empty")
        if self.bias is not None:
            self.bias = _int_array(label, "bias", self.bias)
            if self.bias.shape not in ((self.shape[0],), self.shape):
                raise NetlistError(
                    f"{label}: bias shape {self.bias.shape} fits neither ({self.shape[0]},) nor {self.shape}"
                )
            _check_graded_bias(label, self.neuron, self.bias)


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


Layer = Input | Dense | RecurrentDense | Conv | Flatten


def describe_layer(layer: Layer) -> str:
    """A short description such as 'dense 1024->1024', 'dense_rec 12->39' or 'conv 3x66x200->24x32x99'."""
    dims = lambda shape: "x".join(str(s) for s in shape)  # noqa: E731
    if isinstance(layer, Dense):
        text = f"{layer.kind} {layer.weight.shape[1]}->{layer.weight.shape[0]}"
    elif isinstance(layer, Conv):
        text = f"conv {dims(layer.in_shape)}->{dims(layer.shape)}"
    elif isinstance(layer, Input):
        text = f"input {dims(layer.shape)}"
    else:
        text = f"flatten {dims(layer.in_shape)}"
    return f"{text} {layer.name}" if layer.name else text


def layer_label(index: int, layer: Layer) -> str:
    """How messages name a layer: 'layer 2 (conv)', or 'layer 2 (conv c1)' for a layer named c1."""
    return f"layer {index} ({layer.kind}{' ' + layer.name if layer.name else ''})"


NeuronLayer = Input | Dense | RecurrentDense | Conv


def neuron_layer(layer: Layer) -> NeuronLayer:
    """A layer that holds neurons (any but flatten), as such."""
    if isinstance(layer, Flatten):
        raise NetlistError(f"{layer.kind} layer {layer.name!r} holds no neurons")
    return layer


def synaptic_layer(layer: Layer) -> Dense | Conv:
    """A layer that holds synapses (dense, recurrent dense or conv), as such."""
    if not isinstance(layer, (Dense, Conv)):
        raise NetlistError(f"{layer.kind} layer {layer.name!r} holds no synapses")
    return layer


def layer_neuron(layer: Layer) -> Neuron:
    """The neurons of a layer that holds them (any but flatten)."""
    return neuron_layer(layer).neuron


def cuba_neuron(layer: Layer) -> CubaNeuron:
    """The neurons of a layer of a CUBA netlist."""
    neuron = layer_neuron(layer)
    if not isinstance(neuron, CubaNeuron):
        raise NetlistError(f"{layer.kind} layer {layer.name!r}: {type(neuron).__name__} neurons are not CUBA")
    return neuron


@dataclass
class Netlist:
    """An ordered chain of layers, feed-forward but for recurrent dense layers onto themselves, with the run
    conventions.

    ``input_shape`` is the shape of external spikes when layer 0 is not an
    :class:`Input`. ``reset_interval`` resets u and v of the k-th neuron layer
    (0-based, flatten layers not counted) at every step t (0-based) with
    ``t % reset_interval == (k + reset_offset) % reset_interval``, as netx
    staggers Lava's resets; ``None`` for never. A quantized network sets
    ``reset_offset`` so that each layer resets on the step its first input
    arrives, which aligns the chip's latency with the float model's steps.
    ``output_window`` is the (start, stop) of steps over which consumers count
    output spikes.

    A sigma-delta network (:attr:`graded`) holds graded-spike neurons only: a
    :class:`DeltaNeuron` input layer, or external graded messages of
    ``input_message_bits`` bits into the first synaptic layer (0: binary spikes),
    then sigma-delta and sigma layers. Sigma-delta neurons never reset.
    ``meta["readout"] = "membrane"`` says the
    classes are read from the output layer's v at the window's last step instead
    (:attr:`readout`; its neurons have the largest threshold and never fire).
    """

    layers: list[Layer]
    input_shape: tuple[int, ...] | None = None
    reset_interval: int | None = None
    reset_offset: int = 0
    output_window: tuple[int, int] | None = None
    meta: dict = field(default_factory=dict)
    input_message_bits: int = 0

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
            label = layer_label(i, layer)
            if isinstance(layer, Input) and i != 0:
                raise NetlistError(f"{label}: an input layer may only come first")
            if shape is None and not isinstance(layer, Input):
                raise NetlistError(f"{label}: the netlist needs input_shape when layer 0 is not an input layer")
            layer.validate(label, shape)
            shape = layer.shape
            neurons += 0 if isinstance(layer, Flatten) else int(np.prod(shape, dtype=object))
            try:
                budget.require(neurons * budget.NEURON_BYTES, f"{label}: {neurons} neurons up to this layer")
            except budget.BudgetError as err:
                raise NetlistError(str(err)) from None
        self._check_kinds()
        if self.reset_interval is not None and int(self.reset_interval) < 1:
            raise NetlistError(f"netlist: reset_interval = {self.reset_interval} must be >= 1")
        if self.readout not in READOUTS:
            raise NetlistError(f"netlist: meta readout = {self.readout!r} must be one of {', '.join(READOUTS)}")

    @property
    def window(self) -> tuple[int, int]:
        """``output_window``, which the quantizer always sets."""
        if self.output_window is None:
            raise NetlistError("netlist: no output_window is set")
        return self.output_window

    @property
    def external_shape(self) -> tuple[int, ...]:
        """The shape of one step's external input: the input layer's, else ``input_shape`` (then always set)."""
        first = self.layers[0]
        if isinstance(first, Input):
            return first.shape
        if self.input_shape is None:
            raise NetlistError("netlist: no input_shape is set")
        return self.input_shape

    @property
    def readout(self) -> str:
        """What the classes are read from: ``spikes`` (counts over the window) or ``membrane``."""
        return self.meta.get("readout", "spikes")

    def _check_kinds(self) -> None:
        """CUBA and sigma-delta neurons do not mix in one netlist."""
        _check_range("netlist", "input_message_bits", self.input_message_bits, 0, MAX_MESSAGE_BITS)
        kinds = [is_graded(layer_neuron(self.layers[i])) for i in self.neuron_layers]
        if any(kinds) and not all(kinds):
            k = kinds.index(not kinds[0])
            i = self.neuron_layers[k]
            layer = self.layers[i]
            raise NetlistError(
                f"{layer_label(i, layer)}: a {type(layer_neuron(layer)).__name__} after "
                f"{'sigma-delta' if kinds[0] else 'CUBA'} layers; a netlist is all CUBA or all sigma-delta"
            )

    @property
    def graded(self) -> bool:
        """Whether this is a sigma-delta network (graded spikes)."""
        return is_graded(layer_neuron(self.layers[self.neuron_layers[0]]))

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

    @property
    def recurrent(self) -> bool:
        """Whether a layer feeds back onto itself."""
        return any(isinstance(layer, RecurrentDense) for layer in self.layers)

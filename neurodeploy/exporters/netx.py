"""Lava-DL netx HDF5 files: read one into a :class:`Netlist`, write a netlist as one.

The mapping is the one ``lava.lib.dl.netx.hdf5.Network`` (lava-dl 0.6.0) applies,
so that our simulator computes what Lava computes from the same file:

- ``/layer/<i>/type`` is ``input``, ``conv``, ``flatten`` or ``dense``; shapes are
  stored (C, H, W) (netx reverses them to Lava's (x, y, f)).
- A ``CUBA``/``LOIHI`` neuron group maps to vth = ``vThMant``, du = ``iDecay`` - 1,
  dv = ``vDecay``, bias_exp = 6, bias mantissa = ``bias``.
- Conv weights are stored (out, in/groups, kH, kW) and act as a cross-correlation
  on (C, H, W) (netx flips them for Lava's true convolution); no weight exponent: the writer
  folds ``weight << weight_exp`` into them and the reader splits it out again.
- Dense weights are integers that netx re-encodes into (mantissa, bits, exponent),
  which Lava then clips and truncates: the netlist holds the result.
- ``flatten`` before a dense layer is a C-order flatten of (C, H, W).
- An ``input`` layer with a neuron group is a layer of neurons driven by their
  bias (netx ignores the file's scalar ``weight``/``bias`` input transform); one
  with only a ``shape`` gives the shape of external input.

- A ``SDNN`` neuron group is a sigma-delta neuron with netx's state_exp of 6 and
  the network's one ``spike_exp`` (netx's argument, default 6): a :class:`DeltaNeuron`
  in the input layer, a :class:`SigmaNeuron` where the group has ``sigma_output``,
  else a ReLU :class:`SigmaDeltaNeuron` (netx applies ReLU whatever ``activation``
  says, so another activation is refused); ``messageBits`` defaults to 16; the
  bias is truncated to integers and enters as ``bias << (spike_exp + 6)``.
  lava-dl 0.6 cannot load a file holding ``messageBits`` (its reader hands netx a
  group object for it), so the writer stores other message widths as
  ``gradedBits``, which netx ignores and this reader takes.
  Messages into the first synaptic layer have netx's ``input_message_bits``.

Datasets netx ignores carry what a netlist has beyond netx: ``biasMant`` of an
input layer (C, H, W), ``name`` of a layer, and ``/simulation/resetInterval``,
``resetOffset`` (netx's ``reset_offset`` argument), ``outputWindow``,
``readout`` (``membrane`` when the classes are read from the output layer's v:
``meta["readout"]``), ``spikeExp`` and ``inputMessageBits`` (netx's ``spike_exp`` and
``input_message_bits`` arguments) next to netx's ``Ts`` and ``tSample``.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import os
import warnings

import numpy as np

from neurodeploy import fixed_point as fx
from neurodeploy.atomic import atomic_path
from neurodeploy.errors import InputFileError, NeurodeployError
from neurodeploy.h5check import MAX_ELEMENTS, h5py_module, open_hdf5
from neurodeploy.netlist import (
    MAX_DELAY,
    MAX_LAYERS,
    MAX_MESSAGE_BITS,
    READOUTS,
    Conv,
    CubaNeuron,
    DeltaNeuron,
    Dense,
    Flatten,
    Input,
    Layer,
    Netlist,
    NetlistError,
    RecurrentDense,
    SigmaDeltaNeuron,
    SigmaNeuron,
    is_graded,
    layer_label,
    layer_neuron,
    pair,
)

NETX_BIAS_EXP = 6  # netx gives every neuron bias_exp = 6
NEURON_TYPES = ("CUBA", "LOIHI", "SDNN")
NETX_SPIKE_EXP = 6  # netx.hdf5.Network's default spike_exp
SDNN_MESSAGE_BITS = 16  # netx's default messageBits of an SDNN neuron
UNSUPPORTED = ("dense_comp", "pool", "average", "concat", "convT", "unpool")
# netx's neuron when a dense layer has no neuron group: a non-leaky integrator
DEFAULT_NEURON = CubaNeuron(vth=1 << 17, du=-1, dv=4096, bias_exp=NETX_BIAS_EXP)


class NetxExportError(NeurodeployError):
    """A netlist that netx cannot carry; the message names the layer and the limit."""


# --------------------------------------------------------------------------- weights


class InputShapeUnknown(InputFileError):
    """A netx file whose first layer needs an input shape the file does not give."""


def netx_weight_encoding(weight: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The (mantissas, num_weight_bits, weight_exp) netx derives from integer dense weights.

    Mixed-sign weights (netx's test: some < 0, none required > 0) are first clipped to
    [-256, 254] when out of range; the mantissas are the weights shifted left by
    ``-weight_exp``. Raises ValueError where netx fails (all zero) or zeroes every
    weight (a negative scale: excitatory above 255, inhibitory below -256).
    """
    w = np.asarray(weight, dtype=np.int64)
    lo, hi = int(w.min()), int(w.max())
    if lo == hi == 0:
        raise ValueError("netx cannot encode an all-zero weight matrix")
    if (hi > 254 and lo < 0) or (lo < -256 and hi > 0):
        w = np.clip(w, -256, 254)
        lo, hi = int(w.min()), int(w.max())
    mixed = lo < 0 <= hi
    if mixed:
        scale = min(127 / hi if hi > 0 else math.inf, -128 / lo)
    elif hi < 0:
        scale = -256 / lo
    else:
        scale = 255 / hi
    scale_bits = int(np.floor(np.log2(scale))) + int(mixed)
    if scale_bits < 0:
        raise ValueError(f"weights in [{lo}, {hi}] are out of netx's range; netx would zero all of them")
    n = next((k for k in range(8, 0, -1) if not np.any(w % (1 << k))), 0) - int(mixed)
    return w << scale_bits, 8 - scale_bits - n, -scale_bits


def lava_dense_weights(mantissas: np.ndarray, weight_bits: int) -> np.ndarray:
    """What Lava's bit-accurate Dense holds after clipping and truncating ``mantissas``."""
    if 8 - weight_bits + (fx.sign_mode(mantissas) == "mixed") < 0:
        return np.zeros_like(mantissas)  # Lava shifts by a negative count: every weight becomes 0
    return fx.dense_weights(mantissas, weight_bits)


def integer_weights(weight: np.ndarray, weight_exp: int) -> np.ndarray | None:
    """Weights ``w`` with sum(w) == shift(sum(weight), weight_exp) for every input, or None.

    Exists when the exponent is non-negative or divides every weight exactly.
    """
    weight = np.asarray(weight, dtype=np.int64)
    if weight_exp >= 0:
        return weight << weight_exp
    if np.any(weight % (1 << -weight_exp)):
        return None
    return weight >> -weight_exp


def conv_mantissas(weight: np.ndarray) -> tuple[np.ndarray, int]:
    """(mantissas, exponent >= 0) of integer conv weights: the smallest exponent that brings them
    exactly within 8 bits with sign, as the writer folds ``weight << weight_exp``; else (weight, 0).
    """
    weight = np.asarray(weight, dtype=np.int64)
    for exp in range(32):
        mant = weight >> exp
        if np.any(mant << exp != weight):
            break
        if mant.size == 0 or (mant.min() >= -256 and mant.max() <= 255):
            return mant, exp
    return weight, 0


# --------------------------------------------------------------------------- reading


class _Reader:
    """Checked access to one netx file: every error names the file and the HDF5 path."""

    spike_exp: int  # netx's spike_exp and input_message_bits for the file, set by read_netx
    input_message_bits: int

    def __init__(self, path: str | os.PathLike, h5):
        self.name = str(path)
        self.h5 = h5

    def fail(self, where: str, message: str) -> InputFileError:
        return InputFileError(f"{self.name}: {where}: {message}")

    def node(self, path: str, kind: str = "dataset"):
        """The group or dataset at ``path`` (links, storage and sizes were checked on opening)."""
        h5py = h5py_module()
        obj = self.h5.get(path)
        if obj is None:
            raise self.fail(path, f"missing {kind}")
        want = h5py.Group if kind == "group" else h5py.Dataset
        if not isinstance(obj, want):
            raise self.fail(path, f"expected a {kind}, found a {type(obj).__name__.lower()}")
        if kind == "dataset" and obj.shape is None:
            raise self.fail(path, "has no data")
        return obj

    def has(self, path: str) -> bool:
        """Whether ``path`` names an object."""
        return path in self.h5

    def string(self, path: str) -> str:
        ds = self.node(path)
        if ds.dtype.kind not in "SO" or ds.ndim > 1 or ds.size != 1:
            raise self.fail(path, f"expected one string, got dtype {ds.dtype} shape {ds.shape}")
        value = ds[()] if ds.ndim == 0 else ds[0]
        if isinstance(value, str):
            return value
        if not isinstance(value, bytes):
            raise self.fail(path, f"expected a string, got {type(value).__name__}")
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(path, "is not a UTF-8 string") from None

    def numbers(self, path: str, ndims: tuple[int, ...], truncate: bool = False) -> np.ndarray:
        """An integer array; floats must be whole unless ``truncate`` (netx's ``astype(int)``)."""
        ds = self.node(path)
        if ds.ndim not in ndims:
            want = " or ".join(str(d) for d in ndims)
            raise self.fail(path, f"expected {want} dimensions, got {ds.ndim}")
        if ds.dtype.kind not in "iuf":
            raise self.fail(path, f"expected numbers, got dtype {ds.dtype}")
        arr = ds[()]
        if arr.dtype.kind == "f":
            if not np.all(np.isfinite(arr)):
                raise self.fail(path, "holds non-finite values")
            if not truncate and np.any(arr != np.round(arr)):
                raise self.fail(path, "expected integers, got fractional values")
            arr = np.trunc(arr)
        if arr.size and (arr.min() < -fx.INT32 or arr.max() >= fx.INT32):
            raise self.fail(path, f"values must fit in 32 bits, found {arr.min()} .. {arr.max()}")
        return np.asarray(arr).astype(np.int64)

    def integer(self, path: str, lo: int, hi: int) -> int:
        arr = self.numbers(path, (0, 1))
        if arr.size != 1:
            raise self.fail(path, f"expected one value, got {arr.size}")
        value = int(arr.reshape(()))
        if not lo <= value <= hi:
            raise self.fail(path, f"{value} is outside [{lo}, {hi}]")
        return value

    def pair(self, path: str) -> tuple[int, int]:
        """A conv parameter stored as one value or (H, W)."""
        arr = self.numbers(path, (0, 1))
        if arr.size not in (1, 2):
            raise self.fail(path, f"expected 1 or 2 values, got {arr.size}")
        return pair(arr.reshape(-1))

    def shape(self, path: str) -> tuple[int, ...]:
        arr = self.numbers(path, (0, 1)).reshape(-1)
        if not 1 <= arr.size <= 3 or np.any(arr < 1):
            raise self.fail(path, f"expected 1 to 3 positive sizes, got {arr.tolist()}")
        shape = tuple(int(x) for x in arr)
        if math.prod(shape) > MAX_ELEMENTS:
            raise self.fail(path, f"{shape} declares {math.prod(shape)} neurons, more than the limit of {MAX_ELEMENTS}")
        return shape


def read_netx(
    path: str | os.PathLike,
    input_shape: tuple[int, ...] | None = None,
    spike_exp: int | None = None,
    input_message_bits: int | None = None,
) -> Netlist:
    """Read a netx HDF5 file into a netlist, as ``netx.hdf5.Network`` would build it.

    ``input_shape`` (C, H, W) is needed only when the first layer is a conv layer
    and the file gives no input shape (netx asks for it likewise). ``spike_exp``
    and ``input_message_bits`` are netx's arguments of the same names; by default
    the file's ``/simulation/spikeExp`` and ``inputMessageBits``, else netx's
    defaults (6 and 0).
    """
    with open_hdf5(path, "netx file") as h5:
        r = _Reader(path, h5)
        r.spike_exp = _simulation_int(r, "spikeExp", spike_exp, NETX_SPIKE_EXP, 31 - fx.STATE_EXP)
        r.input_message_bits = _simulation_int(r, "inputMessageBits", input_message_bits, 0, MAX_MESSAGE_BITS)
        return _read(r, input_shape)


def _simulation_int(r: _Reader, key: str, given: int | None, default: int, hi: int) -> int:
    if given is not None:
        if not 0 <= given <= hi:
            raise NeurodeployError(f"{r.name}: {key} = {given} is outside [0, {hi}]")
        return int(given)
    path = f"/simulation/{key}"
    return r.integer(path, 0, hi) if r.has(path) else default


def _read(r: _Reader, input_shape) -> Netlist:
    r.node("/layer", "group")
    keys = set(r.h5["layer"].keys())
    if len(keys) > MAX_LAYERS or keys != {str(i) for i in range(len(keys))}:
        raise r.fail("/layer", f"expected layers named 0..n-1 (at most {MAX_LAYERS}), found {sorted(keys)[:12]}")
    layers: list[Layer] = []
    shape = None if input_shape is None else tuple(int(s) for s in input_shape)
    for i in range(len(keys)):
        base = f"/layer/{i}"
        r.node(base, "group")
        kind = r.string(f"{base}/type")
        prev = layers[-1].shape if layers else shape
        layer: Layer
        if kind == "input":
            neurons = _read_input(r, base, first=not layers)
            if neurons is None:
                shape = r.shape(f"{base}/shape") if r.has(f"{base}/shape") else shape
                continue
            layer = neurons
        elif kind == "conv":
            layer = _read_conv(r, base, prev)
        elif kind in ("dense", "dense_rec"):
            layer = _read_dense(r, base, prev, layers[-1] if layers else None, recurrent=kind == "dense_rec")
            shape = shape if layers or shape is not None else (layer.weight.shape[1],)
        elif kind == "flatten":
            if prev is None or len(prev) != 3:
                raise r.fail(base, f"flatten needs a (C, H, W) layer before it, got {prev}")
            layer = Flatten(in_shape=prev)
        elif kind in UNSUPPORTED:
            raise r.fail(f"{base}/type", f"layer type '{kind}' is not supported (only input, conv, flatten, dense)")
        else:
            raise r.fail(f"{base}/type", f"unknown layer type '{kind}'")
        if r.has(f"{base}/name"):
            layer.name = r.string(f"{base}/name")
        layers.append(layer)
    if not layers:
        raise r.fail("/layer", "holds no layer with neurons")
    try:
        return Netlist(
            layers=layers,
            input_shape=None if isinstance(layers[0], Input) else shape,
            input_message_bits=r.input_message_bits if not isinstance(layers[0], Input) else 0,
            **_read_simulation(r),
        )
    except NetlistError as err:
        raise InputFileError(f"{r.name}: {err}") from None


def _read_neuron(r: _Reader, base: str, is_input: bool = False):
    r.node(base, "group")
    kind = r.string(f"{base}/type")
    if kind not in NEURON_TYPES:
        raise r.fail(f"{base}/type", f"neuron type '{kind}' is not supported (only {', '.join(NEURON_TYPES)})")
    if kind == "SDNN":
        return _read_sdnn(r, base, is_input)
    if r.has(f"{base}/messageBits") and r.integer(f"{base}/messageBits", 0, 32) > 0:
        raise r.fail(f"{base}/messageBits", "graded spikes are not supported")
    return CubaNeuron(
        vth=r.integer(f"{base}/vThMant", 0, fx.V_LIMIT),
        du=r.integer(f"{base}/iDecay", 0, fx.DECAY_UNITY) - 1,
        dv=r.integer(f"{base}/vDecay", 0, fx.DECAY_UNITY),
        bias_exp=NETX_BIAS_EXP,
    )


def _read_sdnn(r: _Reader, base: str, is_input: bool):
    """A sigma-delta neuron group, as netx's ``get_neuron_params`` builds it."""
    bits = SDNN_MESSAGE_BITS
    for key in ("messageBits", "gradedBits"):
        if r.has(f"{base}/{key}"):
            bits = r.integer(f"{base}/{key}", 1, MAX_MESSAGE_BITS)
    if r.has(f"{base}/activation") and not is_input:
        activation = r.string(f"{base}/activation")
        if activation.lower() != "relu":
            raise r.fail(f"{base}/activation", f"activation '{activation}': netx applies ReLU to every SDNN neuron")
    if not is_input and r.has(f"{base}/sigma_output"):
        return SigmaNeuron(message_bits=bits)
    limit = fx.INT32_MAX >> fx.graded_scale(r.spike_exp)
    vth = r.integer(f"{base}/vThMant", 0, limit)
    cls = DeltaNeuron if is_input else SigmaDeltaNeuron
    return cls(vth=vth, spike_exp=r.spike_exp, message_bits=bits)


def _read_input(r: _Reader, base: str, first: bool) -> Input | None:
    """An input layer of neurons, or None when the layer only gives an input shape."""
    if not r.has(f"{base}/neuron"):
        return None
    if not first:
        raise r.fail(base, "an input layer with neurons may only come first")
    shape = r.shape(f"{base}/shape")
    bias = np.zeros(shape, np.int64)
    if r.has(f"{base}/biasMant"):
        bias = r.numbers(f"{base}/biasMant", (len(shape),))
        if bias.shape != shape:
            raise r.fail(f"{base}/biasMant", f"expected shape {shape}, got {bias.shape}")
    return Input(shape=shape, neuron=_read_neuron(r, f"{base}/neuron", is_input=True), bias=bias)


def _read_conv(r: _Reader, base: str, in_shape) -> Conv:
    if in_shape is None:
        raise InputShapeUnknown(
            f"{r.name}: {base}: the file has no input layer and gives no input shape (as lava-dl's SLAYER "
            "export_hdf5 writes a convolutional network); give it: --input-shape C,H,W or input spikes "
            "(--input) on the command line, input_shape=(C, H, W) in Python"
        )
    if len(in_shape) != 3:
        raise r.fail(base, f"conv needs a (C, H, W) input, got {in_shape}")
    weight = r.numbers(f"{base}/weight", (4, 5), truncate=True)
    if weight.ndim == 5:
        if weight.shape[4] != 1:
            raise r.fail(f"{base}/weight", f"expected 4 dimensions (a 5th of size 1 allowed), got shape {weight.shape}")
        weight = weight[..., 0]
    mantissas, exp = conv_mantissas(weight)
    layer = Conv(
        weight=mantissas,
        weight_exp=exp,
        neuron=_read_neuron(r, f"{base}/neuron"),
        in_shape=tuple(in_shape),
        stride=r.pair(f"{base}/stride"),
        padding=r.pair(f"{base}/padding"),
        dilation=r.pair(f"{base}/dilation"),
        groups=r.integer(f"{base}/groups", 1, weight.shape[0]),
    )
    try:
        layer.validate(base, tuple(in_shape))
    except NetlistError as err:
        raise InputFileError(f"{r.name}: {err}") from None
    declared = r.shape(f"{base}/shape")
    if declared != layer.shape:
        raise r.fail(f"{base}/shape", f"declares {declared} but the convolution gives {layer.shape}")
    if r.has(f"{base}/bias"):
        layer.bias = _read_conv_bias(r, f"{base}/bias", layer.shape)
    return layer


def _read_conv_bias(r: _Reader, path: str, shape: tuple[int, int, int]) -> np.ndarray:
    """Per channel (C,), or per neuron stored in Lava's (W, H, C) order as netx reads it."""
    bias = r.numbers(path, (1, 3), truncate=True)
    if bias.shape == (shape[0],):
        return bias
    if bias.shape == shape[::-1]:
        return bias.transpose(2, 1, 0)
    raise r.fail(path, f"expected ({shape[0]},) per channel or {shape[::-1]} per neuron (W, H, C), got {bias.shape}")


def _read_matrix(r: _Reader, path: str, out: int, n_in: int | None) -> np.ndarray:
    weight = r.numbers(path, (1, 2), truncate=True)
    if weight.ndim == 1:
        if weight.size % out:
            raise r.fail(path, f"{weight.size} values do not split into {out} rows")
        weight = weight.reshape(out, -1)
    n_in = weight.shape[1] if n_in is None else n_in
    if weight.shape != (out, n_in):
        raise r.fail(path, f"expected shape ({out}, {n_in}), got {weight.shape}")
    return weight


def _read_dense(r: _Reader, base: str, in_shape, prev_layer, recurrent: bool = False) -> Dense:
    """A dense layer (``recurrent``: netx's ``dense_rec``, with ``weight_rec`` encoded together with
    ``weight``); with no layer and no input shape before it, its weights give the input size."""
    if prev_layer is not None and len(in_shape) > 1 and not isinstance(prev_layer, Flatten):
        raise r.fail(base, f"a dense layer after a {in_shape} layer needs a flatten layer between them")
    out = int(np.prod(r.shape(f"{base}/shape")))
    weight = _read_matrix(r, f"{base}/weight", out, None if in_shape is None else int(np.prod(in_shape)))
    parts = [weight] + ([_read_matrix(r, f"{base}/weight_rec", out, out)] if recurrent else [])
    try:
        mantissas, bits, exp = netx_weight_encoding(np.hstack(parts))
    except ValueError as err:
        raise r.fail(f"{base}/weight", str(err)) from None
    held = [lava_dense_weights(m, bits) for m in np.split(mantissas, [weight.shape[1]], axis=1)[: len(parts)]]
    if not np.any(held[0]):
        raise r.fail(
            f"{base}/weight", f"netx encodes these weights with {bits} bits and Lava truncates all of them to 0"
        )
    for part, kept in zip(parts, held):
        exact = integer_weights(kept, exp)
        if exact is None or not np.array_equal(exact, part):
            warnings.warn(
                f"{r.name}: {base}: netx and Lava clip or truncate these weights; read as Lava computes them",
                stacklevel=2,
            )
    neuron = _read_neuron(r, f"{base}/neuron") if r.has(f"{base}/neuron") else dataclasses.replace(DEFAULT_NEURON)
    layer = (
        RecurrentDense(weight=held[0], neuron=neuron, weight_bits=bits, weight_exp=exp, weight_rec=held[1])
        if recurrent
        else Dense(weight=held[0], neuron=neuron, weight_bits=bits, weight_exp=exp)
    )
    if r.has(f"{base}/bias"):
        bias = r.numbers(f"{base}/bias", (0, 1), truncate=True)
        if bias.shape not in ((), (out,)):
            raise r.fail(f"{base}/bias", f"expected ({out},) or one value, got shape {bias.shape}")
        layer.bias = np.broadcast_to(bias, (out,)).copy()
    if r.has(f"{base}/delay"):
        if recurrent:
            raise r.fail(f"{base}/delay", "delays on dense_rec are not supported (netx drops their weight exponent)")
        layer.delay = _read_delay(r, f"{base}/delay", weight.shape)
    return layer


def _read_delay(r: _Reader, path: str, shape: tuple[int, int]) -> np.ndarray:
    """Delays per synapse, per output (axonal) or per input, clamped to 62 as netx does."""
    delay = r.numbers(path, (0, 1, 2), truncate=True)
    if delay.size and delay.min() < 0:
        raise r.fail(path, f"negative delay {delay.min()}")
    if delay.size and delay.max() > MAX_DELAY:
        warnings.warn(
            f"{r.name}: {path}: delays up to {delay.max()} clamped to {MAX_DELAY}, as netx does", stacklevel=2
        )
        delay = np.minimum(delay, MAX_DELAY)
    if delay.ndim == 1:
        if delay.size == shape[0]:
            delay = delay[:, None]
        elif delay.size == shape[1]:
            delay = delay[None, :]
        else:
            raise r.fail(path, f"{delay.size} delays fit neither {shape[0]} outputs nor {shape[1]} inputs")
    if delay.ndim == 2 and delay.shape != shape:
        raise r.fail(path, f"expected shape {shape}, got {delay.shape}")
    return np.broadcast_to(delay, shape).copy()


def _read_simulation(r: _Reader) -> dict:
    """Run conventions: ``reset_interval``, ``reset_offset``, ``output_window``, ``meta['simulation']``."""
    out: dict = {"meta": {}}
    if not r.has("/simulation"):
        return out
    r.node("/simulation", "group")
    sim = {
        key: r.integer(f"/simulation/{key}", 0, fx.INT32 - 1)
        for key in ("Ts", "tSample")
        if r.has(f"/simulation/{key}")
    }
    if sim:
        out["meta"]["simulation"] = sim
    if r.has("/simulation/resetInterval"):
        out["reset_interval"] = r.integer("/simulation/resetInterval", 1, fx.INT32 - 1)
    if r.has("/simulation/resetOffset"):
        out["reset_offset"] = r.integer("/simulation/resetOffset", -(fx.INT32 - 1), fx.INT32 - 1)
    if r.has("/simulation/outputWindow"):
        window = r.numbers("/simulation/outputWindow", (1,))
        if window.shape != (2,) or window[0] < 0 or window[1] < window[0]:
            raise r.fail(
                "/simulation/outputWindow", f"expected (start, stop) with 0 <= start <= stop, got {window.tolist()}"
            )
        out["output_window"] = (int(window[0]), int(window[1]))
    if r.has("/simulation/readout"):
        readout = r.string("/simulation/readout")
        if readout not in READOUTS:
            raise r.fail("/simulation/readout", f"expected one of {', '.join(READOUTS)}, got {readout!r}")
        out["meta"]["readout"] = readout
    return out


# --------------------------------------------------------------------------- writing


def lava_dl_call(path: str | os.PathLike, net: Netlist) -> str:
    """The lava-dl call that loads ``path`` (the file of ``net``) to compute the simulator's spikes.

    netx reads no reset from the file (it ignores ``resetInterval``/``resetOffset``), so
    the call passes them: without them the layers are never reset.
    """
    args = [f"net_config={str(path)!r}"]
    if net.reset_interval:
        args += [f"reset_interval={net.reset_interval}", f"reset_offset={net.reset_offset}"]
    return f"netx.hdf5.Network({', '.join(args)})"


def lava_dl_call_arguments(call: str) -> dict:
    """The keyword arguments of a :func:`lava_dl_call` string, read as literals (nothing is evaluated)."""
    try:
        node = ast.parse(call.strip(), mode="eval").body
        if not (isinstance(node, ast.Call) and ast.unparse(node.func) == "netx.hdf5.Network" and not node.args):
            raise ValueError("not a call of netx.hdf5.Network with keyword arguments")
        return {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    except (SyntaxError, ValueError) as err:
        raise NeurodeployError(f"{call!r}: not a netx.hdf5.Network(...) call of literal keywords: {err}") from None


def write_netx(net: Netlist, path: str | os.PathLike) -> None:
    """Write ``net`` as a netx HDF5 file that ``netx.hdf5.Network`` loads and runs alike.

    Refuses (:class:`NetxExportError`, naming the layer) what netx cannot carry:
    a conv weight exponent below 0, dense weights netx would re-encode with loss,
    biases that are not whole multiples of 2**6 once shifted, a flatten of a
    layer that is not (C, H, W).
    """
    h5py = h5py_module()
    net.validate()
    _spike_exp(net)
    entries = _entries(net)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        layer_group = h5.create_group("layer")
        for i, entry in enumerate(entries):
            group = layer_group.create_group(str(i))
            for key, value in entry.items():
                _put(group, key, value)
        _write_simulation(h5, net)


def _put(group, key: str, value) -> None:
    if isinstance(value, dict):
        sub = group.create_group(key)
        for k, v in value.items():
            _put(sub, k, v)
    elif isinstance(value, str):
        group.create_dataset(key, data=np.array([value.encode("utf-8")]))
    else:
        arr = np.asarray(value)
        group.create_dataset(key, data=arr if arr.dtype.kind in "iu" else arr.astype(np.int64))


def _entries(net: Netlist) -> list[dict]:
    """One dict of datasets a layer of the file, shape-only input and implied flattens included."""
    entries: list[dict] = []
    if net.input_shape is not None and not isinstance(net.layers[0], Input):
        entries.append({"type": "input", "shape": list(net.input_shape)})
    shape = net.input_shape or ()  # () only before an input layer 0, which reads no shape
    for i, layer in enumerate(net.layers):
        label = layer_label(i, layer)
        if isinstance(layer, Dense) and i > 0 and len(shape) > 1 and not isinstance(net.layers[i - 1], Flatten):
            entries.append({"type": "flatten"})  # netx needs it explicit; ours flattens implicitly alike
        if isinstance(layer, Input):
            entry = _input_entry(layer, label)
        elif isinstance(layer, Conv):
            entry = _conv_entry(layer, label)
        elif isinstance(layer, Dense):
            entry = _dense_entry(layer, label)
        else:
            if len(shape) != 3:
                raise NetxExportError(f"{label}: netx can only flatten a (C, H, W) layer, got {shape}")
            entry = {"type": "flatten"}
        if layer.name:
            entry["name"] = layer.name
        entries.append(entry)
        shape = layer.shape
    return entries


def _neuron_entry(neuron, label: str) -> dict:
    if not is_graded(neuron):
        return {"type": "CUBA", "vThMant": neuron.vth, "iDecay": neuron.du + 1, "vDecay": neuron.dv}
    bits = {} if neuron.message_bits == SDNN_MESSAGE_BITS else {"gradedBits": neuron.message_bits}
    if isinstance(neuron, SigmaNeuron):
        return {"type": "SDNN", "sigma_output": True, **bits}
    if getattr(neuron, "activation", "relu") != "relu":
        raise NetxExportError(f"{label}: activation '{neuron.activation}': netx applies ReLU to every SDNN neuron")
    if neuron.cum_error:
        raise NetxExportError(f"{label}: cum_error: netx builds every sigma-delta neuron without a cumulative error")
    return {"type": "SDNN", "activation": "relu", "vThMant": neuron.vth, **bits}


def _bias_entry(bias: np.ndarray, neuron, label: str) -> np.ndarray:
    """The bias as netx stores it: CUBA mantissas for bias_exp 6, sigma-delta mantissas as they are."""
    if is_graded(neuron):
        return np.asarray(bias, np.int32)
    return _netx_bias(bias, neuron.bias_exp, label)


def _spike_exp(net: Netlist) -> int | None:
    """The one spike_exp of a sigma-delta network (netx takes one for all layers), or None."""
    found: dict[int, int] = {}
    for i in net.neuron_layers:
        neuron = layer_neuron(net.layers[i])
        if isinstance(neuron, (DeltaNeuron, SigmaDeltaNeuron)):
            found.setdefault(neuron.spike_exp, i)
    if len(found) > 1:
        (a, i), (b, j) = list(found.items())[:2]
        raise NetxExportError(f"layer {j}: spike_exp = {b} differs from layer {i}'s {a}; netx takes one for a network")
    return next(iter(found), None)


def _netx_bias(bias: np.ndarray, bias_exp: int, label: str) -> np.ndarray:
    """Mantissas m with m << 6 == bias << bias_exp, as netx fixes the exponent at 6."""
    effective = fx.shift(np.asarray(bias, dtype=np.int64), bias_exp)
    if np.any(effective % (1 << NETX_BIAS_EXP)):
        raise NetxExportError(
            f"{label}: netx fixes bias_exp at {NETX_BIAS_EXP}; bias mantissas shifted by {bias_exp} "
            f"must be multiples of {1 << NETX_BIAS_EXP}"
        )
    return effective >> NETX_BIAS_EXP


def _input_entry(layer: Input, label: str) -> dict:
    entry = {"type": "input", "shape": list(layer.shape), "neuron": _neuron_entry(layer.neuron, label)}
    if np.any(layer.bias) and isinstance(layer.neuron, CubaNeuron):  # a delta encoder has none
        entry["biasMant"] = _netx_bias(layer.bias, layer.neuron.bias_exp, label).astype(np.int32)
    return entry


def _conv_entry(layer: Conv, label: str) -> dict:
    if layer.weight_exp < 0:
        raise NetxExportError(
            f"{label}: weight_exp = {layer.weight_exp}: Lava's fixed-point conv has no weight exponent, "
            "and only exponents >= 0 can be folded into the weights"
        )
    entry = {
        "type": "conv",
        "shape": list(layer.shape),
        "inChannels": layer.in_shape[0],
        "outChannels": layer.weight.shape[0],
        "kernelSize": list(layer.weight.shape[2:]),
        "stride": list(layer.stride),
        "padding": list(layer.padding),
        "dilation": list(layer.dilation),
        "groups": layer.groups,
        "weight": _int32(layer.weight << layer.weight_exp, label),
        "neuron": _neuron_entry(layer.neuron, label),
    }
    if layer.bias is not None:
        bias = _bias_entry(layer.bias, layer.neuron, label)
        entry["bias"] = bias.transpose(2, 1, 0) if bias.ndim == 3 else bias  # per neuron: Lava's (W, H, C)
    return entry


def _integer_weights(layer: Dense, label: str) -> list[np.ndarray]:
    """The integer weights netx stores for ``layer`` (and its recurrent weights), checked to survive netx."""
    matrices = [layer.weight] + ([layer.recurrent_weight] if isinstance(layer, RecurrentDense) else [])
    weights = []
    for matrix in matrices:
        weight = integer_weights(fx.dense_weights(matrix, layer.weight_bits), layer.weight_exp)
        if weight is None:
            raise NetxExportError(
                f"{label}: weight_exp = {layer.weight_exp} with weights that are not multiples of "
                f"{1 << -layer.weight_exp}: netx stores integer weights and derives the exponent itself"
            )
        weights.append(weight)
    try:
        mantissas, bits, exp = netx_weight_encoding(np.hstack(weights))
    except ValueError as err:
        raise NetxExportError(f"{label}: {err}") from None
    for m, weight in zip(np.split(mantissas, [layer.weight.shape[1]], axis=1), weights):
        kept = integer_weights(lava_dense_weights(m, bits), exp)
        if kept is None or not np.array_equal(kept, weight):
            raise NetxExportError(
                f"{label}: netx would re-encode these weights (in [{weight.min()}, {weight.max()}]) with {bits} "
                "bits and Lava would clip or truncate them; an inhibitory minimum of minus a power of two does this"
            )
    return weights


def _dense_entry(layer: Dense, label: str) -> dict:
    weights = _integer_weights(layer, label)
    weight = weights[0]
    entry = {
        "type": layer.kind,
        "shape": [layer.shape[0], 1, 1],
        "inFeatures": layer.weight.shape[1],
        "outFeatures": layer.weight.shape[0],
        "weight": _int32(weight, label),
        "neuron": _neuron_entry(layer.neuron, label),
    }
    if isinstance(layer, RecurrentDense):
        entry["weight_rec"] = _int32(weights[1], label)
    if layer.bias is not None:
        entry["bias"] = _bias_entry(layer.bias, layer.neuron, label)
    if layer.delay is not None:
        entry["delay"] = layer.delay.astype(np.int32)
    return entry


def _int32(arr: np.ndarray, label: str) -> np.ndarray:
    if arr.size and (arr.min() < -fx.INT32 or arr.max() >= fx.INT32):
        raise NetxExportError(f"{label}: weights reach {arr.min()} .. {arr.max()}, beyond 32 bits")
    return arr.astype(np.int32)


def _write_simulation(h5, net: Netlist) -> None:
    values = dict(net.meta.get("simulation", {}))
    if net.reset_interval is not None:
        values["resetInterval"] = net.reset_interval
    if net.reset_offset:
        values["resetOffset"] = net.reset_offset
    if net.output_window is not None:
        values["outputWindow"] = list(net.output_window)
    spike_exp = _spike_exp(net)
    if spike_exp is not None:
        values["spikeExp"] = spike_exp
    if net.input_message_bits:
        values["inputMessageBits"] = net.input_message_bits
    readout = net.meta.get("readout", "spikes")
    if values or readout != "spikes":
        group = h5.create_group("simulation")
        for key, value in values.items():
            group.create_dataset(key, data=np.asarray(value, dtype=np.int64))
        if readout != "spikes":
            group.create_dataset("readout", data=readout)

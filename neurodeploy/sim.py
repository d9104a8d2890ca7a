"""Bit-accurate, batched simulator of an integer netlist on Loihi's fixed-point cores.

Each step, every neuron layer takes the synaptic input computed from the previous
layer's spikes one step earlier (so each dense or conv connection adds one step
of latency), updates u and v by the rules of :mod:`neurodeploy.fixed_point`,
spikes and resets. The netlist is feed-forward, so the run goes layer by layer:
one matrix product gives a layer's input for a block of steps, and its neurons
step through that block while it is in cache. Everything is exact: integer
products are summed in float32 only where every possible sum is below 2**24, in
float64 below 2**53, and in int64 otherwise; u, v and the input are held in
float32 or float64 only where every value provably stays an integer below 2**24
or 2**52 (see :class:`_Neurons`), else in int64. (C, H, W) layers are held
channels-last inside a run, so that a convolution's output is its neurons' state
without a transpose; the records come out in the netlist's order. Events are
counted for the energy model: a synaptic event is one spike delivered over one
nonzero synapse; a neuron update is one neuron stepped. Sigma-delta networks
(graded spikes) run the same way, their neurons and synapses from
:mod:`neurodeploy.sim_graded`; a graded message over a synapse is one event.
CUBA networks the compiled kernel takes (:mod:`neurodeploy.sim_native`) run there
instead, with the same results.
"""

from __future__ import annotations

import copy
import ctypes
import dataclasses
import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from threadpoolctl import ThreadpoolController

from neurodeploy import budget, sim_graded, sim_native
from neurodeploy import fixed_point as fx
from neurodeploy.counters import STEPPED
from neurodeploy.errors import SimulationError
from neurodeploy.netlist import (
    Conv,
    CubaNeuron,
    Dense,
    Input,
    Netlist,
    RecurrentDense,
    bias_per_neuron,
    conv_output_size,
    is_graded,
    neuron_layer,
)

RECORDABLE = ("s", "u", "v", "sigma", "act")
FLOAT_EXACT = 2**53  # float64 holds every integer below this exactly
SAMPLE_BYTES_PER_VALUE = 10  # a sample's working arrays, bytes a neuron and step (spikes, input, records)
CHUNK_BYTES = 2**27  # samples run together while a layer's input and spikes fit in about this
# BLAS threads for the matrix products. Batches are split across cores by samples
# (see _Run); within a chunk the products are many and mostly mid-sized, where a
# thread pool sharing busy cores costs more than it gives: a (14, 2560) @ (2560, 100)
# product took 60 ms with two OpenBLAS threads on a loaded 2-core machine, 0.2 ms with one.
# A run on one chunk lets products of at least BIG_PRODUCT multiply-adds use every core.
BLAS_THREADS = 1
BIG_PRODUCT = 1 << 28
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_MAX = -1, -2, -4  # glibc's mallopt parameters
BLOCK_BYTES = 1 << 19  # a connection's input computed at a time, while the neurons use it from cache
COUNT_ROWS = 2**16 - 1  # spikes counted at a time in uint16 (see _column_sums)
COLS_BLOCK_BYTES = 1 << 19  # convolution patches gathered at a time (about a core's L2 cache)
CHANNEL_COPY_LIMIT = 64  # a (C, H, W) array with at most this many channels is reordered channel by channel


@dataclass
class Recording:
    """What a run produced, per layer index of the netlist (flatten layers absent).

    ``s``, ``u`` and ``v`` hold arrays shaped (batch, steps, *layer shape) for the
    variables asked for (a (C, H, W) layer's spikes from the compiled kernel are a
    channels-last array seen in this order); the counters are totals over the batch
    and all steps.
    In a sigma-delta network ``s`` holds the graded messages (int32, 0 where none
    was sent), ``sigma`` and ``act`` the neurons' sigma and activation, and a spike
    is a message sent; u and v are absent.
    """

    steps: int
    batch: int
    s: dict[int, np.ndarray] = field(default_factory=dict)
    u: dict[int, np.ndarray] = field(default_factory=dict)
    v: dict[int, np.ndarray] = field(default_factory=dict)
    sigma: dict[int, np.ndarray] = field(default_factory=dict)
    act: dict[int, np.ndarray] = field(default_factory=dict)
    spike_count: dict[int, int] = field(default_factory=dict)
    synaptic_events: dict[int, int] = field(default_factory=dict)
    neuron_updates: dict[int, int] = field(default_factory=dict)
    u_wraps: dict[int, int] = field(default_factory=dict)
    v_saturations: dict[int, int] = field(default_factory=dict)
    message_bits: dict[int, int] = field(default_factory=dict)  # sigma-delta layers: bits a graded message
    output_counts: np.ndarray | None = None  # (batch, *output shape) spikes of the last layer
    output_v: np.ndarray | None = None  # (batch, *output shape) the last layer's v after the last step

    def predictions(self) -> np.ndarray:
        """Class per sample: argmax of the last layer's spike counts (lowest index on ties)."""
        if self.output_counts is None:
            raise ValueError("this recording holds no output counts")
        counts = self.output_counts.reshape(self.batch, -1)
        return counts.argmax(axis=1)


def _sum_dtype(bound: int) -> type:
    """The narrowest type that sums exactly any integers whose sum is at most ``bound`` in magnitude."""
    if bound < 2**24:
        return np.float32
    return np.float64 if bound < 2**53 else np.int64


class _DenseOp:
    """Dense synapses of one layer, possibly with per-synapse delays.

    ``in_shape`` is the shape of the layer feeding it; a (C, H, W) one is held
    channels-last (see :func:`_to_internal`), so the weight's columns are
    reordered to match.
    """

    def __init__(self, layer: Dense, graded_max: int, in_shape: tuple[int, ...]):
        weight = _columns_channels_last(fx.dense_weights(layer.weight, layer.weight_bits, np.int16), in_shape)
        delay = None if layer.delay is None else _columns_channels_last(layer.delay, in_shape)
        self.exp = int(layer.weight_exp)
        row_sum = int(np.abs(weight).sum(axis=1, dtype=np.int64).max(initial=0)) * graded_max
        self.dtype = _sum_dtype(row_sum)
        if delay is None or not delay.any():
            self.by_delay = {0: weight.astype(self.dtype).T}  # a view: BLAS takes the transpose as it is
        else:
            self.by_delay = {int(d): np.where(delay == d, weight, 0).astype(self.dtype).T for d in np.unique(delay)}
        self.delays = tuple(self.by_delay)
        self.fan_out = np.count_nonzero(weight, axis=0).astype(np.float64)  # nonzero synapses leaving each input
        self.bound = _shifted_bound(row_sum, self.exp) + len(self.by_delay)  # a floor adds at most 1 a delay

    @functools.cached_property
    def prescaled(self) -> dict[int, np.ndarray] | None:
        """For the float path, the weights with a non-negative exponent and the 6-bit alignment folded
        in (exact: powers of 2); None where they cannot be."""
        if self.exp < 0 or self.dtype == np.int64:
            return None
        scale = self.dtype(2.0 ** (self.exp + fx.ACT_SHIFT))
        return {d: w * scale for d, w in self.by_delay.items()}

    def events(self, counts: np.ndarray) -> int:
        """Synaptic events from the summed presynaptic values of each input neuron."""
        return int(np.rint(counts @ self.fan_out))

    def __call__(self, x: np.ndarray, exact_float: bool, spread: bool) -> dict[int, np.ndarray]:
        """Presynaptic values (rows, n_in) -> synaptic input (rows, n_out) per delay.

        With ``exact_float`` already shifted left by 6 (as it enters u), as float32
        or float64 holding exact integers; else int64. ``spread``: large products
        may use every core.
        """
        x = x.astype(self.dtype, copy=False)
        if exact_float and self.prescaled is not None:
            return {d: _matmul(x, w, spread) for d, w in self.prescaled.items()}
        then = fx.ACT_SHIFT if exact_float else 0
        return {d: _scaled(_matmul(x, w, spread), self.exp, exact_float, then) for d, w in self.by_delay.items()}


class _ConvOp:
    """Convolution synapses (cross-correlation), output wrapped to 24 bits; channels-last in and out."""

    def __init__(self, layer: Conv, graded_max: int):
        self.layer = layer
        o, cg, kh, kw = layer.weight.shape
        fan_sum = int(np.abs(layer.weight).reshape(o, -1).sum(axis=1).max(initial=0)) * graded_max
        self.dtype = _sum_dtype(fan_sum)
        self.weight: np.ndarray = layer.weight.astype(self.dtype)
        self.exp = int(layer.weight_exp)
        nonzero = (layer.weight != 0).reshape(layer.groups, o // layer.groups, cg, kh, kw)
        self.taps = nonzero.sum(axis=1, dtype=np.float64)  # per group: how many of its outputs use each tap
        self.raw_bound = _shifted_bound(fan_sum, self.exp)
        self.bound = min(self.raw_bound, fx.MAX_UV)  # after the 24-bit wrap
        self.wraps = self.raw_bound >= fx.MAX_UV  # below, no sum can leave the 24 bits
        self.delays = (0,)

    @functools.cached_property
    def prescaled(self) -> np.ndarray | None:
        """For the float path, the weights with a non-negative exponent and the 6-bit alignment folded
        in, as :attr:`_DenseOp.prescaled`; None where they cannot be or a sum may wrap."""
        if self.exp < 0 or self.dtype == np.int64 or self.wraps:
            return None
        return self.weight * self.dtype(2.0 ** (self.exp + fx.ACT_SHIFT))

    def events(self, counts: np.ndarray) -> int:
        """Synaptic events from the summed presynaptic values of each input neuron (channels-last).

        Each input reaches as many outputs as the nonzero taps whose window covers
        it, so the count is the sum of the input map convolved with the nonzero mask,
        here summed over each group's outputs first (exact in float64: integers far
        below 2**53).
        """
        image = counts.reshape((1,) + _channels_last(self.layer.in_shape))
        return int(np.rint(self._conv(image, self.taps).sum()))

    def __call__(self, x: np.ndarray, exact_float: bool, spread: bool) -> dict[int, np.ndarray]:
        """Presynaptic values (rows, n_in) -> synaptic input (rows, n_out), as :class:`_DenseOp`."""
        rows = x.shape[0]
        x = x.reshape((rows,) + _channels_last(self.layer.in_shape))
        if exact_float and self.prescaled is not None:
            return {0: self._conv(x, self.prescaled, spread).reshape(rows, -1)}
        out = self._conv(x, self.weight, spread)
        if out.dtype.kind == "f" and self.raw_bound < FLOAT_EXACT:  # shifted and wrapped exactly as floats
            if self.wraps:
                out = _scaled(out.astype(np.float64), self.exp, True)
                out -= np.floor((out + fx.MAX_UV) * 2.0**-24) * 2.0**24  # two's-complement wrap to 24 bits
            else:
                out = _scaled(out, self.exp, True)
            if not exact_float:
                return {0: out.astype(np.int64).reshape(rows, -1)}
            out *= 2.0**fx.ACT_SHIFT
        else:
            out = fx.wrap_bits(_scaled(out, self.exp, False), 24)
            out = (out << fx.ACT_SHIFT).astype(np.float64) if exact_float else out
        return {0: out.reshape(rows, -1)}

    def _conv(self, x: np.ndarray, weight: np.ndarray, spread: bool = False) -> np.ndarray:
        layer = self.layer
        return _conv2d_channels_last(x, weight, layer.stride, layer.padding, layer.dilation, layer.groups, spread)


def _matmul(a: np.ndarray, b: np.ndarray, spread: bool = False, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` (into ``out`` if given), on every core when ``spread`` and the product is large
    enough to gain from it."""
    if not spread or a.shape[0] * a.shape[1] * b.shape[1] < BIG_PRODUCT:
        return np.matmul(a, b, out=out)
    with _blas().limit(limits=_cores(), user_api="blas"):
        return np.matmul(a, b, out=out)


@functools.cache
def _keep_freed_memory() -> None:
    """Ask glibc's malloc to keep freed memory for reuse: every block from the heap (none mapped on
    its own), and up to 512 MB of free heap kept rather than handed back (process-wide, set once).

    A run allocates and frees the same arrays layer after layer, run after run, the records
    among them (a PilotNet batch records 160 MB of spikes). Pages handed back to the system are
    faulted in again, at about 2.5 us each on a virtual machine: a fifth of a PilotNet run. Free
    heap past 512 MB is still handed back. Elsewhere (other C libraries or systems) this does
    nothing.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return
    mallopt(M_TOP_PAD, 64 << 20)
    mallopt(M_TRIM_THRESHOLD, 512 << 20)
    mallopt(M_MMAP_MAX, 0)


@functools.cache
def _blas() -> ThreadpoolController:
    """The loaded BLAS libraries, looked up once (a lookup reads /proc/self/maps)."""
    return ThreadpoolController()


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _shifted_bound(bound: int, exp: int) -> int:
    """A bound on |x << exp| (or on the floor of ``x >> -exp``) given |x| <= bound."""
    return bound << exp if exp >= 0 else (bound >> -exp) + 1


def _scaled(y: np.ndarray, exp: int, exact_float: bool, then: int = 0) -> np.ndarray:
    """An exact integer sum shifted by ``exp`` (a floor when negative), then left by ``then``.

    In place and in its own float type when ``exact_float`` (scaling by a power of
    two is exact in binary floating point, and so is the floor, while the result
    stays an integer below the type's 2**24 or 2**53: it is at most the sum); int64
    otherwise.
    """
    if not exact_float or y.dtype.kind != "f":  # int64 sums may exceed 2**53: shift them as integers
        shifted = fx.shift(np.rint(y).astype(np.int64) if y.dtype.kind == "f" else y, exp)
        return fx.shift(shifted, then) if not exact_float else shifted.astype(np.float64) * 2.0**then
    if exp < 0:
        y *= 2.0**exp
        np.floor(y, out=y)
        exp = 0
    if exp + then:
        y *= 2.0 ** (exp + then)
    return y


def conv2d(x: np.ndarray, w: np.ndarray, *, stride, padding, dilation, groups: int) -> np.ndarray:
    """Batched 2-D cross-correlation: x (B, C, H, W), w (O, C/groups, kH, kW) -> (B, O, Ho, Wo)."""
    out = _conv2d_channels_last(x.transpose(0, 2, 3, 1), w, stride, padding, dilation, groups)
    return out.transpose(0, 3, 1, 2)


def _conv2d_channels_last(
    x: np.ndarray, w: np.ndarray, stride, padding, dilation, groups: int, spread: bool = False
) -> np.ndarray:
    """:func:`conv2d` on x (B, H, W, C), with the output contiguous in (B, Ho, Wo, O) order.

    A few images at a time (while their patches fit in cache), the patches are
    gathered from a channels-last copy of x in w's type, so that the copy's
    innermost runs are whole channel vectors rather than kernel rows.
    """
    o, cg, kh, kw = w.shape
    b, h, wd, c = x.shape
    ho, wo = conv_output_size((h, wd), (kh, kw), stride, padding, dilation)
    og = o // groups
    kernels = [w[g * og : (g + 1) * og].transpose(0, 2, 3, 1).reshape(og, -1).T for g in range(groups)]
    dtype = w.dtype if x.dtype.kind in "biu" else np.result_type(x, w)  # spikes take the weights' type
    out = np.empty((b, ho, wo, o), dtype)
    block = max(1, COLS_BLOCK_BYTES // max(1, ho * wo * kh * kw * c * dtype.itemsize))
    for lo in range(0, b, block):
        images = x[lo : lo + block]
        cols = _windows(_padded(images, padding, dtype), (ho, wo), (kh, kw), stride, dilation)
        for g, kernel in enumerate(kernels):
            patch = cols[..., g * cg : (g + 1) * cg].reshape(len(images) * ho * wo, kh * kw * cg)
            if groups == 1:  # straight into the output, without a temporary
                _matmul(patch, kernel, spread, out=out[lo : lo + block].reshape(len(patch), og))
            else:
                out[lo : lo + block, ..., g * og : (g + 1) * og] = _matmul(patch, kernel, spread).reshape(
                    -1, ho, wo, og
                )
    return out


def _padded(x: np.ndarray, padding, dtype) -> np.ndarray:
    """x (B, H, W, C) zero-padded on H and W, contiguous, in ``dtype``."""
    (ph, pw), (b, h, w, c) = padding, x.shape
    if not (ph or pw):
        return np.ascontiguousarray(x, dtype=dtype)
    out = np.zeros((b, h + 2 * ph, w + 2 * pw, c), dtype)
    out[:, ph : ph + h, pw : pw + w] = x
    return out


def _windows(padded: np.ndarray, out_hw, kernel_hw, stride, dilation) -> np.ndarray:
    """The windows of a padded x (B, H, W, C) as a read-only view (B, Ho, Wo, kH, kW, C)."""
    (sh, sw), (dh, dw), st = stride, dilation, padded.strides
    return np.lib.stride_tricks.as_strided(
        padded,
        (padded.shape[0], *out_hw, *kernel_hw, padded.shape[3]),
        (st[0], st[1] * sh, st[2] * sw, st[1] * dh, st[2] * dw, st[3]),
        writeable=False,
    )


def _channels_last(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The order a layer's neurons are held in: (H, W, C) for a (C, H, W) layer, else as given."""
    return tuple(shape[1:]) + (shape[0],) if len(shape) == 3 else tuple(shape)


def _to_internal(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """x (..., *shape) in the netlist's order -> the held order, flattened to (..., n).

    A (C, H, W) layer's channels are copied one by one where they are few: several times faster
    than numpy's general transposing copy when C is small.
    """
    lead = x.ndim - len(shape)
    if len(shape) == 3 and shape[0] <= CHANNEL_COPY_LIMIT:
        held = np.empty(x.shape[:lead] + tuple(shape[1:]) + tuple(shape[:1]), x.dtype)
        for c in range(shape[0]):
            held[..., c] = x[(slice(None),) * lead + (c,)]
        return held.reshape(x.shape[:lead] + (-1,))
    if len(shape) == 3:
        x = np.moveaxis(x, lead, -1)
    return x.reshape(x.shape[:lead] + (-1,))


def _to_netlist(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`_to_internal`: x (..., n) held order -> (..., *shape), a view."""
    x = x.reshape(x.shape[:-1] + _channels_last(shape))
    return np.moveaxis(x, -1, x.ndim - 3) if len(shape) == 3 else x


def _columns_channels_last(matrix: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """A dense layer's (n_out, n_in) matrix with its columns in the held order of its input."""
    return _to_internal(matrix.reshape((matrix.shape[0],) + tuple(in_shape)), tuple(in_shape))


def _synapse(layer, graded_max: int, in_shape: tuple[int, ...]):
    return _DenseOp(layer, graded_max, in_shape) if isinstance(layer, Dense) else _ConvOp(layer, graded_max)


def _batch_size(spikes: np.ndarray | None, bias: np.ndarray | None, net: Netlist) -> int:
    if spikes is not None:
        return int(spikes.shape[0])
    if bias is not None and isinstance(net.layers[0], Input) and bias.ndim > len(net.layers[0].shape):
        return int(bias.shape[0])
    return 1


def simulate(
    net: Netlist,
    steps: int,
    *,
    spikes: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    record: tuple[str, ...] = ("s",),
    reset_interval: int | None = -1,
    conventions: str = "lava",
) -> Recording:
    """Run ``net`` for ``steps`` steps on a batch and record what was asked.

    ``spikes`` (batch, steps, *input shape) feed the first synaptic layer, or,
    when layer 0 is an :class:`Input`, are added to its neurons' input directly
    (integers allowed there). ``bias`` replaces the input layer's bias mantissas,
    shaped like the layer or with a leading batch axis. ``reset_interval`` -1
    takes the netlist's own; ``None`` never resets. ``conventions`` (one of
    :data:`fixed_point.CONVENTIONS`) sets when resets fall and the v shown on
    spike steps: ``lava`` as Lava's fixed_pt models, ``loihi2`` as Loihi 2 silicon.
    """
    spikes = input_messages(net, spikes)
    rec, reset_interval, graded_max = prepare_run(
        net, steps, spikes=spikes, bias=bias, record=record, reset_interval=reset_interval, conventions=conventions
    )
    _keep_freed_memory()
    with _blas().limit(limits=BLAS_THREADS, user_api="blas"):
        _Run(net, rec.batch, record, (reset_interval, conventions), rec, graded_max, spikes, bias).go(steps)
    return rec


def input_messages(net: Netlist, spikes: np.ndarray | None) -> np.ndarray | None:
    """The external input as the first layer takes it: a sigma-delta network's first synapse, with no
    input message bits, gets binary messages (Lava's Dense and Conv cast them)."""
    if spikes is not None and net.graded and not isinstance(net.layers[0], Input) and not net.input_message_bits:
        return spikes != 0
    return spikes


def layer_traces(neuron) -> tuple[str, ...]:
    """The state a neuron layer can record beside s: u and v, or a sigma-delta neuron's sigma and act."""
    return tuple(name for name in sim_graded.traces(neuron) if name) if is_graded(neuron) else ("u", "v")


def allocate_records(rec: Recording, net: Netlist, record: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Fill ``rec`` with the zeroed records and counters of every neuron layer of ``net``, as a run of
    ``rec.steps`` steps writes them; returns the output counts and output v it holds (zeros)."""
    batch, steps = rec.batch, rec.steps
    for i in net.neuron_layers:
        layer = neuron_layer(net.layers[i])
        neuron = layer.neuron
        for name in record:
            if name == "s" or name in layer_traces(neuron):
                dtype = bool if name == "s" and isinstance(neuron, CubaNeuron) else np.int32
                getattr(rec, name)[i] = np.zeros((batch, steps) + tuple(layer.shape), dtype)
        for counter in STEPPED:
            getattr(rec, counter)[i] = 0
        rec.neuron_updates[i] = batch * steps * math.prod(layer.shape)
        if not isinstance(neuron, CubaNeuron):
            rec.message_bits[i] = int(neuron.message_bits)
    rec.output_counts = np.zeros((batch,) + tuple(net.output_shape), np.int64)
    rec.output_v = np.zeros((batch,) + tuple(net.output_shape), np.int64)
    return rec.output_counts, rec.output_v


def prepare_run(
    net: Netlist,
    steps: int,
    *,
    spikes: np.ndarray | None,
    bias: np.ndarray | None,
    record: tuple[str, ...],
    reset_interval: int | None,
    conventions: str = "lava",
) -> tuple[Recording, int | None, int]:
    """Check a run's arguments (see :func:`simulate`) and its memory; its empty Recording, reset
    interval and largest input payload."""
    bad = set(record) - set(RECORDABLE)
    if bad:
        raise SimulationError(f"cannot record {sorted(bad)}; choose from {RECORDABLE}")
    if conventions not in fx.CONVENTIONS:
        raise SimulationError(f"unknown run conventions {conventions!r}; choose from {fx.CONVENTIONS}")
    if reset_interval == -1:
        reset_interval = net.reset_interval
    batch = _batch_size(spikes, bias, net)
    expected = net.external_shape
    if spikes is not None and tuple(spikes.shape[2:]) != tuple(expected):
        raise SimulationError(f"input spikes have shape {spikes.shape[2:]} per step, the netlist takes {expected}")
    if spikes is not None and spikes.shape[1] < steps:
        raise SimulationError(f"input spikes cover {spikes.shape[1]} steps, {steps} were asked for")
    _require_memory(net, batch, steps, record)
    graded_max = int(np.abs(spikes).max(initial=1)) if spikes is not None and spikes.dtype != bool else 1
    return Recording(steps=steps, batch=batch), reset_interval, graded_max


def _require_memory(net: Netlist, batch: int, steps: int, record: tuple[str, ...]) -> None:
    """The records (bool spikes, int32 u and v) and one sample's working arrays must fit the memory budget."""
    sizes = [math.prod(net.layers[i].shape) for i in net.neuron_layers]
    per_value = sum(1 if name == "s" and not net.graded else 4 for name in record)
    widest = max(sizes + [math.prod(net.input_shape or (1,))])
    needed = batch * steps * sum(sizes) * per_value + steps * widest * SAMPLE_BYTES_PER_VALUE
    budget.require(
        needed,
        f"simulating {batch} sample(s) for {steps} steps ({sum(sizes)} neurons, "
        f"recording {','.join(record) or 'spike counts'})",
    )


class _Neurons:
    """The CUBA update of one neuron layer, step by step over a batch.

    With ``exact_float`` (every synaptic input below 2**44 in magnitude), u, v and
    the input are held as float64: all of them are integers below 2**52, products
    with a decay factor k / 4096 are exact (at most 44 significant bits), and
    ``trunc``, ``floor`` and scaling by powers of two are exact, so each step equals
    the int64 rules of :mod:`neurodeploy.fixed_point`. Scalar bounds on |u| and |v|
    skip the wraps and the clip where they cannot happen: with input below 2**24
    (after the 6-bit shift) |u| never exceeds 2**23, so neither u's int32 wrap nor a
    second 24-bit wrap can occur. Where the bounds show that every u, v, sum and
    decay product stays an integer below 2**24 (see :meth:`_fits_float32`), float32
    is exact too and is used. Otherwise the int64 rules run as written.
    """

    FLOAT_INPUT_LIMIT = 2**44  # synaptic input bound below which the float64 path is exact
    FLOAT32_EXACT = 2**24

    def __init__(self, neuron, bias: _Bias, input_bound: int):
        self.neuron, self.source = neuron, bias
        self.cu = (fx.DECAY_UNITY - (neuron.du + 1)) / fx.DECAY_UNITY
        self.cv = (fx.DECAY_UNITY - neuron.dv) / fx.DECAY_UNITY
        self.threshold = neuron.vth << fx.ACT_SHIFT
        self.a_bound = input_bound << fx.ACT_SHIFT
        self.exact_float = input_bound < self.FLOAT_INPUT_LIMIT
        self.bias_bound = bias.bound
        self.u_may_wrap32 = self.a_bound >= 2**24
        self.alias_input = self.cu == 0.0 and self.a_bound < fx.MAX_UV  # u is the input, which never wraps
        self.v_may_wrap32 = self.u_may_wrap32 or self.bias_bound + 2**24 >= fx.INT32
        self.dtype: type[np.generic] = np.int64
        if self.exact_float:
            self.dtype = np.float32 if self._fits_float32() else np.float64
            self.threshold = min(self.threshold, fx.MAX_UV)  # |v| < 2**23: a higher threshold acts as this one

    @property
    def bias(self) -> np.ndarray | None:
        """The effective bias (rows, n) in the held order, int32; None where all zero."""
        return self.source.held if self.bias_bound else None

    @property
    def per_sample(self) -> bool:
        """Whether the bias differs between samples."""
        return self.source.per_sample

    def for_rows(self, rows: slice) -> _Neurons:
        """The same neurons with the per-sample bias of some rows."""
        part = copy.copy(self)
        part.source = self.source.part(rows)
        part.__dict__.pop("float_bias", None)  # computed again for these rows
        return part

    @functools.cached_property
    def float_bias(self) -> np.ndarray | None:
        """The bias in the float path's type (exact: its values are integers below the type's limit)."""
        return None if self.bias is None else self.bias.astype(self.dtype)

    def _fits_float32(self) -> bool:
        """Whether float32 computes this layer exactly: every value an integer below 2**24.

        |u| <= cu |u| + a_bound gives |u| <= U = a_bound / (1 - cu), and likewise
        |v| <= V = (U + bias) / (1 - cv). With U and V inside 24 bits nothing wraps
        or saturates; a decay product x * m / 4096 is exact when |x| times the odd
        part of m is below 2**24.
        """
        n, unity = self.neuron, fx.DECAY_UNITY
        keep_u, keep_v = unity - (n.du + 1), unity - n.dv
        if keep_u >= unity or keep_v >= unity:  # no decay: no bound from it
            return False
        u_top = -(-self.a_bound * unity // (unity - keep_u))
        v_top = -(-(u_top + self.bias_bound) * unity // (unity - keep_v))
        return (
            u_top < fx.MAX_UV
            and v_top <= fx.V_LIMIT
            and u_top * _odd_part(keep_u) < self.FLOAT32_EXACT
            and v_top * _odd_part(keep_v) < self.FLOAT32_EXACT
        )

    def run(self, a_in, resets, s: np.ndarray, u_out, v_out) -> tuple[int, int]:
        """Step through the input, writing spikes into s (steps, rows, n).

        ``a_in(t)`` is the input arriving at step t, or None where none does (never
        changed here). ``resets(t)`` says whether u and v are zeroed before step t;
        ``u_out`` and ``v_out`` (steps, rows, n) take the traces when not None.
        Returns the counts of u wraps and v saturations.
        """
        steps, rows, n = s.shape
        state = _State(np.zeros((rows, n), self.dtype), np.zeros((rows, n), self.dtype), np.empty((rows, n), bool))
        step = self._float_step if self.exact_float else self._int_step
        wraps = saturations = 0
        for t in range(steps):
            if resets(t):
                state.clear()
            u, (w, sat) = step(state, a_in(t), s[t])
            wraps, saturations = wraps + w, saturations + sat
            if u_out is not None:
                u_out[t] = u
            if v_out is not None:
                v_out[t] = state.v
        return wraps, saturations

    def _float_step(self, state: _State, a: np.ndarray | None, s: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """One step in floating point; returns u (the input itself where u keeps nothing) and the counts."""
        u, v = state.u, state.v
        wraps = saturations = 0
        u_bound = state.u_bound * self.cu
        u_zero = a is None and u_bound == 0  # u is all zero and stays so (an input layer driven by bias)
        if a is not None and self.alias_input:
            u = a
        elif a is not None and self.cu == 0.0:
            np.copyto(u, a)
        elif not u_zero:
            _decay(u, self.cu)
            if a is not None:
                u += a
        if a is not None:
            u_bound += self.a_bound
        if self.u_may_wrap32:
            _wrap32(u)
            wraps, u_bound = _wrap24(u), fx.INT32
        elif u_bound >= fx.MAX_UV:  # look: the bound allows a wrap, the values may not
            top, bottom = u.max(), u.min()
            if top > fx.MAX_UV or bottom <= -fx.MAX_UV:
                wraps, u_bound = _wrap24(u), fx.MAX_UV
            else:
                u_bound = max(top, -bottom)
        _decay(v, self.cv)
        if not u_zero:
            v += u
        if self.bias is not None:
            v += self.float_bias
        v_bound = state.v_bound * self.cv + u_bound + self.bias_bound
        if self.v_may_wrap32:
            _wrap32(v)
            saturations, v_bound = _saturate(v), fx.V_LIMIT
        elif v_bound > fx.V_LIMIT:
            top, bottom = v.max(), v.min()
            if top > fx.V_LIMIT or bottom < -fx.V_LIMIT:
                saturations, v_bound = _saturate(v), fx.V_LIMIT
            else:
                v_bound = max(top, -bottom)
        np.greater(v, self.threshold, out=s)
        if v_bound > self.threshold and np.count_nonzero(s):
            np.logical_not(s, out=state.keep)
            v *= state.keep  # a reset by multiplication: far faster than a masked copy
        state.u_bound, state.v_bound = float(u_bound), float(v_bound)
        return u, (int(wraps), int(saturations))

    def _int_step(self, state: _State, a: np.ndarray | None, s: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        u, v, n = state.u, state.v, self.neuron
        new_u, wrapped = fx.update_current(u, np.zeros_like(u) if a is None else a, n.du)
        bias = np.zeros_like(u) if self.bias is None else self.bias
        new_v, saturated = fx.update_voltage(v, new_u, bias, n.dv)
        np.greater(new_v, self.threshold, out=s)
        u[...] = new_u
        v[...] = np.where(s, 0, new_v)
        return u, (int(wrapped.sum()), int(saturated.sum()))


@dataclass
class _State:
    """A neuron layer's u and v over the rows of a run, with bounds on their magnitudes and scratch."""

    u: np.ndarray
    v: np.ndarray
    keep: np.ndarray  # where no spike fell this step
    u_bound: float = 0.0
    v_bound: float = 0.0

    def clear(self) -> None:
        """A reset: u and v zeroed."""
        self.u.fill(0)
        self.v.fill(0)
        self.u_bound = self.v_bound = 0.0


def _odd_part(m: int) -> int:
    """m without its factors of two (0 for 0)."""
    return m // (m & -m) if m else 0


def _decay(x: np.ndarray, factor: float) -> None:
    """x = trunc(x * factor) in place; factor is k / 4096, so the product is exact in float64."""
    if factor == 0.0:
        x.fill(0.0)
    elif factor != 1.0:
        x *= factor
        np.trunc(x, out=x)


def _wrap24(u: np.ndarray) -> int:
    """Lava's one-step 24-bit wrap of u in place: above 2**23 take 2**24 off, at or below -2**23 add it."""
    high, low = u > fx.MAX_UV, u <= -fx.MAX_UV
    np.subtract(u, 2 * fx.MAX_UV, out=u, where=high)
    np.add(u, 2 * fx.MAX_UV, out=u, where=low)
    return int(np.count_nonzero(high) + np.count_nonzero(low))


def _saturate(v: np.ndarray) -> int:
    """Clip v to 24 bits in place; returns how many values were outside."""
    outside = int(np.count_nonzero(v > fx.V_LIMIT) + np.count_nonzero(v < -fx.V_LIMIT))
    np.clip(v, -fx.V_LIMIT, fx.V_LIMIT, out=v)
    return outside


def _wrap32(x: np.ndarray) -> None:
    """Two's-complement wrap of integer-valued float64 x into 32 bits, in place (exact below 2**52)."""
    x -= np.floor((x + 2.0**31) * 2.0**-32) * 2.0**32


class _Unit:
    """One neuron layer: its synapses (None for an input layer) and neurons, held in the order of
    :func:`_channels_last`."""

    def __init__(self, k: int, index: int, layer, op, neurons: _Neurons):
        self.k, self.index, self.layer, self.neurons = k, index, layer, neurons
        self.op: _DenseOp | _ConvOp | sim_graded.GradedSynapse | None = op
        self.shape = tuple(layer.shape)
        self.n = int(np.prod(layer.shape))
        self.graded = is_graded(layer.neuron)
        self.traces = sim_graded.traces(layer.neuron) if self.graded else ("u", "v")
        self.rec_op: _DenseOp | sim_graded.GradedSynapse | None = None
        self.rec_binary = True
        if isinstance(layer, RecurrentDense) and not self.graded:
            self.rec_op = _DenseOp(_recurrent_part(layer), 1, (self.n,))

    def with_graded_input(self, pre: np.ndarray | None, in_shape: tuple[int, ...]) -> _Unit:
        """This unit with synapses sized for the largest message in ``pre`` (a copy; units are shared)."""
        if isinstance(self.layer, Input) or pre is None:
            return self
        graded_max = 1 if pre.dtype == bool or not pre.size else max(1, abs(int(pre.max())), abs(int(pre.min())))
        unit = copy.copy(self)
        layer = self.layer
        if isinstance(layer, Dense):
            inner = _DenseOp(dataclasses.replace(layer, weight_exp=0), graded_max, in_shape)
            unit.op = sim_graded.GradedSynapse(inner, int(layer.weight_exp), layer.delay is not None)
        else:
            unit.op = sim_graded.GradedSynapse(_ConvOp(layer, graded_max), None)
        if isinstance(layer, RecurrentDense):
            unit.rec_binary = pre.dtype == bool  # netx gives the recurrent synapse the layer's input bits
            bound = 1 if unit.rec_binary else sim_graded.MESSAGE_BOUND
            inner = _DenseOp(dataclasses.replace(_recurrent_part(layer), weight_exp=0), bound, (self.n,))
            unit.rec_op = sim_graded.GradedSynapse(inner, int(layer.weight_exp))
        return unit

    def with_recurrence(self, a, s: np.ndarray, spread: bool):
        """The input function ``a`` plus the recurrent input: the layer's own messages of step t - 1."""
        rec_op = self.rec_op
        if rec_op is None:
            return a
        exact = self.neurons.exact_float

        def total(t: int):
            own = a(t)
            if t < 1:
                return own
            prev = s[t - 1] != 0 if self.rec_binary else s[t - 1]
            (back,) = rec_op(prev, exact, spread).values()
            return back if own is None else own + back

        return total

    def synaptic_input(self, pre: np.ndarray | None, spread: bool):
        """The input from ``pre`` (steps, rows, n_pre) as a function of the step it arrives at.

        The function gives (rows, n) times 2**6 in the float path, or None where
        nothing arrives. A connection delivers one step late, plus its delay. The
        input is computed a block of steps at a time as the neurons reach it, so
        that it is used while in cache.
        """
        if pre is None:
            return lambda t: None
        exact = self.neurons.exact_float
        steps, rows = pre.shape[:2]
        if self.op is None:  # external input into an input layer, same step
            return lambda t: pre[t] * 2.0**fx.ACT_SHIFT if exact else pre[t].astype(np.int64)
        if steps < 2:
            return lambda t: None
        if len(self.op.delays) == 1:
            (delay,) = self.op.delays
            return _Blocks(self, self.op, pre[: steps - 1 - delay], delay + 1, spread)
        a = np.zeros((steps - 1, rows, self.n), np.float64 if exact else np.int64)
        currents = self.op(pre[: steps - 1].reshape((steps - 1) * rows, -1), exact, spread)
        for d, current in currents.items():
            a[d:] += current.reshape(steps - 1, rows, self.n)[: max(0, steps - 1 - d)]
        return lambda t: a[t - 1] if t >= 1 else None


def _recurrent_part(layer: RecurrentDense) -> Dense:
    """The recurrent synapses of ``layer`` as a plain dense layer of its own size."""
    return Dense(
        weight=cast(np.ndarray, layer.weight_rec),  # never None in a validated layer
        neuron=layer.neuron,
        weight_exp=layer.weight_exp,
        weight_bits=layer.weight_bits,
        name=layer.name,
    )


class _Blocks:
    """A connection's input computed a block of presynaptic steps at a time (BLOCK_BYTES of output)."""

    def __init__(self, unit: _Unit, op: _DenseOp | _ConvOp | sim_graded.GradedSynapse, pre, first: int, spread: bool):
        self.unit, self.op, self.pre, self.first, self.spread = unit, op, pre, first, spread
        rows = pre.shape[1]
        self.size = max(1, BLOCK_BYTES // max(1, 4 * rows * unit.n))
        self.start, self.block = 0, pre[:0]

    def __call__(self, t: int) -> np.ndarray | None:
        k = t - self.first  # the presynaptic step
        if not 0 <= k < len(self.pre):
            return None
        if not self.start <= k < self.start + len(self.block):
            self.start = k - k % self.size
            part = self.pre[self.start : self.start + self.size]
            flat = part.reshape(part.shape[0] * part.shape[1], -1)
            (current,) = self.op(flat, self.unit.neurons.exact_float, self.spread).values()
            self.block = current.reshape(part.shape[:2] + (self.unit.n,))
        return self.block[k - self.start]


class _Run:
    """One simulation, layer after layer over all steps (the netlist is feed-forward).

    The batch is cut into chunks that keep each layer's input and spikes within
    about CHUNK_BYTES, and into at least one chunk a core when each still has
    MIN_PARALLEL_ROWS samples; samples are independent, so the chunks run in
    parallel threads (numpy and BLAS release the GIL).
    """

    MIN_PARALLEL_ROWS = 8

    def __init__(self, net, batch, record, resets, rec, graded_max, spikes, bias):
        self.net, self.batch, self.record, self.rec = net, batch, record, rec
        (self.reset_interval, self.conventions), self.spikes = resets, spikes
        self.units, self.in_shapes = [], []
        in_shape = net.input_shape
        for k, i in enumerate(net.neuron_layers):
            layer = net.layers[i]
            op = None  # an input layer's; a sigma-delta layer's comes with its input (_Unit.with_graded_input)
            if not isinstance(layer, Input) and not is_graded(layer.neuron):
                op = _synapse(layer, graded_max if k == 0 else 1, in_shape)
            layer_bias = bias if (isinstance(layer, Input) and bias is not None) else layer.bias
            given = None if layer_bias is None else bias_rows(np.asarray(layer_bias, np.int64), layer.shape, batch)
            if is_graded(layer.neuron):
                b = np.zeros((1, 1), np.int64) if given is None or not given.any() else _held(given, layer.shape)
                neurons = sim_graded.GradedNeurons(layer.neuron, sim_graded.effective_bias(b, layer.neuron))
            else:
                input_bound = graded_max if op is None else op.bound
                if isinstance(layer, RecurrentDense):
                    input_bound += _DenseOp(_recurrent_part(layer), 1, tuple(layer.shape)).bound
                neurons = _Neurons(layer.neuron, _Bias(given, tuple(layer.shape), layer.neuron.bias_exp), input_bound)
            self.units.append(_Unit(k, i, layer, op, neurons))
            self.in_shapes.append(in_shape)
            in_shape = tuple(layer.shape)

    def go(self, steps: int) -> None:
        rec, batch = self.rec, self.batch
        if self._native(steps):
            return
        allocate_records(rec, self.net, self.record)
        chunk = max(1, CHUNK_BYTES // max(1, self._bytes_per_sample(steps)))
        workers = min(_cores(), batch // self.MIN_PARALLEL_ROWS)
        if workers > 1:
            chunk = min(chunk, -(-batch // workers))
        parts = [slice(start, min(batch, start + chunk)) for start in range(0, batch, chunk)]
        if workers > 1 and len(parts) > 1:
            with ThreadPoolExecutor(workers) as pool:
                counted = list(pool.map(lambda rows: self._chunk(rows, steps, spread=False), parts))
        else:
            counted = [self._chunk(rows, steps, spread=True) for rows in parts]
        for counts in counted:
            for unit, values in zip(self.units, counts):
                for counter, value in zip(STEPPED, values):
                    getattr(rec, counter)[unit.index] += value

    def _native(self, steps: int) -> bool:
        """Run on the compiled kernel (:mod:`neurodeploy.sim_native`) where it takes this run; whether it did.

        It takes CUBA layers without recurrence or delays, one group a convolution, binary input
        spikes (or none), and records spikes or nothing. A (C, H, W) layer's spikes are then held
        channels-last and recorded as a view in the netlist's order.
        """
        lib = sim_native.library()
        if lib is None or steps < 1 or not set(self.record) <= {"s"} or not self._native_input_ok():
            return False
        held: list[np.ndarray] = []  # what the kernel's pointers point into, alive through the run
        layers = []
        for unit, in_shape in zip(self.units, self.in_shapes):
            layer = _native_layer(unit, in_shape, self._resets(unit.k), steps, held, sim_native.tiles(lib))
            if layer is None:
                return False
            layers.append(layer)
        allocate_records(self.rec, self.net, ())  # the counters; the spikes are recorded below
        for unit, layer in zip(self.units, layers):
            if "s" in self.record:
                storage = np.empty((self.batch, steps, unit.n), bool)
                layer.spikes = storage.ctypes.data
                self.rec.s[unit.index] = _to_netlist(storage, unit.shape)
        spikes = None
        if self.spikes is not None:
            given = self.spikes[:, :steps]
            spikes = np.ascontiguousarray(_to_internal(given, tuple(given.shape[2:])), np.uint8)
        spike_v = fx.LOIHI2_SPIKE_V if self.conventions == "loihi2" else 0
        out_counts, out_v, counted = sim_native.run(lib, layers, self.batch, steps, spike_v, _cores(), spikes)
        for unit, values in zip(self.units, counted):
            for counter, value in zip(STEPPED, values):
                getattr(self.rec, counter)[unit.index] += value
        rec, last = self.rec, self.units[-1]
        rec.output_counts[...] = _to_netlist(out_counts, last.shape).reshape(rec.output_counts.shape)
        rec.output_v[...] = _to_netlist(out_v, last.shape).reshape(rec.output_v.shape)
        return True

    def _native_input_ok(self) -> bool:
        """Whether the kernel takes the run's input spikes: none, or 0 and 1 into a synaptic layer."""
        if self.spikes is None:
            return True
        given = self.spikes
        binary = given.dtype == bool or (
            given.dtype.kind in "iu" and given.min(initial=0) >= 0 and given.max(initial=0) <= 1
        )
        return self.units[0].op is not None and binary

    def _bytes_per_sample(self, steps: int) -> int:
        """About the bytes a sample holds at once: spikes, records and (with delays) a layer's input.

        Convolution patches and blocks of input are bounded on their own (COLS_BLOCK_BYTES, BLOCK_BYTES).
        """
        widest = max(max(u.n for u in self.units), int(np.prod(self.net.input_shape or (1,))))
        return steps * widest * SAMPLE_BYTES_PER_VALUE

    def _chunk(self, rows: slice, steps: int, spread: bool) -> list[tuple[int, int, int, int]]:
        """Run samples ``rows``, writing their records; returns each unit's counters
        (synaptic events, u wraps, v saturations, spikes)."""
        rec, counts = self.rec, []
        size = rows.stop - rows.start
        pre = None
        if self.spikes is not None:
            shape = tuple(self.spikes.shape[2:])
            pre = _to_internal(np.moveaxis(self.spikes[rows, :steps], 1, 0), shape)
        for unit, in_shape in zip(self.units, self.in_shapes):
            if unit.graded:
                unit = unit.with_graded_input(pre, in_shape)
            a = unit.synaptic_input(pre, spread)
            events = 0
            if unit.op is not None and pre is not None:
                sent = pre != 0 if unit.graded else pre  # a graded message is one event a synapse
                events = unit.op.events(_column_sums(sent))
            s = np.empty((steps, size, unit.n), np.int32 if unit.graded else bool)
            a = unit.with_recurrence(a, s, spread)
            last = unit is self.units[-1] and not unit.graded  # a CUBA output layer's v feeds output_v
            u, v = (
                np.empty((steps, size, unit.n), np.int32) if name in self.record or (last and name == "v") else None
                for name in unit.traces
            )
            neurons = unit.neurons
            if neurons.per_sample:
                neurons = neurons.for_rows(rows)
            wraps, saturations = neurons.run(a, self._resets(unit.k), s, u, v)
            if unit.rec_op is not None and steps > 1:
                events += unit.rec_op.events(_column_sums(s[:-1] != 0))
            if v is not None and self.conventions == "loihi2" and not unit.graded:
                v[s] = fx.LOIHI2_SPIKE_V
            for name, held in zip(("s",) + unit.traces, (s, u, v)):
                if name in self.record and held is not None:
                    getattr(rec, name)[unit.index][rows] = _to_netlist(held, unit.shape).swapaxes(0, 1)
            counts.append((events, wraps, saturations, int(np.count_nonzero(s))))
            pre = s
        total, out_v = s.sum(axis=0, dtype=np.int64), v  # the last unit's spikes and v
        rec.output_counts[rows] = _to_netlist(total, self.units[-1].shape).reshape(rec.output_counts[rows].shape)
        if not self.units[-1].graded and out_v is not None:
            rec.output_v[rows] = _to_netlist(out_v[-1:], self.units[-1].shape)[0].reshape(rec.output_v[rows].shape)
        return counts

    def _resets(self, k: int):
        interval, phase = self.reset_interval, k + self.net.reset_offset
        if not interval:
            return lambda t: False
        return functools.partial(fx.resets, interval=interval, phase=phase, conventions=self.conventions)


def _native_layer(unit: _Unit, in_shape, resets, steps: int, held: list, tiled: bool) -> sim_native.Layer | None:
    """``unit`` as the compiled kernel takes it (convolutions in tiles where ``tiled``), or None where it
    cannot; the arrays it points into are appended to ``held``."""
    op, neuron = unit.op, unit.layer.neuron
    if unit.graded or unit.rec_op is not None:
        return None
    layer = sim_native.Layer(
        n=unit.n,
        exact32=bool(unit.neurons.dtype == np.float32),
        keep_u=fx.DECAY_UNITY - (neuron.du + 1),
        keep_v=fx.DECAY_UNITY - neuron.dv,
        threshold=neuron.vth << fx.ACT_SHIFT,
    )
    arrays = {"resets": np.array([resets(t) for t in range(steps)], np.uint8)}
    source = unit.neurons.source
    if unit.neurons.bias_bound and source.per_sample:  # made a sample at a time (fixed_point.effective_bias)
        arrays["bias_mant"] = np.ascontiguousarray(source.rows, np.int64)
        layer.bias_exp, layer.bias_channels = source.exp, source.shape[0] if len(source.shape) == 3 else 1
    elif unit.neurons.bias_bound:
        arrays["bias"] = source.held
    if op is not None:
        synapses = _native_synapses(op, in_shape, layer, tiled)
        if synapses is None or unit.n >= sim_native.SUM_LIMIT:
            return None
        arrays.update(synapses)
    layer.point(arrays)
    held.extend(arrays.values())
    return layer


def _native_synapses(op, in_shape, layer: sim_native.Layer, tiled: bool) -> dict[str, np.ndarray] | None:
    """The synapses of ``op`` as the kernel holds them, their sizes set on ``layer``; None where the
    kernel cannot take them (delays, groups, sums past int32, exponents out of its range)."""
    low, high = sim_native.EXP_RANGE
    if isinstance(op, _DenseOp) and op.delays == (0,):
        weight = np.ascontiguousarray(op.by_delay[0], np.int32)  # (n_in, n)
        padded = np.concatenate([weight.reshape(-1), np.zeros(2 * sim_native.LANES, np.int32)])  # see sim_native.c
        arrays = {"weight": padded, "ones": weight.sum(axis=0, dtype=np.int64).astype(np.int32)}
        arrays["fan_out"] = op.fan_out.astype(np.int32)
        layer.kind, layer.row = sim_native.KINDS["dense"], weight.shape[1]
        reach = np.abs(weight).sum(axis=0, dtype=np.int64)
    elif isinstance(op, _ConvOp) and op.layer.groups == 1:
        arrays, reach = _native_conv(op, layer, tiled)
    else:
        return None
    if (
        reach.max(initial=0) >= sim_native.SUM_LIMIT
        or math.prod(in_shape) >= sim_native.SUM_LIMIT
        or not low <= op.exp <= high
    ):
        return None
    layer.n_in, layer.exp = math.prod(in_shape), op.exp
    return arrays


def _native_conv(op: _ConvOp, layer: sim_native.Layer, tiled: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A one-group convolution's synapses as the kernel holds them, their sizes set on ``layer``, and
    each output channel's sum of |w| over its inputs: in tiles where ``tiled`` and the weights fit
    bytes, else as rows of weights an input reaches (see sim_native.c)."""
    conv = op.layer
    weight = np.ascontiguousarray(conv.weight.transpose(2, 3, 1, 0), np.int32)  # (kH, kW, C_in, C_out)
    kernel, (ci, co) = weight.shape[:2], weight.shape[2:]
    shapes = (conv.in_shape, conv.shape, kernel, conv.stride, conv.padding, conv.dilation)
    where = sim_native.conv_geometry(*shapes)
    per_tap = weight.reshape(-1, ci, co)
    reach = np.abs(per_tap).sum(axis=(0, 1), dtype=np.int64)
    arrays = {"fan_out": (where.uses @ np.count_nonzero(per_tap, axis=2)).reshape(-1).astype(np.int32)}
    layer.kind, layer.row, layer.wrap24, layer.channels_in = sim_native.KINDS["conv"], co, op.wraps, ci
    layer.kernel_taps = per_tap.shape[0]
    low, high = sim_native.TILE_RANGE
    in_bytes = low <= per_tap.min(initial=0) and per_tap.max(initial=0) < high
    if tiled and in_bytes and sim_native.fits_tiles(conv.in_shape, kernel, conv.padding):
        tiles, sizes = sim_native.image_tiles(per_tap, *shapes)
        for name, size in sizes.items():
            setattr(layer, name, size)
        arrays.update(tiles)
        return arrays, reach
    narrow = int(reach.max(initial=0)) < sim_native.NARROW_LIMIT
    stride = -(-co // sim_native.NARROW_LANES) * sim_native.NARROW_LANES if narrow else co  # see sim_native.c
    rows = np.zeros((per_tap.shape[0], ci + 1, stride), np.int16 if narrow else np.int32)  # a zero row a tap
    rows[:, :ci, :co] = per_tap
    arrays.update(
        weight=np.concatenate([rows.reshape(-1), np.zeros(2 * sim_native.LANES, rows.dtype)]),
        ones=(where.covers @ per_tap.sum(axis=1, dtype=np.int64)).reshape(-1).astype(rows.dtype),
        tap_start=where.tap_start,
        taps=(where.taps // [co, ci * co] * [stride, (ci + 1) * stride]).astype(np.int32),  # in the padded rows
    )
    layer.narrow, layer.stride = narrow, stride
    if narrow and ci <= sim_native.FEW_CHANNELS:
        arrays.update(sim_native.few_channel_sums(per_tap, stride, where.gather))
    return arrays, reach


def _column_sums(sent: np.ndarray) -> np.ndarray:
    """The sum over steps and rows of each neuron's values in ``sent`` (steps, rows, n), as float64.

    Spikes (bool) are counted as bytes summed in uint16, 2**16 - 1 rows at a time (so that no
    count overflows): several times faster than a sum in float64 or int64.
    """
    flat = sent.reshape(-1, sent.shape[-1])
    if flat.dtype != bool:
        return flat.sum(axis=0, dtype=np.float64)
    total = np.zeros(flat.shape[1], np.float64)
    for lo in range(0, len(flat), COUNT_ROWS):
        total += np.add.reduce(flat[lo : lo + COUNT_ROWS].view(np.uint8), axis=0, dtype=np.uint16)
    return total


def _held(rows: np.ndarray, shape) -> np.ndarray:
    """Rows (rows, n) of values a neuron in the netlist's order, in the held order."""
    return _to_internal(rows.reshape((rows.shape[0],) + tuple(shape)), tuple(shape))


@dataclass
class _Bias:
    """A CUBA layer's bias mantissas (rows, n) in the netlist's order (None: none), its layer's
    shape and its exponent; the effective bias is made when first asked for (the compiled kernel
    makes its own, a sample at a time)."""

    rows: np.ndarray | None
    shape: tuple[int, ...]
    exp: int

    @property
    def per_sample(self) -> bool:
        return self.rows is not None and self.rows.shape[0] > 1

    @functools.cached_property
    def bound(self) -> int:
        """A bound on the effective bias's magnitude (2**31 where it may wrap); 0 only where all zero."""
        if self.rows is None or not self.rows.size:
            return 0
        bound = fx.effective_bias_bound(int(self.rows.min()), int(self.rows.max()), self.exp)
        return 2**31 if bound is None else bound

    @functools.cached_property
    def held(self) -> np.ndarray:
        """The effective bias (rows, n) in the held order, int32."""
        if self.rows is None:
            return np.zeros((1, 1), np.int32)
        return _held(fx.effective_bias(self.rows, self.exp, np.int32), self.shape)

    def part(self, rows: slice) -> _Bias:
        """The bias of some rows (all of it where it is the same for every sample)."""
        if not self.per_sample:
            return self
        return _Bias(cast(np.ndarray, self.rows)[rows], self.shape, self.exp)


def bias_rows(bias: np.ndarray, shape: tuple[int, ...], batch: int) -> np.ndarray:
    """Broadcast a bias given per channel, per neuron, or per sample and neuron to (batch, n)."""
    n = int(np.prod(shape))
    if bias.ndim == len(shape) + 1 and bias.shape[1:] == tuple(shape):
        return bias.reshape(bias.shape[0], n)
    if bias.shape == tuple(shape):
        return bias.reshape(1, n)
    if len(shape) == 3 and bias.shape == (shape[0],):
        return bias_per_neuron(bias, shape).reshape(1, n)
    raise SimulationError(f"bias of shape {bias.shape} does not fit a layer of shape {shape} (batch {batch})")

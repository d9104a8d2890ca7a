"""Bit-accurate, batched simulator of an integer netlist on Loihi's fixed-point cores.

Each step, every neuron layer takes the synaptic input computed from the previous
layer's spikes one step earlier (so each dense or conv connection adds one step
of latency), updates u and v by the rules of :mod:`neurodeploy.fixed_point`,
spikes and resets. The netlist is feed-forward, so the run goes layer by layer:
one matrix product gives a layer's input at every step, then its neurons step.
Everything is exact: integer products are summed in float32 only where every
possible sum is below 2**24, in float64 below 2**53, and in int64 otherwise; u, v
and the input are held in float64 only where every value stays an integer below
2**52 (see :class:`_Neurons`), else in int64. Events are counted for the energy
model: a synaptic event is one spike delivered over one nonzero synapse; a neuron
update is one neuron stepped.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from neurodeploy import fixed_point as fx
from neurodeploy.netlist import Conv, Dense, Input, Netlist

RECORDABLE = ("s", "u", "v")
FLOAT_EXACT = 2**53  # float64 holds every integer below this exactly
INT32 = 2**31
CHUNK_BYTES = 2**27  # samples run together while a layer's input and spikes fit in about this
# BLAS threads for the matrix products. Ours are many and mostly mid-sized, where a
# thread pool sharing busy cores costs more than it gives: a (14, 2560) @ (2560, 100)
# product took 60 ms with two OpenBLAS threads on a loaded 2-core machine, 0.2 ms with one.
# Products of at least BIG_PRODUCT multiply-adds use every core.
BLAS_THREADS = 1
BIG_PRODUCT = 1 << 26


@dataclass
class Recording:
    """What a run produced, per layer index of the netlist (flatten layers absent).

    ``s``, ``u`` and ``v`` hold arrays shaped (batch, steps, *layer shape) for the
    variables asked for; the counters are totals over the batch and all steps.
    """

    steps: int
    batch: int
    s: dict[int, np.ndarray] = field(default_factory=dict)
    u: dict[int, np.ndarray] = field(default_factory=dict)
    v: dict[int, np.ndarray] = field(default_factory=dict)
    spike_count: dict[int, int] = field(default_factory=dict)
    synaptic_events: dict[int, int] = field(default_factory=dict)
    neuron_updates: dict[int, int] = field(default_factory=dict)
    u_wraps: dict[int, int] = field(default_factory=dict)
    v_saturations: dict[int, int] = field(default_factory=dict)
    output_counts: np.ndarray | None = None  # (batch, *output shape) spikes of the last layer

    def predictions(self) -> np.ndarray:
        """Class per sample: argmax of the last layer's spike counts (lowest index on ties)."""
        counts = self.output_counts.reshape(self.batch, -1)
        return counts.argmax(axis=1)


def _sum_dtype(weight: np.ndarray, fan_in: int, graded_max: int = 1) -> type:
    bound = int(np.abs(weight).max(initial=0)) * fan_in * graded_max
    if bound < 2**24:
        return np.float32
    return np.float64 if bound < 2**53 else np.int64


class _DenseOp:
    """Dense synapses of one layer, possibly with per-synapse delays."""

    def __init__(self, layer: Dense, graded_max: int):
        weight = fx.dense_weights(layer.weight, layer.weight_bits)
        self.exp = int(layer.weight_exp)
        self.dtype = _sum_dtype(weight, weight.shape[1], graded_max)
        if layer.delay is None or not layer.delay.any():
            self.by_delay = {0: np.ascontiguousarray(weight.T, dtype=self.dtype)}
        else:
            self.by_delay = {
                int(d): np.where(layer.delay == d, weight, 0).T.astype(self.dtype) for d in np.unique(layer.delay)
            }
        self.fan_out = (weight != 0).sum(axis=0).astype(np.float64)  # nonzero synapses leaving each input
        row_sum = int(np.abs(weight).sum(axis=1).max(initial=0)) * graded_max
        self.bound = _shifted_bound(row_sum, self.exp) + len(self.by_delay)  # a floor adds at most 1 a delay

    def events(self, counts: np.ndarray) -> int:
        """Synaptic events from the summed presynaptic values of each input neuron."""
        return int(np.rint(counts @ self.fan_out))

    def __call__(self, x: np.ndarray, exact_float: bool) -> dict[int, np.ndarray]:
        """Presynaptic values (rows, n_in) -> synaptic input (rows, n_out) per delay.

        float64 already shifted left by 6 (as it enters u) if ``exact_float``, else int64.
        """
        x = x.astype(self.dtype, copy=False)
        then = fx.ACT_SHIFT if exact_float else 0
        return {d: _scaled(_matmul(x, w), self.exp, exact_float, then) for d, w in self.by_delay.items()}


class _ConvOp:
    """Convolution synapses (cross-correlation), output wrapped to 24 bits."""

    def __init__(self, layer: Conv, graded_max: int):
        self.layer = layer
        kh, kw = layer.weight.shape[2:]
        self.dtype = _sum_dtype(layer.weight, layer.weight.shape[1] * kh * kw, graded_max)
        self.weight = layer.weight.astype(self.dtype)
        self.exp = int(layer.weight_exp)
        self.mask = (layer.weight != 0).astype(np.float64)
        fan_sum = int(np.abs(layer.weight).reshape(layer.weight.shape[0], -1).sum(axis=1).max(initial=0))
        self.raw_bound = _shifted_bound(fan_sum * graded_max, self.exp)
        self.bound = min(self.raw_bound, fx.MAX_UV)  # after the 24-bit wrap

    def events(self, counts: np.ndarray) -> int:
        """Synaptic events from the summed presynaptic values of each input neuron.

        Each input reaches as many outputs as the nonzero taps whose window covers
        it, so the count is the sum of the input map convolved with the nonzero mask
        (exact in float64: integers far below 2**53).
        """
        layer = self.layer
        image = counts.reshape((1,) + layer.in_shape)
        reached = _conv2d_channels_last(image, self.mask, layer.stride, layer.padding, layer.dilation, layer.groups)
        return int(np.rint(reached.sum()))

    def __call__(self, x: np.ndarray, exact_float: bool) -> dict[int, np.ndarray]:
        """Presynaptic values (rows, n_in) -> synaptic input (rows, C, H, W), as :class:`_DenseOp`."""
        rows, layer = x.shape[0], self.layer
        x = x.reshape((rows,) + layer.in_shape).astype(self.dtype, copy=False)
        out = _conv2d_channels_last(x, self.weight, layer.stride, layer.padding, layer.dilation, layer.groups)
        wraps = self.raw_bound >= fx.MAX_UV  # below, no sum can leave the 24 bits
        if exact_float and self.raw_bound < FLOAT_EXACT:
            out = _scaled(out, self.exp, True, 0 if wraps else fx.ACT_SHIFT)
            if wraps:
                out -= np.floor((out + fx.MAX_UV) * 2.0**-24) * 2.0**24  # two's-complement wrap to 24 bits
                out *= 2.0**fx.ACT_SHIFT
        else:
            out = fx.wrap_bits(_scaled(out, self.exp, False), 24)
            out = (out << fx.ACT_SHIFT).astype(np.float64) if exact_float else out
        return {0: out.transpose(0, 3, 1, 2)}


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b``, on every core when the product is large enough to gain from it."""
    if a.shape[0] * a.shape[1] * b.shape[1] < BIG_PRODUCT:
        return a @ b
    with threadpool_limits(os.cpu_count() or 1, user_api="blas"):
        return a @ b


def _shifted_bound(bound: int, exp: int) -> int:
    """A bound on |x << exp| (or on the floor of ``x >> -exp``) given |x| <= bound."""
    return bound << exp if exp >= 0 else (bound >> -exp) + 1


def _scaled(y: np.ndarray, exp: int, exact_float: bool, then: int = 0) -> np.ndarray:
    """An exact integer sum shifted by ``exp`` (a floor when negative), then left by ``then``.

    float64 when ``exact_float`` (scaling by a power of two is exact in binary
    floating point, and so is the floor), int64 otherwise.
    """
    if not exact_float or y.dtype.kind != "f":  # int64 sums may exceed 2**53: shift them as integers
        shifted = fx.shift(np.rint(y).astype(np.int64) if y.dtype.kind == "f" else y, exp)
        return fx.shift(shifted, then) if not exact_float else shifted.astype(np.float64) * 2.0**then
    if exp >= 0:
        return np.multiply(y, 2.0 ** (exp + then), dtype=np.float64)
    y = np.multiply(y, 2.0**exp, dtype=np.float64)
    np.floor(y, out=y)
    if then:
        y *= 2.0**then
    return y


def conv2d(x: np.ndarray, w: np.ndarray, stride, padding, dilation, groups: int) -> np.ndarray:
    """Batched 2-D cross-correlation: x (B, C, H, W), w (O, C/groups, kH, kW) -> (B, O, Ho, Wo)."""
    return _conv2d_channels_last(x, w, stride, padding, dilation, groups).transpose(0, 3, 1, 2)


def _conv2d_channels_last(x: np.ndarray, w: np.ndarray, stride, padding, dilation, groups: int) -> np.ndarray:
    """:func:`conv2d` with the output left contiguous in (B, Ho, Wo, O) order.

    The patches are gathered from a channels-last copy of x, so that the copy's
    innermost runs are whole channel vectors rather than kernel rows.
    """
    o, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    if ph or pw:
        x = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    b, h, wd, c = x.shape
    ho = (h - dh * (kh - 1) - 1) // sh + 1
    wo = (wd - dw * (kw - 1) - 1) // sw + 1
    st = x.strides
    cols = np.lib.stride_tricks.as_strided(
        x, (b, ho, wo, kh, kw, c), (st[0], st[1] * sh, st[2] * sw, st[1] * dh, st[2] * dw, st[3]), writeable=False
    )
    og = o // groups
    outs = []
    for g in range(groups):
        patch = cols[..., g * cg:(g + 1) * cg].reshape(b * ho * wo, kh * kw * cg)
        outs.append(_matmul(patch, w[g * og:(g + 1) * og].transpose(0, 2, 3, 1).reshape(og, -1).T))
    out = np.concatenate(outs, axis=1) if groups > 1 else outs[0]
    return out.reshape(b, ho, wo, o)


def _synapse(layer, graded_max: int):
    return _DenseOp(layer, graded_max) if isinstance(layer, Dense) else _ConvOp(layer, graded_max)


def _batch_size(spikes: np.ndarray | None, bias: np.ndarray | None, net: Netlist) -> int:
    if spikes is not None:
        return int(spikes.shape[0])
    if bias is not None and isinstance(net.layers[0], Input) and bias.ndim > len(net.layers[0].shape):
        return int(bias.shape[0])
    return 1


def simulate(
    net: Netlist,
    steps: int,
    spikes: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    record: tuple[str, ...] = ("s",),
    reset_interval: int | None = -1,
) -> Recording:
    """Run ``net`` for ``steps`` steps on a batch and record what was asked.

    ``spikes`` (batch, steps, *input shape) feed the first synaptic layer, or,
    when layer 0 is an :class:`Input`, are added to its neurons' input directly
    (integers allowed there). ``bias`` replaces the input layer's bias mantissas,
    shaped like the layer or with a leading batch axis. ``reset_interval`` -1
    takes the netlist's own; ``None`` never resets.
    """
    bad = set(record) - set(RECORDABLE)
    if bad:
        raise ValueError(f"cannot record {sorted(bad)}; choose from {RECORDABLE}")
    if reset_interval == -1:
        reset_interval = net.reset_interval
    batch = _batch_size(spikes, bias, net)
    first = net.layers[0]
    expected = first.shape if isinstance(first, Input) else net.input_shape
    if spikes is not None and tuple(spikes.shape[2:]) != tuple(expected):
        raise ValueError(f"input spikes have shape {spikes.shape[2:]} per step, the netlist takes {expected}")
    if spikes is not None and spikes.shape[1] < steps:
        raise ValueError(f"input spikes cover {spikes.shape[1]} steps, {steps} were asked for")
    graded_max = int(np.abs(spikes).max(initial=1)) if spikes is not None and spikes.dtype != bool else 1
    rec = Recording(steps=steps, batch=batch)
    with threadpool_limits(BLAS_THREADS, user_api="blas"):
        _Run(net, batch, record, reset_interval, rec, graded_max, spikes, bias).go(steps)
    return rec


class _Neurons:
    """The CUBA update of one neuron layer, step by step over a batch.

    With ``exact_float`` (every synaptic input below 2**44 in magnitude), u, v and
    the input are held as float64: all of them are integers below 2**52, products
    with a decay factor k / 4096 are exact (at most 44 significant bits), and
    ``trunc``, ``floor`` and scaling by powers of two are exact, so each step equals
    the int64 rules of :mod:`neurodeploy.fixed_point`. Scalar bounds on |u| and |v|
    skip the wraps and the clip where they cannot happen: with input below 2**24
    (after the 6-bit shift) |u| never exceeds 2**23, so neither u's int32 wrap nor a
    second 24-bit wrap can occur. Otherwise the int64 rules run as written.
    """

    FLOAT_INPUT_LIMIT = 2**44  # synaptic input bound below which the float64 path is exact

    def __init__(self, neuron, bias: np.ndarray, input_bound: int):
        self.neuron = neuron
        self.cu = (fx.DECAY_UNITY - (neuron.du + 1)) / fx.DECAY_UNITY
        self.cv = (fx.DECAY_UNITY - neuron.dv) / fx.DECAY_UNITY
        self.threshold = neuron.vth << fx.ACT_SHIFT
        self.a_bound = input_bound << fx.ACT_SHIFT
        self.exact_float = input_bound < self.FLOAT_INPUT_LIMIT
        self.bias_bound = int(np.abs(bias).max(initial=0))
        self.bias = bias if self.bias_bound else None
        self.u_may_wrap32 = self.a_bound >= 2**24
        self.v_may_wrap32 = self.u_may_wrap32 or self.bias_bound + 2**24 >= INT32
        if self.exact_float and self.bias is not None:
            self.bias = self.bias.astype(np.float64)

    def run(self, a_in: np.ndarray | None, resets, s: np.ndarray, u_out, v_out) -> tuple[int, int]:
        """Step through a_in (steps, rows, n) (None: no input), writing spikes into s (rows, steps, n).

        ``resets(t)`` says whether u and v are zeroed before step t; ``u_out`` and
        ``v_out`` (rows, steps, n) take the traces when not None. Returns the
        counts of u wraps and v saturations.
        """
        rows, steps, n = s.shape
        step = self._float_step if self.exact_float else self._int_step
        dtype = np.float64 if self.exact_float else np.int64
        u, v = np.zeros((rows, n), dtype), np.zeros((rows, n), dtype)
        bounds = [0.0, 0.0]  # bounds on |u| and |v|
        wraps = saturations = 0
        for t in range(steps):
            if resets(t):
                u.fill(0)
                v.fill(0)
                bounds = [0.0, 0.0]
            w, sat = step(u, v, None if a_in is None else a_in[t], s[:, t], bounds)
            wraps, saturations = wraps + w, saturations + sat
            if u_out is not None:
                u_out[:, t] = u
            if v_out is not None:
                v_out[:, t] = v
        return wraps, saturations

    def _float_step(self, u, v, a, s, bounds) -> tuple[int, int]:
        wraps = saturations = 0
        u_bound = bounds[0] * self.cu
        if a is not None and self.cu == 0.0:
            np.copyto(u, a)
        else:
            _decay(u, self.cu)
            if a is not None:
                u += a
        if a is not None:
            u_bound += self.a_bound
        if self.u_may_wrap32:
            _wrap32(u)
            wraps, u_bound = _wrap24(u), INT32
        elif u_bound >= fx.MAX_UV:  # look: the bound allows a wrap, the values may not
            top, bottom = u.max(), u.min()
            if top > fx.MAX_UV or bottom <= -fx.MAX_UV:
                wraps, u_bound = _wrap24(u), fx.MAX_UV
            else:
                u_bound = max(top, -bottom)
        _decay(v, self.cv)
        v += u
        if self.bias is not None:
            v += self.bias
        v_bound = bounds[1] * self.cv + u_bound + self.bias_bound
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
            np.copyto(v, 0.0, where=s)
        bounds[0], bounds[1] = u_bound, v_bound
        return int(wraps), int(saturations)

    def _int_step(self, u, v, a, s, bounds) -> tuple[int, int]:
        n = self.neuron
        new_u, wrapped = fx.update_current(u, np.zeros_like(u) if a is None else a, n.du)
        bias = np.zeros_like(u) if self.bias is None else self.bias
        new_v, saturated = fx.update_voltage(v, new_u, bias, n.dv)
        np.greater(new_v, self.threshold, out=s)
        u[...] = new_u
        v[...] = np.where(s, 0, new_v)
        return int(wrapped.sum()), int(saturated.sum())


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
    """One neuron layer: its synapses (None for an input layer) and neurons."""

    def __init__(self, k: int, index: int, layer, op, neurons: _Neurons):
        self.k, self.index, self.layer, self.op, self.neurons = k, index, layer, op, neurons
        self.n = int(np.prod(layer.shape))

    def synaptic_input(self, pre: np.ndarray | None, steps: int) -> np.ndarray | None:
        """(steps, rows, n) input arriving at each step, times 2**6 in the float path; None if nothing arrives."""
        if pre is None:
            return None
        exact = self.neurons.exact_float
        rows = pre.shape[0]
        if self.op is None:  # external input into an input layer, same step
            a = pre.reshape(rows, steps, self.n).transpose(1, 0, 2)
            return a * 2.0**fx.ACT_SHIFT if exact else a.astype(np.int64)
        a = np.zeros((steps, rows, self.n), np.float64 if exact else np.int64)
        if steps > 1:
            flat = pre[:, : steps - 1].transpose(1, 0, *range(2, pre.ndim)).reshape((steps - 1) * rows, -1)
            currents = self.op(flat, exact)
            for d, current in currents.items():
                if d + 1 < steps:
                    shape = (steps - 1, rows) + current.shape[1:]  # a view, also of a transposed conv output
                    arrived = current.reshape(shape)[: steps - 1 - d]
                    target = a[d + 1:].reshape((steps - 1 - d, rows) + current.shape[1:])
                    if len(currents) == 1:
                        target[...] = arrived
                    else:
                        target += arrived
        return a


class _Run:
    """One simulation, layer after layer over all steps (the netlist is feed-forward).

    The batch is cut into chunks that keep each layer's input and spikes within
    about CHUNK_BYTES; samples are independent.
    """

    def __init__(self, net, batch, record, reset_interval, rec, graded_max, spikes, bias):
        self.net, self.batch, self.record, self.rec = net, batch, record, rec
        self.reset_interval, self.spikes = reset_interval, spikes
        self.units = []
        for k, i in enumerate(net.neuron_layers):
            layer = net.layers[i]
            op = None if isinstance(layer, Input) else _synapse(layer, graded_max if k == 0 else 1)
            n = int(np.prod(layer.shape))
            layer_bias = bias if (isinstance(layer, Input) and bias is not None) else layer.bias
            b = np.zeros((1, n), np.int64) if layer_bias is None else _bias_per_neuron(
                np.asarray(layer_bias, np.int64), layer.shape, batch
            )
            input_bound = graded_max if op is None else op.bound
            neurons = _Neurons(layer.neuron, fx.effective_bias(b, layer.neuron.bias_exp), input_bound)
            self.units.append(_Unit(k, i, layer, op, neurons))

    def go(self, steps: int) -> None:
        rec, batch = self.rec, self.batch
        for unit in self.units:
            shape = (batch, steps) + tuple(unit.layer.shape)
            for name in self.record:
                getattr(rec, name)[unit.index] = np.zeros(shape, bool if name == "s" else np.int32)
            for counter in ("spike_count", "synaptic_events", "u_wraps", "v_saturations"):
                getattr(rec, counter)[unit.index] = 0
            rec.neuron_updates[unit.index] = batch * steps * unit.n
        rec.output_counts = np.zeros((batch,) + tuple(self.net.output_shape), np.int64)
        chunk = max(1, CHUNK_BYTES // max(1, self._bytes_per_sample(steps)))
        for start in range(0, batch, chunk):
            self._chunk(slice(start, min(batch, start + chunk)), steps)

    def _bytes_per_sample(self, steps: int) -> int:
        widest = max(max(u.n for u in self.units), int(np.prod(self.net.input_shape or (1,))))
        cols = max((_im2col_size(u.op) for u in self.units if isinstance(u.op, _ConvOp)), default=0)
        return steps * (widest * 10 + cols * 4)

    def _chunk(self, rows: slice, steps: int) -> None:
        rec = self.rec
        pre = None if self.spikes is None else self.spikes[rows, :steps]
        size = rows.stop - rows.start
        for unit in self.units:
            a = unit.synaptic_input(pre, steps)
            if unit.op is not None and pre is not None:
                counts = pre.reshape(size * steps, -1).sum(axis=0, dtype=np.float64)
                rec.synaptic_events[unit.index] += unit.op.events(counts)
            s, u, v = (
                getattr(rec, name)[unit.index][rows].reshape(size, steps, unit.n) if name in self.record else None
                for name in ("s", "u", "v")
            )
            s = np.empty((size, steps, unit.n), bool) if s is None else s
            neurons = unit.neurons
            if neurons.bias is not None and neurons.bias.shape[0] > 1:
                neurons = _rows_of(neurons, rows)
            wraps, saturations = neurons.run(a, self._resets(unit.k), s, u, v)
            rec.u_wraps[unit.index] += wraps
            rec.v_saturations[unit.index] += saturations
            rec.spike_count[unit.index] += int(np.count_nonzero(s))
            pre = s
        rec.output_counts[rows] = pre.sum(axis=1).reshape(rec.output_counts[rows].shape)

    def _resets(self, k: int):
        interval, offset = self.reset_interval, self.net.reset_offset
        if not interval:
            return lambda t: False
        return lambda t: t % interval == (k + offset) % interval


def _rows_of(neurons: _Neurons, rows: slice) -> _Neurons:
    """The same neurons with the per-sample bias of some rows."""
    part = copy.copy(neurons)
    part.bias = neurons.bias[rows]
    return part


def _im2col_size(op: _ConvOp) -> int:
    kh, kw = op.layer.weight.shape[2:]
    return int(np.prod(op.layer.shape[1:])) * op.layer.weight.shape[1] * op.layer.groups * kh * kw


def _bias_per_neuron(bias: np.ndarray, shape: tuple[int, ...], batch: int) -> np.ndarray:
    """Broadcast a bias given per channel, per neuron, or per sample and neuron to (batch, n)."""
    n = int(np.prod(shape))
    if bias.ndim == len(shape) + 1 and bias.shape[1:] == tuple(shape):
        return bias.reshape(bias.shape[0], n)
    if bias.shape == tuple(shape):
        return bias.reshape(1, n)
    if len(shape) == 3 and bias.shape == (shape[0],):
        return np.repeat(bias, shape[1] * shape[2]).reshape(1, n)
    raise ValueError(f"bias of shape {bias.shape} does not fit a layer of shape {shape} (batch {batch})")

"""Bit-accurate, batched simulator of an integer netlist on Loihi's fixed-point cores.

Each step, every neuron layer takes the synaptic input computed from the previous
layer's spikes one step earlier (so each dense or conv connection adds one step
of latency), updates u and v with :mod:`neurodeploy.fixed_point`, spikes and
resets. Synaptic sums are exact: integer products are summed in float32 only
where every possible sum is below 2**24, in float64 below 2**53, and in int64
otherwise. Events are counted for the energy model: a synaptic event is one
spike delivered over one nonzero synapse; a neuron update is one neuron stepped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neurodeploy import fixed_point as fx
from neurodeploy.netlist import Conv, Dense, Flatten, Input, Netlist

RECORDABLE = ("s", "u", "v")


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
        delay = np.zeros_like(weight) if layer.delay is None else layer.delay
        self.exp = int(layer.weight_exp)
        self.dtype = _sum_dtype(weight, weight.shape[1], graded_max)
        self.by_delay = {
            int(d): np.where(delay == d, weight, 0).T.astype(self.dtype) for d in np.unique(delay)
        }
        self.depth = max(self.by_delay) + 1
        self.fan_out = (weight != 0).sum(axis=0).astype(np.float64)

    def __call__(self, s: np.ndarray) -> dict[int, np.ndarray]:
        x = s.astype(self.dtype)
        return {d: fx.shift(np.rint(x @ w).astype(np.int64), self.exp) for d, w in self.by_delay.items()}


class _ConvOp:
    """Convolution synapses (cross-correlation), output wrapped to 24 bits."""

    def __init__(self, layer: Conv, graded_max: int):
        self.layer = layer
        kh, kw = layer.weight.shape[2:]
        self.dtype = _sum_dtype(layer.weight, layer.weight.shape[1] * kh * kw, graded_max)
        self.weight = layer.weight.astype(self.dtype)
        self.exp = int(layer.weight_exp)
        self.depth = 1
        mask = (layer.weight != 0).astype(np.float64)
        self.fan_out = _conv_transpose_ones(mask, layer).reshape(-1)

    def __call__(self, s: np.ndarray) -> dict[int, np.ndarray]:
        x = s.reshape((s.shape[0],) + self.layer.in_shape).astype(self.dtype)
        out = conv2d(x, self.weight, self.layer.stride, self.layer.padding, self.layer.dilation, self.layer.groups)
        out = fx.wrap_bits(fx.shift(np.rint(out).astype(np.int64), self.exp), 24)
        return {0: out.reshape(s.shape[0], -1)}


def conv2d(x: np.ndarray, w: np.ndarray, stride, padding, dilation, groups: int) -> np.ndarray:
    """Batched 2-D cross-correlation: x (B, C, H, W), w (O, C/groups, kH, kW) -> (B, O, Ho, Wo)."""
    b, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    ho = (x.shape[2] - dh * (kh - 1) - 1) // sh + 1
    wo = (x.shape[3] - dw * (kw - 1) - 1) // sw + 1
    st = x.strides
    cols = np.lib.stride_tricks.as_strided(
        x, (b, ho, wo, c, kh, kw), (st[0], st[2] * sh, st[3] * sw, st[1], st[2] * dh, st[3] * dw), writeable=False
    )
    og = o // groups
    outs = []
    for g in range(groups):
        patch = cols[:, :, :, g * cg:(g + 1) * cg].reshape(b * ho * wo, cg * kh * kw)
        outs.append(patch @ w[g * og:(g + 1) * og].reshape(og, -1).T)
    out = np.concatenate(outs, axis=1) if groups > 1 else outs[0]
    return out.reshape(b, ho, wo, o).transpose(0, 3, 1, 2)


def _conv_transpose_ones(mask: np.ndarray, layer: Conv) -> np.ndarray:
    """Fan-out of every input neuron: how many nonzero synapses leave it."""
    c, h, w = layer.in_shape
    counts = np.zeros((c, h, w))
    (sh, sw), (ph, pw), (dh, dw) = layer.stride, layer.padding, layer.dilation
    ho, wo = layer.shape[1:]
    og, cg = mask.shape[0] // layer.groups, mask.shape[1]
    for g in range(layer.groups):
        taps = mask[g * og:(g + 1) * og].sum(axis=0)  # (cg, kh, kw): outputs reached through each tap
        for i in range(mask.shape[2]):
            for j in range(mask.shape[3]):
                rows = np.arange(ho) * sh + i * dh - ph
                cols = np.arange(wo) * sw + j * dw - pw
                rows, cols = rows[(rows >= 0) & (rows < h)], cols[(cols >= 0) & (cols < w)]
                counts[g * cg:(g + 1) * cg, rows[:, None], cols[None, :]] += taps[:, i, j][:, None, None]
    return counts


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
    _Run(net, batch, record, reset_interval, rec, graded_max, spikes, bias).go(steps)
    return rec


class _Run:
    """State of one simulation: per neuron layer u, v, bias and pending input."""

    def __init__(self, net, batch, record, reset_interval, rec, graded_max, spikes, bias):
        self.net, self.batch, self.record, self.rec = net, batch, record, rec
        self.reset_interval, self.spikes = reset_interval, spikes
        self.units = []  # (layer index, layer, synapse op or None, order among neuron layers)
        for i in net.neuron_layers:
            layer = net.layers[i]
            op = None if isinstance(layer, Input) else _synapse(layer, graded_max if not self.units else 1)
            self.units.append((i, layer, op))
        self.state = []
        for k, (i, layer, op) in enumerate(self.units):
            n = int(np.prod(layer.shape))
            layer_bias = bias if (isinstance(layer, Input) and bias is not None) else layer.bias
            b = np.zeros(n, np.int64) if layer_bias is None else np.broadcast_to(
                _bias_per_neuron(np.asarray(layer_bias, np.int64), layer.shape, batch), (batch, n)
            )
            depth = op.depth if op is not None else 1
            self.state.append({
                "u": np.zeros((batch, n), np.int64),
                "v": np.zeros((batch, n), np.int64),
                "bias": fx.effective_bias(b, layer.neuron.bias_exp),
                "pending": np.zeros((depth, batch, n), np.int64),
            })
            for name in record:
                getattr(rec, name)[i] = np.zeros((batch, 0) + tuple(layer.shape), np.int32)
            for counter in ("spike_count", "synaptic_events", "neuron_updates", "u_wraps", "v_saturations"):
                getattr(rec, counter)[i] = 0
        self.traces = {name: {i: [] for i, _, _ in self.units} for name in record}
        self.count = np.zeros((batch, int(np.prod(net.output_shape))), np.int64)

    def go(self, steps: int) -> None:
        for t in range(steps):
            self.step(t)
        for name, per_layer in self.traces.items():
            for k, (i, layer, _) in enumerate(self.units):
                dtype = bool if name == "s" else np.int32
                arr = np.stack(per_layer[i], axis=1).astype(dtype) if per_layer[i] else np.zeros((self.batch, 0), dtype)
                getattr(self.rec, name)[i] = arr.reshape((self.batch, steps) + tuple(layer.shape))
        out_shape = self.net.output_shape
        self.rec.output_counts = self.count.reshape((self.batch,) + tuple(out_shape))

    def step(self, t: int) -> None:
        spikes_now = []
        for k, (i, layer, op) in enumerate(self.units):
            st = self.state[k]
            slot = t % st["pending"].shape[0]
            a_in = st["pending"][slot].copy()
            st["pending"][slot] = 0
            if isinstance(layer, Input) and self.spikes is not None:
                a_in += self.spikes[:, t].reshape(self.batch, -1).astype(np.int64)
            if self.reset_interval and t % self.reset_interval == (k + self.net.reset_offset) % self.reset_interval:
                st["u"] = np.zeros_like(st["u"])  # new arrays: the old ones are already recorded
                st["v"] = np.zeros_like(st["v"])
            u, wrapped = fx.update_current(st["u"], a_in, layer.neuron.du)
            v, saturated = fx.update_voltage(st["v"], u, st["bias"], layer.neuron.dv)
            s = v > (layer.neuron.vth << fx.ACT_SHIFT)
            v = np.where(s, 0, v)
            st["u"], st["v"] = u, v
            self._account(i, s, u, v, wrapped, saturated)
            spikes_now.append(s)
        self.count += spikes_now[-1]
        self._deliver(t, spikes_now)

    def _account(self, i, s, u, v, wrapped, saturated) -> None:
        rec = self.rec
        rec.spike_count[i] += int(s.sum())
        rec.neuron_updates[i] += s.size
        rec.u_wraps[i] += int(wrapped.sum())
        rec.v_saturations[i] += int(saturated.sum())
        for name, value in (("s", s), ("u", u), ("v", v)):
            if name in self.traces:
                self.traces[name][i].append(value)

    def _deliver(self, t: int, spikes_now: list[np.ndarray]) -> None:
        """Send this step's spikes through each synaptic layer, to arrive next step(s)."""
        for k, (i, layer, op) in enumerate(self.units):
            if op is None:
                continue
            if k == 0:
                if self.spikes is None:
                    continue
                pre = self.spikes[:, t].reshape(self.batch, -1)
            else:
                pre = spikes_now[k - 1]
            st = self.state[k]
            depth = st["pending"].shape[0]
            for d, current in op(pre).items():
                st["pending"][(t + 1 + d) % depth] += current
            self.rec.synaptic_events[i] += int(np.rint(pre.astype(np.float64) @ op.fan_out).sum())


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

"""The simulator on torch, for GPUs and large batches: the same integer semantics as :mod:`neurodeploy.sim`.

Optional (numpy's :func:`neurodeploy.sim.simulate` stays the default); importing
this module imports torch. Neuron state is int64 on the device and steps by the
very rules of :mod:`neurodeploy.fixed_point`: CUBA neurons, and the sigma-delta
ones (Delta, SigmaDelta, Sigma) with their int32 wraps. Synaptic sums are matrix
products and convolutions in float64, exact because every partial sum is an
integer below 2**53: where the largest input times a neuron's summed weight
magnitudes could pass that, the input is cut into base-2**k digits whose sums are
exact, and the sums are put together in int64 (which wraps as numpy's int64 sums
do). Then they are shifted by the weight exponent and wrapped as the layer's kind
wraps them (see :mod:`neurodeploy.sim_graded` for sigma-delta synapses). Layers run
one after another over all steps, in the netlist's (C, H, W) order, the batch cut
into chunks of about CHUNK_BYTES of state; a recurrent layer adds, at each step,
the input from its own messages of the step before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from neurodeploy import fixed_point as fx
from neurodeploy import sim_graded
from neurodeploy.counters import STEPPED
from neurodeploy.errors import NeurodeployError
from neurodeploy.netlist import (
    Conv,
    CubaNeuron,
    Dense,
    Input,
    Netlist,
    RecurrentDense,
    cuba_neuron,
    is_graded,
    layer_label,
    neuron_layer,
)
from neurodeploy.sim import Recording, allocate_records, bias_rows, input_messages, layer_traces, prepare_run

EXACT_SUM = 2**53  # float64 sums of integers below this are exact in any order
CHUNK_BYTES = 1 << 30  # about the device memory a chunk of samples takes in its widest layer
PRODUCT_BLOCK = 1 << 22  # products formed at a time where each must wrap on its own


def simulate(
    net: Netlist,
    steps: int,
    *,
    spikes: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    record: tuple[str, ...] = ("s",),
    reset_interval: int | None = -1,
    conventions: str = "lava",
    device: str = "cpu",
) -> Recording:
    """:func:`neurodeploy.sim.simulate` on a torch device ('cpu', 'cuda', 'cuda:1'...), spike for spike."""
    spikes = input_messages(net, spikes)
    rec, reset_interval, _ = prepare_run(
        net, steps, spikes=spikes, bias=bias, record=record, reset_interval=reset_interval, conventions=conventions
    )
    dev = _device(device)
    layers = [_Layer(k, i, net, dev) for k, i in enumerate(net.neuron_layers)]
    outputs = allocate_records(rec, net, record)
    widest = max(max(layer.n for layer in layers), int(np.prod(net.input_shape or (1,))))
    chunk = max(1, CHUNK_BYTES // (steps * widest * 8 * 4))
    run = _Chunks(net, layers, rec, spikes, bias, (reset_interval, conventions), record, outputs)
    with torch.no_grad():
        for start in range(0, rec.batch, chunk):
            run(slice(start, min(rec.batch, start + chunk)))
    return rec


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise NeurodeployError(f"--device {name}: the torch simulator runs on cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NeurodeployError(f"--device {name}: torch finds no CUDA device here (torch {torch.__version__})")
    return device


class _Synapses:
    """Dense or conv weights on the device as float64, and how to sum any integer input over them exactly."""

    def __init__(self, weights: dict[int, np.ndarray], conv: Conv | None, device: torch.device):
        self.conv, self.device = conv, device
        self.by_delay = {d: self._tensor(w) for d, w in weights.items()}  # dense: (n_in, n_out); conv as given
        every = np.stack(list(weights.values())).astype(np.int64)
        # the largest summed |weight| into one neuron, and the largest single |weight|
        self.weight_sum = int(np.abs(every).sum(axis=1 if conv is None else (2, 3, 4)).max(initial=0))
        self.weight_top = int(np.abs(every).max(initial=0))
        nonzero = np.sum([w != 0 for w in weights.values()], axis=0)
        if conv is None:
            self.fan_out = self._tensor(nonzero.sum(axis=1))  # nonzero synapses leaving each input
        else:
            self.taps = self._tensor(nonzero != 0)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, np.float64)).to(self.device)

    def sums(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Integer inputs (rows, n_in) -> the exact int64 sums (rows, n_out) over each delay's synapses."""
        return {d: self._exact(x, functools.partial(self._product, weight=w)) for d, w in self.by_delay.items()}

    def _product(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if self.conv is None:
            return x @ weight
        c = self.conv
        image = x.reshape((x.shape[0],) + tuple(c.in_shape))
        out = F.conv2d(image, weight, stride=c.stride, padding=c.padding, dilation=c.dilation, groups=c.groups)
        return out.reshape(x.shape[0], -1)

    def _exact(self, x: torch.Tensor, product: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``product`` of integer x, exact: x cut into digits of k bits, each digit's sum below 2**53."""
        x = x.to(torch.int64)
        top = int(x.abs().max().item()) if x.numel() else 0
        if top * self.weight_sum < EXACT_SUM:
            return torch.round(product(x.to(torch.float64))).to(torch.int64)
        k = (EXACT_SUM // (4 * max(1, self.weight_sum))).bit_length() - 1  # digits below 2**k: sums below 2**52
        shifts = range(0, top.bit_length(), k)
        total = torch.zeros((), dtype=torch.int64, device=x.device)
        for shift in shifts:  # the top digit keeps the sign; |it| <= 2**k
            digit = x >> shift if shift == shifts[-1] else (x >> shift) & ((1 << k) - 1)
            total = total + (torch.round(product(digit.to(torch.float64))).to(torch.int64) << shift)
        return total

    def wrapped_products(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """Per delay, the int64 sum of int32-wrapped products (dense only), as Lava's ``DelayDense`` forms it."""
        x = x.to(torch.int64)
        top = int(x.abs().max().item()) if x.numel() else 0
        if top * self.weight_top < 2**31:  # no product wraps
            return self.sums(x)
        out = {}
        for d, w in self.by_delay.items():
            w = w.to(torch.int64)
            block = max(1, PRODUCT_BLOCK // max(1, w.numel()))
            total = torch.zeros((len(x), w.shape[1]), dtype=torch.int64, device=x.device)
            for lo in range(0, len(x), block):
                total[lo : lo + block] = fx.wrap_bits(x[lo : lo + block, :, None] * w[None], 32).sum(dim=1)
            out[d] = total
        return out

    def events(self, counts: torch.Tensor) -> int:
        """Synaptic events: each input's summed presynaptic values (float64, n_in) times its nonzero synapses."""
        if self.conv is None:
            return int(torch.round(counts @ self.fan_out).item())
        return int(torch.round(self._product(counts.reshape(1, -1), self.taps).sum()).item())


class _Layer:
    """One neuron layer: its synapses (None for an input layer), recurrent synapses and neuron parameters."""

    def __init__(self, k: int, index: int, net: Netlist, device: torch.device):
        layer = neuron_layer(net.layers[index])
        self.k, self.index, self.layer, self.device = k, index, layer, device
        self.graded = is_graded(layer.neuron)
        self.neuron = layer.neuron
        self.traces = layer_traces(layer.neuron)
        self.shape = tuple(layer.shape)
        self.n = int(np.prod(self.shape))
        self.exp = int(getattr(layer, "weight_exp", 0))
        self.synapses: _Synapses | None = None
        self.back: _Synapses | None = None  # a recurrent layer's own synapses
        self.delayed = False
        if isinstance(layer, Dense):
            weight = fx.dense_weights(layer.weight, layer.weight_bits)
            self.delayed = layer.delay is not None
            delay = np.zeros_like(weight) if layer.delay is None else np.asarray(layer.delay)
            by_delay = {int(d): np.where(delay == d, weight, 0).T for d in np.unique(delay)}
            self.synapses = _Synapses(by_delay, None, device)
            if isinstance(layer, RecurrentDense):
                back = fx.dense_weights(layer.recurrent_weight, layer.weight_bits)
                self.back = _Synapses({0: back.T}, None, device)
        elif isinstance(layer, Conv):
            self.synapses = _Synapses({0: layer.weight}, layer, device)
        elif not isinstance(layer, Input):
            raise NeurodeployError(
                f"{layer_label(index, layer)}: the torch simulator runs input, dense and "
                "conv layers only; use the numpy simulator (no --device)"
            )

    def currents(self, pre: torch.Tensor) -> dict[int, torch.Tensor]:
        """Presynaptic values (rows, n_in) -> the integer synaptic input (rows, n) by delay."""
        syn = self.synapses
        if syn is None:
            raise NeurodeployError(f"{layer_label(self.index, self.layer)}: an input layer has no synapses")
        if syn.conv is not None:
            return {0: fx.wrap_bits(fx.shift(syn.sums(pre)[0], self.exp), 24)}
        if not self.graded:
            return {d: fx.shift(total, self.exp) for d, total in syn.sums(pre).items()}
        if self.delayed:
            return {d: fx.wrap32(fx.shift(t, self.exp)) for d, t in syn.wrapped_products(pre).items()}
        return {d: fx.graded_sum(total, self.exp) for d, total in syn.sums(pre).items()}

    def recurrent_current(self, own: torch.Tensor) -> torch.Tensor:
        """The layer's own messages (rows, n) of one step -> the integer input they give it at the next."""
        if self.back is None:
            raise NeurodeployError(f"{layer_label(self.index, self.layer)}: not a recurrent layer")
        (total,) = self.back.sums(own).values()
        return fx.graded_sum(total, self.exp) if self.graded else fx.shift(total, self.exp)

    def events(self, pre: torch.Tensor) -> int:
        """Synaptic events from the input (steps, rows, n_in): a graded message counts once."""
        if self.synapses is None:
            return 0
        sent = pre != 0 if self.graded else pre
        return self.synapses.events(sent.reshape(-1, sent.shape[-1]).to(torch.float64).sum(dim=0))

    def recurrent_events(self, s: torch.Tensor) -> int:
        """Events over the recurrent synapses: messages of every step but the last (no step receives those)."""
        if self.back is None or s.shape[0] < 2:
            return 0
        return self.back.events((s[:-1] != 0).reshape(-1, self.n).to(torch.float64).sum(dim=0))


class _Chunks:
    """A run, chunk of samples after chunk: each through every layer, into the recording."""

    def __init__(self, net: Netlist, layers: list[_Layer], rec: Recording, spikes, bias, resets, record, outputs):
        self.net, self.layers, self.rec, self.spikes, self.bias = net, layers, rec, spikes, bias
        self.resets, self.record = resets, record
        self.output_counts, self.output_v = outputs  # the recording's, (batch, *output shape)

    def __call__(self, rows: slice) -> None:
        rec, steps, size = self.rec, self.rec.steps, rows.stop - rows.start
        dev = self.layers[0].device
        pre = None
        if self.spikes is not None:
            given = np.ascontiguousarray(self.spikes[rows, :steps])
            given = given if given.dtype == bool else given.astype(np.int64)
            pre = torch.from_numpy(given).to(dev).reshape(size, steps, -1).transpose(0, 1)  # (steps, rows, n_in)
        for layer in self.layers:
            a = _inputs(layer, pre, steps, size)
            events = 0 if pre is None else layer.events(pre)
            if not isinstance(layer.neuron, CubaNeuron):
                binary = pre is None or pre.dtype == torch.bool  # the recurrent messages have the input's bits
                s, held, faults = _step_graded(layer, a, self._bias(layer, rows), steps, size, binary)
            else:
                keep = {"u", "v"} & set(self.record) | ({"v"} if layer is self.layers[-1] else set())
                bias = self._bias(layer, rows)
                s, held, faults = _step_cuba(self.net, layer, a, bias, self.resets, steps, size, keep)
            events += layer.recurrent_events(s)
            for name, trace in {"s": s, **held}.items():
                if name in self.record:
                    shape = (size, steps) + layer.shape
                    getattr(rec, name)[layer.index][rows] = trace.transpose(0, 1).reshape(shape).cpu().numpy()
            for counter, value in zip(STEPPED, (events, *faults, int(s.count_nonzero().item()))):
                getattr(rec, counter)[layer.index] += value
            pre = s
        last = self.layers[-1]
        self.output_counts[rows] = s.sum(dim=0).reshape(self.output_counts[rows].shape).cpu().numpy()
        if not last.graded:
            self.output_v[rows] = held["v"][-1].reshape(self.output_v[rows].shape).cpu().numpy()

    def _bias(self, layer: _Layer, rows: slice) -> torch.Tensor:
        """The bias the layer adds each step, (rows or 1, n), in int64 on the device."""
        given = self.bias if isinstance(layer.layer, Input) and self.bias is not None else layer.layer.bias
        if given is None:
            return torch.zeros((1, 1), dtype=torch.int64, device=layer.device)
        per = bias_rows(np.asarray(given, np.int64), layer.shape, rows.stop)
        per = per[rows] if per.shape[0] > 1 else per
        if layer.graded:
            effective = sim_graded.effective_bias(per, layer.neuron).astype(np.int64)
        else:
            effective = fx.effective_bias(per, cuba_neuron(layer.layer).bias_exp)
        return torch.from_numpy(np.ascontiguousarray(effective)).to(layer.device)


def _inputs(layer: _Layer, pre: torch.Tensor | None, steps: int, size: int) -> torch.Tensor | None:
    """The integer input (steps, rows, n) arriving at each step, or None where none ever does."""
    if pre is None:
        return None
    if isinstance(layer.layer, Input):  # external input into an input layer, same step
        return pre.to(torch.int64)
    a = torch.zeros((steps, size, layer.n), dtype=torch.int64, device=layer.device)
    if steps < 2:
        return a
    flat = pre[: steps - 1].reshape((steps - 1) * size, -1)
    for d, current in layer.currents(flat).items():
        if d + 1 < steps:
            a[d + 1 :] += current.reshape(steps - 1, size, layer.n)[: steps - 1 - d]
    return a


def _step_cuba(net: Netlist, layer: _Layer, a, bias: torch.Tensor, resets, steps: int, size: int, keep: set[str]):
    """Step a CUBA layer's neurons through every step: spikes (steps, rows, n), the traces named in
    ``keep`` (u, v; int32), and the counts of u wraps and v saturations.

    ``resets``: the reset interval (None: never) and the run conventions, as :func:`fixed_point.resets` takes them.
    """
    interval, conventions = resets
    n, dev = cuba_neuron(layer.layer), layer.device
    u = torch.zeros((size, layer.n), dtype=torch.int64, device=dev)
    v = torch.zeros_like(u)
    zero = torch.zeros_like(u)
    s = torch.zeros((steps, size, layer.n), dtype=torch.bool, device=dev)
    held = {name: torch.zeros((steps, size, layer.n), dtype=torch.int32, device=dev) for name in sorted(keep)}
    wraps = torch.zeros((), dtype=torch.int64, device=dev)
    saturations = torch.zeros_like(wraps)
    threshold = n.vth << fx.ACT_SHIFT
    spike_v = torch.full_like(u, fx.LOIHI2_SPIKE_V) if conventions == "loihi2" else zero  # v shown on a spike step
    for t in range(steps):
        if interval and fx.resets(t, interval, layer.k + net.reset_offset, conventions):
            u, v = torch.zeros_like(u), torch.zeros_like(v)
        a_t = zero if a is None else a[t]
        if layer.back is not None and t > 0:
            a_t = a_t + layer.recurrent_current(s[t - 1])
        u, wrapped = fx.update_current(u, a_t, n.du)
        v, saturated = fx.update_voltage(v, u, bias, n.dv)
        s[t] = v > threshold
        v = torch.where(s[t], zero, v)
        wraps += wrapped.sum()
        saturations += saturated.sum()
        if "u" in held:
            held["u"][t] = u
        if "v" in held:
            held["v"][t] = torch.where(s[t], spike_v, v)
    return s, held, (int(wraps.item()), int(saturations.item()))


def _step_graded(layer: _Layer, a, bias: torch.Tensor, steps: int, size: int, binary: bool):
    """Step a sigma-delta layer through every step by :func:`neurodeploy.sim_graded.step`: messages
    (steps, rows, n) in int64, the sigma and act traces it has, and no faults (the int32 state wraps
    silently). ``binary``: its recurrent messages are sent as spikes (0 or 1)."""
    neuron, dev = layer.neuron, layer.device
    zero = torch.zeros((size, layer.n), dtype=torch.int64, device=dev)
    state = sim_graded.initial_state(neuron, zero)
    scale, vth = sim_graded.thresholds(neuron)
    s = torch.zeros((steps, size, layer.n), dtype=torch.int64, device=dev)
    held = {name: torch.zeros((steps, size, layer.n), dtype=torch.int32, device=dev) for name in layer.traces}
    for t in range(steps):
        a_t = zero if a is None else a[t]
        if layer.back is not None and t > 0:
            a_t = a_t + layer.recurrent_current(s[t - 1] != 0 if binary else s[t - 1])
        s[t] = sim_graded.step(neuron, fx.wrap32(a_t), state, bias, scale, vth)  # the int32 cast of Lava's ports
        for name, trace in held.items():
            trace[t] = state[name]
    return s, held, (0, 0)

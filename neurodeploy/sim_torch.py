"""The simulator on torch, for GPUs and large batches: the same integer semantics as :mod:`neurodeploy.sim`.

Optional (numpy's :func:`neurodeploy.sim.simulate` stays the default); importing
this module imports torch. Neuron state is int64 on the device and steps by the
very rules of :mod:`neurodeploy.fixed_point`. Synaptic sums are matrix products
and convolutions in float64, exact because every partial sum is an integer below
2**53 (checked from the weights, the fan-in and the largest input payload; past
that bound dense sums run in int64 on the CPU, and a convolution, or a dense
layer on another device, is refused); they are then rounded to int64 and shifted by the weight
exponent, and convolution outputs wrap to 24 bits. Layers run one after another
over all steps, in the netlist's (C, H, W) order, the batch cut into chunks of
about CHUNK_BYTES of state; a recurrent layer adds, at each step, the product of
its own spikes of the step before. Sigma-delta netlists are refused.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from neurodeploy import fixed_point as fx
from neurodeploy.counters import STEPPED
from neurodeploy.errors import NeurodeployError
from neurodeploy.netlist import (
    Conv,
    Dense,
    Input,
    Netlist,
    RecurrentDense,
    cuba_neuron,
    layer_label,
    neuron_layer,
)
from neurodeploy.sim import Recording, bias_rows, prepare_run

EXACT_SUM = 2**53  # float64 sums of integers below this are exact in any order
CHUNK_BYTES = 1 << 30  # about the device memory a chunk of samples takes in its widest layer


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
    if net.graded:
        raise NeurodeployError(
            "the torch simulator runs CUBA netlists; run sigma-delta ones without --device (numpy's simulator)"
        )
    rec, reset_interval, graded_max = prepare_run(
        net, steps, spikes=spikes, bias=bias, record=record, reset_interval=reset_interval, conventions=conventions
    )
    resets = (reset_interval, conventions)
    dev = _device(device)
    layers = [_Layer(k, i, net, graded_max if k == 0 else 1, dev) for k, i in enumerate(net.neuron_layers)]
    for layer in layers:
        for name in (n for n in record if n in ("s", "u", "v")):  # sigma and act: sigma-delta layers only
            getattr(rec, name)[layer.index] = np.zeros(
                (rec.batch, steps) + layer.shape, bool if name == "s" else np.int32
            )
        for counter in STEPPED:
            getattr(rec, counter)[layer.index] = 0
        rec.neuron_updates[layer.index] = rec.batch * steps * layer.n
    counts = rec.output_counts = np.zeros((rec.batch,) + tuple(net.output_shape), np.int64)
    widest = max(max(layer.n for layer in layers), int(np.prod(net.input_shape or (1,))))
    chunk = max(1, CHUNK_BYTES // (steps * widest * 8 * 4))
    with torch.no_grad():
        for start in range(0, rec.batch, chunk):
            rows = slice(start, min(rec.batch, start + chunk))
            counts[rows] = _run_chunk(net, layers, rec, rows, spikes, bias, resets).reshape(counts[rows].shape)
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


class _Layer:
    """One neuron layer: its synapses as float64 (or int64) tensors and its neuron parameters."""

    def __init__(self, k: int, index: int, net: Netlist, graded_max: int, device: torch.device):
        layer = neuron_layer(net.layers[index])
        self.k, self.index, self.layer, self.device = k, index, layer, device
        self.neuron = cuba_neuron(layer)
        self.shape = tuple(layer.shape)
        self.n = int(np.prod(self.shape))
        self.exp = int(getattr(layer, "weight_exp", 0))
        if isinstance(layer, Dense):
            weight = fx.dense_weights(layer.weight, layer.weight_bits)
            delay = np.zeros_like(weight) if layer.delay is None else np.asarray(layer.delay)
            self.dtype = self._sum_dtype(weight, weight.shape[1], graded_max, dense=True)
            self.by_delay = {int(d): self._tensor(np.where(delay == d, weight, 0).T) for d in np.unique(delay)}
            self.fan_out = torch.from_numpy((weight != 0).sum(axis=0).astype(np.float64)).to(device)
            if isinstance(layer, RecurrentDense):
                back = fx.dense_weights(layer.recurrent_weight, layer.weight_bits)
                self.back_dtype = self._sum_dtype(back, back.shape[1], 1, dense=True)
                self.back = torch.from_numpy(np.ascontiguousarray(back.T)).to(device, self.back_dtype)
                self.back_fan_out = torch.from_numpy((back != 0).sum(axis=0).astype(np.float64)).to(device)
        elif isinstance(layer, Conv):
            _o, cg, kh, kw = layer.weight.shape
            self.dtype = self._sum_dtype(layer.weight, cg * kh * kw, graded_max, dense=False)
            self.by_delay = {0: self._tensor(layer.weight)}
            self.taps = self._tensor(layer.weight != 0).to(torch.float64)
        elif not isinstance(layer, Input):
            raise NeurodeployError(
                f"{layer_label(index, layer)}: the torch simulator runs input, dense and "
                "conv layers only; use the numpy simulator (no --device)"
            )

    def _sum_dtype(self, weight: np.ndarray, fan_in: int, graded_max: int, dense: bool) -> torch.dtype:
        bound = int(np.abs(weight).max(initial=0)) * fan_in * graded_max
        if bound < EXACT_SUM:
            return torch.float64
        if dense and self.device.type == "cpu":
            return torch.int64
        raise NeurodeployError(
            f"{layer_label(self.index, self.layer)}: synaptic sums may reach {bound:,}, beyond "
            f"what float64 holds exactly (2**53); run it with the numpy simulator (no --device)"
        )

    back: torch.Tensor | None = None  # a recurrent layer's own synapses, (n, n) transposed

    def recurrent_current(self, own: torch.Tensor) -> torch.Tensor:
        """The layer's own spikes (rows, n) of one step -> the integer input they give it at the next."""
        if self.back is None:
            raise NeurodeployError(f"{layer_label(self.index, self.layer)}: not a recurrent layer")
        return fx.shift(self._integer(own.to(self.back_dtype) @ self.back), self.exp)

    def recurrent_events(self, s: torch.Tensor) -> int:
        """Events over the recurrent synapses: spikes of every step but the last (no step receives those)."""
        if self.back is None or s.shape[0] < 2:
            return 0
        counts = s[:-1].reshape(-1, self.n).to(torch.float64).sum(dim=0)
        return int(torch.round(counts @ self.back_fan_out).item())

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device, self.dtype)

    def currents(self, pre: torch.Tensor) -> dict[int, torch.Tensor]:
        """Presynaptic values (rows, n_in) -> the integer synaptic input (rows, n) by delay."""
        x = pre.to(self.dtype)
        if isinstance(self.layer, Dense):
            return {d: fx.shift(self._integer(x @ w), self.exp) for d, w in self.by_delay.items()}
        out = self._conv2d(x, self.by_delay[0])
        return {0: fx.wrap_bits(fx.shift(self._integer(out), self.exp), 24).reshape(x.shape[0], -1)}

    @staticmethod
    def _integer(y: torch.Tensor) -> torch.Tensor:
        return y if y.dtype == torch.int64 else torch.round(y).to(torch.int64)

    def events(self, pre: torch.Tensor) -> int:
        """Synaptic events: each input's summed presynaptic values times its nonzero outgoing synapses."""
        counts = pre.reshape(-1, pre.shape[-1]).to(torch.float64).sum(dim=0)
        if isinstance(self.layer, Dense):
            return int(torch.round(counts @ self.fan_out).item())
        reached = self._conv2d(counts.reshape(1, -1), self.taps)
        return int(torch.round(reached.sum()).item())

    def _conv2d(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Rows of flat (C*H*W) inputs through ``weight`` with this conv layer's geometry: (rows, C_out, H, W)."""
        c = self.layer
        if not isinstance(c, Conv):
            raise NeurodeployError(f"{layer_label(self.index, c)}: not a conv layer")
        image = x.reshape((x.shape[0],) + tuple(c.in_shape))
        return F.conv2d(image, weight, stride=c.stride, padding=c.padding, dilation=c.dilation, groups=c.groups)


def _run_chunk(net: Netlist, layers: list[_Layer], rec: Recording, rows: slice, spikes, bias, resets) -> np.ndarray:
    """Run samples ``rows`` through every layer, writing their records and adding their counters; the
    last layer's spike counts (rows, n)."""
    size, steps = rows.stop - rows.start, rec.steps
    pre = None
    if spikes is not None:
        given = torch.from_numpy(np.ascontiguousarray(spikes[rows, :steps]).astype(np.int64)).to(layers[0].device)
        pre = given.reshape(size, steps, -1).transpose(0, 1)  # (steps, rows, n_in)
    for layer in layers:
        a = _inputs(layer, pre, steps, size)
        events = 0 if pre is None or isinstance(layer.layer, Input) else layer.events(pre)
        s, u, v, wraps, saturations = _step_all(net, layer, a, _bias(layer, bias, rows), resets, steps, size, rec)
        events += layer.recurrent_events(s)
        for name, held in (("s", s), ("u", u), ("v", v)):
            if held is not None and layer.index in getattr(rec, name):
                getattr(rec, name)[layer.index][rows] = (
                    held.transpose(0, 1).reshape((size, steps) + layer.shape).cpu().numpy()
                )
        for counter, value in zip(STEPPED, (events, wraps, saturations, int(s.count_nonzero().item()))):
            getattr(rec, counter)[layer.index] += value
        pre = s
    return s.sum(dim=0).cpu().numpy()


def _inputs(layer: _Layer, pre: torch.Tensor | None, steps: int, size: int) -> torch.Tensor | None:
    """The integer input (steps, rows, n) arriving at each step, or None where none ever does."""
    if pre is None:
        return None
    if isinstance(layer.layer, Input):  # external input into an input layer, same step
        return pre
    a = torch.zeros((steps, size, layer.n), dtype=torch.int64, device=layer.device)
    if steps < 2:
        return a
    flat = pre[: steps - 1].reshape((steps - 1) * size, -1)
    for d, current in layer.currents(flat).items():
        if d + 1 < steps:
            a[d + 1 :] += current.reshape(steps - 1, size, layer.n)[: steps - 1 - d]
    return a


def _bias(layer: _Layer, bias: np.ndarray | None, rows: slice) -> torch.Tensor:
    """The bias added to v each step, (rows or 1, n), in int64 on the device."""
    given = bias if isinstance(layer.layer, Input) and bias is not None else layer.layer.bias
    if given is None:
        return torch.zeros((1, 1), dtype=torch.int64, device=layer.device)
    per = bias_rows(np.asarray(given, np.int64), layer.shape, rows.stop)
    per = per[rows] if per.shape[0] > 1 else per
    effective = fx.effective_bias(per, layer.neuron.bias_exp)
    return torch.from_numpy(np.ascontiguousarray(effective)).to(layer.device)


def _step_all(net: Netlist, layer: _Layer, a, bias: torch.Tensor, resets, steps: int, size: int, rec: Recording):
    """Step the layer's neurons through every step; spikes, traces (None where not recorded) and counts.

    ``resets``: the reset interval (None: never) and the run conventions, as :func:`fixed_point.resets` takes them.
    """
    interval, conventions = resets
    n, dev = layer.neuron, layer.device
    u = torch.zeros((size, layer.n), dtype=torch.int64, device=dev)
    v = torch.zeros_like(u)
    zero = torch.zeros_like(u)
    s = torch.zeros((steps, size, layer.n), dtype=torch.bool, device=dev)
    keep = {
        name: torch.zeros((steps, size, layer.n), dtype=torch.int32, device=dev)
        for name in ("u", "v")
        if layer.index in getattr(rec, name)
    }
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
        for name, trace in keep.items():
            trace[t] = u if name == "u" else torch.where(s[t], spike_v, v)
    return s, keep.get("u"), keep.get("v"), int(wraps.item()), int(saturations.item())

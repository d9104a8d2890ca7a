"""Sigma-delta layers (graded spikes) of the simulator: neurons stepped over a batch, synapses.

The neurons follow Lava's fixed_pt ``Delta``, ``SigmaDelta`` and ``Sigma`` in int64
arrays holding int32 values, wrapped where Lava's int32 arrays wrap (the rules are
in :mod:`neurodeploy.fixed_point`); nothing here is computed in floating point. The
synapses reuse the simulator's exact products: a layer's input bound comes from the
largest message its source actually sent, so that products run in float32 or float64
only where every sum is exactly representable, and the dense sum then wraps to int32
before its exponent is applied, as Lava's ``Dense`` computes it.
"""

from __future__ import annotations

import copy

import numpy as np

from neurodeploy import fixed_point as fx
from neurodeploy.netlist import DeltaNeuron, SigmaDeltaNeuron, SigmaNeuron

PRODUCT_BLOCK = 1 << 22  # products formed at a time where each must wrap on its own (32 MB of int64)
MESSAGE_BOUND = 2**31  # |a graded message| never exceeds it: an int32 (sigma) or less (a delta >> 6)


def traces(neuron) -> tuple[str, str]:
    """The two recordable state variables after s: sigma and act ('' where the neuron has none)."""
    if isinstance(neuron, SigmaNeuron):
        return ("sigma", "")
    if isinstance(neuron, DeltaNeuron):
        return ("", "act")
    return ("sigma", "act")


def effective_bias(bias: np.ndarray, neuron) -> np.ndarray:
    """The bias a sigma-delta neuron adds: the mantissa shifted by spike_exp + 6, in int32."""
    if not isinstance(neuron, SigmaDeltaNeuron):
        return np.zeros_like(bias)
    return fx.wrap32(np.asarray(bias, np.int64) << fx.graded_scale(neuron.spike_exp))


def thresholds(neuron) -> tuple[int, int]:
    """(scale, vth): the left shift of a sigma-delta neuron's state (spike_exp + 6) and its threshold so
    shifted; (0, 0) for a Sigma readout."""
    if isinstance(neuron, SigmaNeuron):
        return 0, 0
    scale = fx.graded_scale(neuron.spike_exp)
    return scale, int(neuron.vth) << scale


def step(neuron, a, state: dict, bias, scale: int, vth: int):
    """One step of a sigma-delta layer on int32 values: the message it sends (int32 arrays or int64
    tensors holding int32 values alike, operators only).

    ``a`` is the input, already cast to int32; ``state`` holds ``sigma``, ``prev``, ``residue``,
    ``error`` (None without a cumulative error) and ``act``, and is updated; ``bias`` is the
    effective bias (:func:`effective_bias`) or None.
    """
    if isinstance(neuron, DeltaNeuron):
        act = fx.wrap32(a << scale)
    else:
        state["sigma"] = fx.wrap32(state["sigma"] + a)
        if isinstance(neuron, SigmaNeuron):
            return state["sigma"]
        act = state["sigma"] if bias is None else fx.wrap32(state["sigma"] + bias)
        if neuron.activation == "relu":
            act = act * (act > 0)
    message, residue, error = fx.delta_encode(act, state["prev"], state["residue"], state["error"], vth)
    state.update(prev=act, act=act, residue=residue, error=error)
    return message


def initial_state(neuron, zero) -> dict:
    """A sigma-delta layer's state before its first step (see :func:`step`): every value ``zero``,
    shared, since :func:`step` replaces values rather than writing into them."""
    state = dict.fromkeys(("sigma", "prev", "residue", "act"), zero)
    state["error"] = zero if getattr(neuron, "cum_error", False) else None
    return state


class GradedNeurons:
    """One sigma-delta layer stepped over a batch; ``run`` mirrors the CUBA neurons' interface.

    The state is held in int32 arrays, whose arithmetic wraps modulo 2**32 as Lava's does.
    """

    exact_float = False  # its synapses deliver int64 input

    def __init__(self, neuron, bias: np.ndarray):
        self.neuron = neuron
        self.bias = bias.astype(np.int32) if np.any(bias) else None
        self.scale, self.vth = thresholds(neuron)

    @property
    def per_sample(self) -> bool:
        """Whether the bias differs between samples."""
        return self.bias is not None and self.bias.shape[0] > 1

    def for_rows(self, rows: slice) -> GradedNeurons:
        """The same neurons with the per-sample bias of some rows."""
        part = copy.copy(self)
        part.bias = None if self.bias is None else self.bias[rows]
        return part

    def run(self, a_in, resets, s: np.ndarray, sigma_out, act_out) -> tuple[int, int]:
        """Step through the input, writing messages into s (steps, rows, n).

        ``a_in(t)`` is the int64 input arriving at step t, or None; ``sigma_out``
        and ``act_out`` (steps, rows, n) take those traces when not None. Resets
        do not apply (Lava's sigma-delta processes have none). Returns (0, 0): the
        int32 state wraps silently, as on the chip.
        """
        steps, rows, n = s.shape
        zero = np.zeros((rows, n), np.int32)
        state = initial_state(self.neuron, zero)
        for t in range(steps):
            a = a_in(t)
            a = zero if a is None else a.astype(np.int32)  # the int32 cast wraps, as Lava's ports do
            s[t] = step(self.neuron, a, state, self.bias, self.scale, self.vth)
            for out, name in ((sigma_out, "sigma"), (act_out, "act")):
                if out is not None:
                    out[t] = state[name]
        return 0, 0


class GradedSynapse:
    """A dense or conv synapse fed graded messages: the exact sum, wrapped as Lava's ``Dense`` wraps it.

    ``inner`` is the simulator's op built with weight exponent 0 for a dense layer
    (the exponent ``exp`` is applied here, after the int32 wrap of the sum), or the
    conv op as it is (Lava's conv output wraps to 24 bits, with no exponent). With
    ``delayed`` synapses Lava's ``DelayDense`` forms each product in int32 (wrapping
    on its own), sums them in int64 and shifts each delay's sum before the int32
    wrap: where a product can pass 2**31 the sums are formed product by product.
    """

    def __init__(self, inner, exp: int | None, delayed: bool = False):
        self.inner, self.exp, self.delayed = inner, exp, delayed
        self.delays, self.bound = inner.delays, inner.bound

    def events(self, counts: np.ndarray) -> int:
        return self.inner.events(counts)

    def __call__(self, x: np.ndarray, exact_float: bool, spread: bool) -> dict[int, np.ndarray]:
        if self.exp is None:  # conv synapses: no weight exponent, never delayed
            return self.inner(x, False, spread)
        if self.delayed:
            return {d: fx.wrap32(fx.shift(v, self.exp)) for d, v in self._delayed_sums(x, spread).items()}
        return {d: fx.graded_sum(v, self.exp) for d, v in self.inner(x, False, spread).items()}

    def _delayed_sums(self, x: np.ndarray, spread: bool) -> dict[int, np.ndarray]:
        """Per delay, the int64 sum of int32-wrapped products, as ``DelayDense`` forms it."""
        weights = {d: w.astype(np.int64) for d, w in self.inner.by_delay.items()}  # (n_in, n_out), small integers
        top = int(np.abs(x).max(initial=0)) * max(int(np.abs(w).max(initial=0)) for w in weights.values())
        if top < 2**31:  # no product wraps: the exact sums are Lava's
            return self.inner(x, False, spread)
        x = np.asarray(x, np.int64)
        rows, (n_in, n_out) = x.shape[0], next(iter(weights.values())).shape
        block = max(1, PRODUCT_BLOCK // max(1, n_in * n_out))
        out = {}
        for d, w in weights.items():
            total = np.empty((rows, n_out), np.int64)
            for lo in range(0, rows, block):
                total[lo : lo + block] = fx.wrap32(x[lo : lo + block, :, None] * w[None]).sum(axis=1)
            out[d] = total
        return out

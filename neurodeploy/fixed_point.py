"""Integer arithmetic of a Loihi-class core, one rule a function, on int64 arrays.

Each rule mirrors Lava's bit-accurate CPU models (``PyLifModelBitAcc``,
``PyDenseModelBitAcc``, ``PyConvModelFixed``), including where they compute in
32-bit integers and wrap. The neuron rules (``wrap_bits`` to ``update_voltage``,
and ``wrap32`` to ``delta_encode`` of the graded ones) use only operators and
array methods that numpy arrays and torch tensors share, so the torch simulator
runs them as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

# An integer array of either kind, for the rules that numpy and torch share.
Ints = TypeVar("Ints", np.ndarray, "torch.Tensor")

DECAY_SHIFT = 12
DECAY_UNITY = 1 << DECAY_SHIFT
ACT_SHIFT = 6  # synaptic input and threshold are MSB-aligned by 6 bits
MAX_UV = 1 << 23  # u and v are 24-bit
V_LIMIT = MAX_UV - 1


def wrap_bits(x: Ints, bits: int) -> Ints:
    """Two's-complement wrap of ``x`` into ``bits`` bits (a true modulo)."""
    half = 1 << (bits - 1)
    return ((x + half) & ((1 << bits) - 1)) - half


def decay(x: Ints, factor: int) -> Ints:
    """``x * factor / 4096`` rounded toward zero, as the chip's decay unit does."""
    prod = x * factor
    magnitude = abs(prod) >> DECAY_SHIFT  # type: ignore[operator]  # numpy's stub types abs() of any array as float
    return magnitude - 2 * magnitude * (prod < 0)


def shift(x: Ints, exp: int) -> Ints:
    """``x << exp`` for ``exp >= 0``, arithmetic (floor) ``x >> -exp`` otherwise."""
    return x << exp if exp >= 0 else x >> -exp


def effective_bias(bias_mant: np.ndarray, bias_exp: int, dtype: type = np.int64) -> np.ndarray:
    """The bias added to v each step: the mantissa shifted by its exponent, in int32 (held as ``dtype``).

    Where nothing can wrap (see :func:`effective_bias_bound`), a left shift (or none) is done in
    ``dtype`` itself.
    """
    mant = np.asarray(bias_mant)
    low, high = (int(mant.min()), int(mant.max())) if mant.size else (0, 0)
    if bias_exp >= 0 and effective_bias_bound(low, high, bias_exp) is not None:
        held: np.ndarray = mant.astype(dtype)  # |mant| <= |mant << bias_exp|: it fits too
        return np.left_shift(held, bias_exp, out=held)
    return wrap_bits(shift(mant.astype(np.int64), bias_exp), 32).astype(dtype)


def effective_bias_bound(low: int, high: int, bias_exp: int) -> int | None:
    """The largest magnitude of the effective bias of mantissas in [low, high], or None where it
    may wrap (shifts are monotonic, so the shifted bounds bound every shifted value)."""
    bottom, top = (low << bias_exp, high << bias_exp) if bias_exp >= 0 else (low >> -bias_exp, high >> -bias_exp)
    return max(-bottom, top, 0) if bottom >= -(2**31) and top < 2**31 else None


def update_current(u: Ints, a_in: Ints, du: int) -> tuple[Ints, Ints]:
    """One step of u: decay, add ``a_in << 6``, then Lava's one-step 24-bit wrap.

    The sum is formed in int32 (wrapping modulo 2**32); the 24-bit wrap then
    subtracts (or adds) 2**24 once, exactly as ``PyLifModelBitAcc`` does.
    Returns the new u and where it wrapped.
    """
    total = wrap_bits(decay(u, DECAY_UNITY - (du + 1)) + (a_in << ACT_SHIFT), 32)
    high, low = total > MAX_UV, total <= -MAX_UV
    return total - (high * (2 * MAX_UV)) + (low * (2 * MAX_UV)), high | low


def update_voltage(v: Ints, u: Ints, bias: Ints, dv: int) -> tuple[Ints, Ints]:
    """One step of v: decay, add u and the bias (int32), saturate to 24 bits.

    Returns the new v and where it saturated.
    """
    total = wrap_bits(decay(v, DECAY_UNITY - dv) + u + bias, 32)
    return total.clip(-V_LIMIT, V_LIMIT), abs(total) > V_LIMIT


def sign_mode(weight: np.ndarray) -> str:
    """'exc' when all weights are >= 0, 'inh' when all are <= 0, else 'mixed'."""
    return _sign_mode(*_extremes(weight))


def _extremes(weight: np.ndarray) -> tuple[float, float]:
    weight = np.asarray(weight)
    return (weight.min().item(), weight.max().item()) if weight.size else (0, 0)


def _sign_mode(lowest: float, highest: float) -> str:
    return "exc" if lowest >= 0 else "inh" if highest <= 0 else "mixed"


def dense_weights(weight: np.ndarray, weight_bits: int = 8, dtype: type = np.int64) -> np.ndarray:
    """The weights a dense core holds: clipped to 8 bits, low bits truncated.

    ``k = 8 - weight_bits`` low bits are dropped, one more for mixed-sign
    matrices (the sign takes a bit): a floor shift for excitatory and mixed
    weights, toward zero for inhibitory ones. Idempotent, except where the
    truncation removes every positive weight of a mixed matrix that holds -256
    (the result is inhibitory, and -256 then clips to -255). The values fit
    ``dtype`` int16 and wider.
    """
    weight = np.asarray(weight, dtype=np.int64)
    lowest, highest = _extremes(weight)
    mode = _sign_mode(lowest, highest)
    low = -256 if mode == "mixed" else 0
    mag = -weight if mode == "inh" else weight
    if mode == "inh":
        lowest, highest = -highest, -lowest
    if lowest < low or highest > 255:
        mag = np.clip(mag, low, 255)
    mag = mag.astype(np.int16)  # 9-bit values from here
    k = 8 - weight_bits + (mode == "mixed")
    if k:
        mag = (mag >> k) << k
    return (-mag if mode == "inh" else mag).astype(dtype, copy=False)


# Run conventions: how a run's resets fall and what a trace shows. "lava" is Lava's
# fixed_pt CPU models (LIFReset); "loihi2" is Loihi 2 silicon, as recorded in lava-dl's
# PilotNet traces (gts/pilotnet_lif, 24 steps, reset interval 16; see docs/lava.md).
CONVENTIONS = ("lava", "loihi2")
LOIHI2_SPIKE_V = 128  # v Loihi 2 reports on a neuron's spike step (Lava reports 0); the held v is 0


def resets(t: int, interval: int, phase: int, conventions: str = "lava") -> bool:
    """Whether a layer whose reset phase is ``phase`` zeroes u and v before step t (from 0).

    lava: at every t with t mod interval = phase mod interval. loihi2: the first
    reset falls there too, each later one interval + 1 steps after the one before
    (the chip spends a step on the reset: its traces from a layer's second reset on
    equal Lava's one step late).
    """
    first = phase % interval
    if conventions == "lava":
        return t % interval == first
    return t >= first and (t - first) % (interval + 1) == 0


def weight_bits_used(weight: np.ndarray) -> int:
    """The fewest weight bits that hold 8-bit mantissas ``weight`` unchanged, as ``dense_weights`` counts them.

    ``8 + mixed - z`` for ``z`` trailing zero bits common to every weight (at most 8),
    at least 1.
    """
    weight = np.asarray(weight, dtype=np.int64)
    bits = int(np.bitwise_or.reduce(np.abs(weight), axis=None)) if weight.size else 0
    zeros = min(8, (bits & -bits).bit_length() - 1) if bits else 8
    return max(1, 8 + (sign_mode(weight) == "mixed") - zeros)


# --------------------------------------------------------------------------- graded spikes (Loihi 2)
# Lava's fixed_pt Sigma, Delta and SigmaDelta hold their state in int32 numpy arrays:
# every sum wraps modulo 2**32, and np.abs(-2**31) stays -2**31.

INT32 = 2**31  # int32 values lie in [-INT32, INT32)
INT32_MAX = INT32 - 1
STATE_EXP = 6  # fraction bits of a sigma-delta neuron's state beyond its messages'


def wrap32(x: Ints) -> Ints:
    """Two's-complement wrap into int32, as Lava's int32 state arrays wrap (int32 arrays wrap by themselves)."""
    return x if x.dtype == np.int32 else wrap_bits(x, 32)


def abs32(x: Ints) -> Ints:
    """``np.abs`` of int32 values: -2**31 stays negative."""
    return wrap32(abs(x))


def graded_scale(spike_exp: int) -> int:
    """The left shift of a sigma-delta threshold, bias and input: spike_exp + state_exp."""
    return spike_exp + STATE_EXP


def delta_encode(act: Ints, prev: Ints, residue: Ints, error: Ints | None, vth: int) -> tuple[Ints, Ints, Ints | None]:
    """One step of delta encoding: (message, residue, cumulative error), on int32 values.

    ``d = act - prev + residue`` is sent where ``|d| >= vth`` (with a cumulative
    error, where ``|error + d| >= vth``; the error clears where a nonzero message
    goes), else 0; the new residue is ``d - sent``; the message is ``sent >> 6``.
    Operators only, so that numpy arrays (int32, or int64 holding int32 values)
    and torch tensors step alike.
    """
    delta = wrap32(act - prev + residue)
    if error is None:
        sent = delta * (abs32(delta) >= vth)
    else:
        error = wrap32(error + delta)
        sent = delta * (abs32(error) >= vth)
        error = error * (abs32(sent) <= 0)  # a sent -2**31 has abs32 < 0 and leaves the error, as in Lava
    return sent >> STATE_EXP, wrap32(delta - sent), error


def graded_sum(total: Ints, exp: int) -> Ints:
    """A dense sum of graded messages as Lava's Dense delivers it: int32 dot product, then the exponent."""
    return wrap32(shift(wrap32(total), exp))

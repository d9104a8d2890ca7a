"""Random netlists that reach every corner of the fixed-point rules, run in the simulator and in Lava.

Each case is a small feed-forward netlist with random input, and :func:`run_conformance`
compares s, u and v of every layer at every step. The generator draws, within the
ranges Lava itself computes exactly (see :mod:`neurodeploy.backends.lava`):

- an optional input layer (1-D or (C, H, W)) driven by its bias and by integer input
  in [-2**19, 2**19] (large enough to wrap u); otherwise binary spikes at a density
  of 0.05 to 0.6;
- 1 to 4 synaptic layers: dense (1 to 16 neurons; excitatory, inhibitory or mixed
  weights of magnitude up to 300, so that Lava clips them; 1 to 8 weight bits, up to
  9 for mixed signs; weight_exp -8..8, sometimes -16 or 16; delays 0..62 in a
  quarter of them) and conv
  while the shape is (C, H, W) (1 to 4 channels, kernels 1..3, stride 1..2, padding
  0..2, dilation 1..2, groups, weights in [-256, 255], weight_exp 0..4 keeping sums
  below 2**31), with or without a flatten before a dense layer;
- neurons with vth 0..2**17 - 1, du in {-1, 0, 4095} or random, dv in {0, 4096} or
  random, bias mantissas up to the int16 limits with bias_exp -24..24;
- resets every 1 to 12 steps with offsets 0..3, or none; 4 to 24 steps; batch 1 or 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from neurodeploy import fixed_point as fx
from neurodeploy.backends.lava import LavaCase, check_lava_limits
from neurodeploy.netlist import Conv, CubaNeuron, Dense, Flatten, Input, Netlist
from neurodeploy.sim import RECORDABLE, Recording
from neurodeploy.simulators import simulator

INPUT_DRIVE = 2**19
WEIGHT_MAG = 300
CONV_SUM_LIMIT = 2**31
INT16_MIN, INT16_MAX = -(2**15), 2**15 - 1


@dataclass
class Mismatch:
    """One value where the simulator and Lava differ."""

    case: int
    layer: int
    var: str
    sample: int
    step: int
    neuron: tuple[int, ...]
    sim: int
    lava: int

    def __str__(self) -> str:
        return (
            f"layer {self.layer} {self.var} sample {self.sample} step {self.step} "
            f"neuron {self.neuron}: sim {self.sim}, lava {self.lava}"
        )


@dataclass
class CaseResult:
    """How one case compared."""

    index: int
    description: str
    mismatching: int = 0
    first: list[Mismatch] = field(default_factory=list)


@dataclass
class Report:
    """Totals over all cases and the cases that mismatched."""

    cases: int
    mismatching: int
    failed: list[CaseResult]

    @property
    def ok(self) -> bool:
        return self.mismatching == 0


# --- the generator ---------------------------------------------------------------


def _neuron(rng: np.random.Generator) -> CubaNeuron:
    choices = [0, rng.integers(1, 64), rng.integers(64, 4096), rng.integers(4096, 2**17)]
    vth = int(rng.choice(choices, p=[0.1, 0.5, 0.3, 0.1]))
    du = int(rng.choice([-1, 0, 4095, rng.integers(0, 4096)], p=[0.15, 0.15, 0.15, 0.55]))
    dv = int(rng.choice([0, 4096, rng.integers(0, 4097)], p=[0.25, 0.1, 0.65]))
    bias_exp = int(rng.integers(-24, 25)) if rng.random() < 0.2 else int(rng.integers(-4, 9))
    return CubaNeuron(vth=vth, du=du, dv=dv, bias_exp=bias_exp)


def _bias(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray | None:
    kind = rng.choice(["none", "small", "full"], p=[0.3, 0.5, 0.2])
    if kind == "none":
        return None
    lo, hi = (-200, 200) if kind == "small" else (INT16_MIN, INT16_MAX)
    return rng.integers(lo, hi + 1, shape)


def _weights(rng: np.random.Generator, shape: tuple[int, ...], mag: int) -> np.ndarray:
    mode = rng.choice(["exc", "inh", "mixed"], p=[0.3, 0.2, 0.5])
    lo, hi = {"exc": (0, mag), "inh": (-mag, 0), "mixed": (-mag, mag)}[mode]
    weight = rng.integers(lo, hi + 1, shape)
    if rng.random() < 0.3:
        weight = weight * (rng.random(shape) < 0.3)
    return weight


def _dense(rng: np.random.Generator, n_in: int) -> Dense:
    n_out = int(rng.integers(1, 17))
    weight = _weights(rng, (n_out, n_in), int(rng.choice([8, 64, WEIGHT_MAG])))
    exp = int(rng.choice([-16, 16])) if rng.random() < 0.1 else int(rng.integers(-8, 9))
    delay = None
    if rng.random() < 0.25:
        delay = rng.integers(0, int(rng.choice([3, 10, 63])), (n_out, n_in))
    return Dense(
        weight=weight,
        neuron=_neuron(rng),
        bias=_bias(rng, (n_out,)),
        weight_exp=exp,
        weight_bits=int(rng.integers(1, 10 if fx.sign_mode(weight) == "mixed" else 9)),
        delay=delay,
    )


def _conv(rng: np.random.Generator, in_shape: tuple[int, int, int]) -> Conv | None:
    c, h, w = in_shape
    groups = int(rng.choice([g for g in (1, 2, 3) if c % g == 0]))
    out = groups * int(rng.integers(1, 5 // groups + 1))
    kernel = tuple(int(k) for k in rng.integers(1, 4, 2))
    stride = tuple(int(s) for s in rng.integers(1, 3, 2))
    padding = tuple(int(p) for p in rng.integers(0, 3, 2))
    dilation = tuple(int(d) for d in rng.integers(1, 3, 2))
    for size, k, p, d in zip((h, w), kernel, padding, dilation):
        if size + 2 * p - d * (k - 1) < 1:
            return None
    weight = _weights(rng, (out, c // groups) + kernel, 256).clip(-256, 255)
    fan_sum = int(np.abs(weight).reshape(out, -1).sum(axis=1).max(initial=0))
    exp = int(rng.integers(0, 5))
    while exp and fan_sum << exp >= CONV_SUM_LIMIT:
        exp -= 1
    layer = Conv(weight=weight, neuron=_neuron(rng), in_shape=in_shape, stride=stride, padding=padding,
                 dilation=dilation, groups=groups, weight_exp=exp)
    bias_shape = rng.choice(["channel", "neuron"])
    layer.bias = _bias(rng, (out,) if bias_shape == "channel" else layer.shape)
    return layer


def _spatial(rng: np.random.Generator) -> tuple[int, int, int]:
    return (int(rng.integers(1, 4)), int(rng.integers(2, 8)), int(rng.integers(2, 8)))


def random_case(rng: np.random.Generator) -> LavaCase:
    """One random netlist with its input, within the ranges Lava computes exactly."""
    shape: tuple[int, ...] = _spatial(rng) if rng.random() < 0.5 else (int(rng.integers(1, 25)),)
    in_shape, layers = shape, []
    if rng.random() < 0.3:
        bias = _bias(rng, shape)
        layers.append(Input(shape=shape, neuron=_neuron(rng), bias=np.zeros(shape, int) if bias is None else bias))
    for _ in range(int(rng.integers(1, 5))):
        layer = _conv(rng, shape) if len(shape) == 3 and rng.random() < 0.6 else None
        if layer is None:
            if len(shape) == 3 and rng.random() < 0.5:
                layers.append(Flatten())
            layer = _dense(rng, int(np.prod(shape)))
        layers.append(layer)
        shape = layer.shape
    net = Netlist(
        layers,
        input_shape=None if isinstance(layers[0], Input) else in_shape,
        reset_interval=None if rng.random() < 0.4 else int(rng.integers(1, 13)),
        reset_offset=int(rng.integers(0, 4)),
    )
    steps, batch = int(rng.integers(4, 25)), 1 if rng.random() < 0.8 else 2
    if isinstance(layers[0], Input):
        drive = rng.integers(-INPUT_DRIVE, INPUT_DRIVE + 1, (batch, steps) + tuple(in_shape))
        spikes = drive * (rng.random(drive.shape) < 0.3)
    else:
        spikes = rng.random((batch, steps) + tuple(in_shape)) < rng.uniform(0.05, 0.6)
    return LavaCase(net, steps, spikes=spikes, record=RECORDABLE)


def generate_cases(n: int, seed: int = 0) -> list[LavaCase]:
    """``n`` random cases, the same for the same seed; each within Lava's limits."""
    rng = np.random.default_rng(seed)
    cases = [random_case(rng) for _ in range(n)]
    for k, case in enumerate(cases):
        check_lava_limits(case, f"generated case {k}")
    return cases


def describe(net: Netlist) -> str:
    """A one-line summary of a netlist: layer kinds and shapes."""
    parts = []
    for layer in net.layers:
        shape = "x".join(str(s) for s in layer.shape)
        parts.append(f"{layer.kind} {shape}")
    return " -> ".join(parts) + (f", reset every {net.reset_interval}" if net.reset_interval else "")


# --- the comparison ----------------------------------------------------------------


def compare(index: int, case: LavaCase, sim: Recording, ref: Recording, keep: int = 5) -> CaseResult:
    """Count the values of s, u and v that differ; keep the first ``keep`` (earliest steps first)."""
    result = CaseResult(index, describe(case.net))
    found: list[Mismatch] = []
    for var in case.record:
        ours, theirs = getattr(sim, var), getattr(ref, var)
        for layer in ours:
            a, b = ours[layer], theirs.get(layer)
            if b is None or a.shape != b.shape:
                found_shape = None if b is None else b.shape
                raise ValueError(f"case {index}, layer {layer} {var}: shapes {a.shape} and {found_shape}")
            diff = np.argwhere(a != b)
            result.mismatching += len(diff)
            for pos in diff[:keep]:
                pos = tuple(int(p) for p in pos)
                found.append(Mismatch(index, layer, var, pos[0], pos[1], pos[2:], int(a[pos]), int(b[pos])))
    result.first = sorted(found, key=lambda m: (m.sample, m.step, m.layer))[:keep]
    return result


def run_conformance(
    n: int,
    seed: int = 0,
    reference: Callable[[Sequence[LavaCase]], list[Recording]] | None = None,
    device: str | None = None,
) -> Report:
    """Generate ``n`` cases, run them in the simulator (torch's on ``device`` if given) and in
    ``reference`` (Lava by default), compare."""
    if reference is None:
        from neurodeploy.backends.lava import run_lava_cases as reference
    cases = generate_cases(n, seed)
    refs = reference(cases)
    failed, total = [], 0
    for k, (case, ref) in enumerate(zip(cases, refs)):
        sim = simulator(device)(case.net, case.steps, spikes=case.spikes, bias=case.bias, record=case.record,
                       reset_interval=case.reset_interval)
        result = compare(k, case, sim, ref)
        total += result.mismatching
        if result.mismatching:
            failed.append(result)
    return Report(len(cases), total, failed)

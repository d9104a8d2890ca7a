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

Kind ``delay`` draws the same networks with delays 0..62 in every dense layer.
Kind ``sdnn`` draws sigma-delta networks (:func:`random_sdnn_case`): a Delta input
layer, or graded (16-bit) or binary messages into the first synapse; then 1 to 4
sigma-delta or sigma layers, dense or conv, with thresholds from 0 to the int32
limit, spike_exp 0..8 and sometimes up to 25, ReLU or no activation, a cumulative
error or none, biases up to the int32 limit once shifted, and input large enough
to wrap the int32 state, and delays in a quarter of the dense layers. Lava's conv
sums graded messages in float32 (torch), so a case is kept only where every conv
sum stays below 2**24, where that is exact.
Kind ``recurrent`` draws CUBA or sigma-delta networks whose dense layers (one at
least) are recurrent, with recurrent weights of the same ranges.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from neurodeploy import fixed_point as fx
from neurodeploy.backends.lava import check_lava_limits, run_lava_cases
from neurodeploy.backends.lava_exchange import LavaCase
from neurodeploy.netlist import (
    INT32_MAX,
    STATE_EXP,
    Conv,
    CubaNeuron,
    DeltaNeuron,
    Dense,
    Flatten,
    Input,
    Layer,
    Netlist,
    RecurrentDense,
    SigmaDeltaNeuron,
    SigmaNeuron,
    pair,
)
from neurodeploy.sim import RECORDABLE, Recording, simulate
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
    choices = [0, int(rng.integers(1, 64)), int(rng.integers(64, 4096)), int(rng.integers(4096, 2**17))]
    vth = int(rng.choice(choices, p=[0.1, 0.5, 0.3, 0.1]))
    du = int(rng.choice([-1, 0, 4095, int(rng.integers(0, 4096))], p=[0.15, 0.15, 0.15, 0.55]))
    dv = int(rng.choice([0, 4096, int(rng.integers(0, 4097))], p=[0.25, 0.1, 0.65]))
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


def _dense(rng: np.random.Generator, n_in: int, delays: bool = False) -> Dense:
    n_out = int(rng.integers(1, 17))
    weight = _weights(rng, (n_out, n_in), int(rng.choice([8, 64, WEIGHT_MAG])))
    exp = int(rng.choice([-16, 16])) if rng.random() < 0.1 else int(rng.integers(-8, 9))
    delay = None
    if delays or rng.random() < 0.25:
        delay = _delay(rng, n_out, n_in)
    return Dense(
        weight=weight,
        neuron=_neuron(rng),
        bias=_bias(rng, (n_out,)),
        weight_exp=exp,
        weight_bits=int(rng.integers(1, 10 if fx.sign_mode(weight) == "mixed" else 9)),
        delay=delay,
    )


def _delay(rng: np.random.Generator, n_out: int, n_in: int) -> np.ndarray:
    """Delays per synapse, per target (axonal) or per source, or one for all, up to 62.

    The form follows from the drawn delays (their sum modulo 4), so that the draws,
    and every case after, are those of per-synapse delays alone.
    """
    delay = rng.integers(0, int(rng.choice([3, 10, 63])), (n_out, n_in))
    part = [delay, delay[:, :1], delay[:1], delay[:1, :1]][int(delay.sum()) % 4]
    return np.broadcast_to(part, (n_out, n_in)).copy()


def _conv(rng: np.random.Generator, in_shape: tuple[int, int, int]) -> Conv | None:
    c, h, w = in_shape
    groups = int(rng.choice([g for g in (1, 2, 3) if c % g == 0]))
    out = groups * int(rng.integers(1, 5 // groups + 1))
    kernel = tuple(int(k) for k in rng.integers(1, 4, 2))
    stride, padding, dilation = pair(rng.integers(1, 3, 2)), pair(rng.integers(0, 3, 2)), pair(rng.integers(1, 3, 2))
    for size, k, p, d in zip((h, w), kernel, padding, dilation):
        if size + 2 * p - d * (k - 1) < 1:
            return None
    weight = _weights(rng, (out, c // groups) + kernel, 256).clip(-256, 255)
    fan_sum = int(np.abs(weight).reshape(out, -1).sum(axis=1).max(initial=0))
    exp = int(rng.integers(0, 5))
    while exp and fan_sum << exp >= CONV_SUM_LIMIT:
        exp -= 1
    layer = Conv(
        weight=weight,
        neuron=_neuron(rng),
        in_shape=in_shape,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        weight_exp=exp,
    )
    bias_shape = rng.choice(["channel", "neuron"])
    layer.bias = _bias(rng, (out,) if bias_shape == "channel" else layer.shape)
    return layer


def _spatial(rng: np.random.Generator) -> tuple[int, int, int]:
    return (int(rng.integers(1, 4)), int(rng.integers(2, 8)), int(rng.integers(2, 8)))


def random_case(rng: np.random.Generator, delays: bool = False) -> LavaCase:
    """One random CUBA netlist with its input, within the ranges Lava computes exactly.

    ``delays``: every dense layer has delays.
    """
    shape: tuple[int, ...] = _spatial(rng) if rng.random() < 0.5 else (int(rng.integers(1, 25)),)
    in_shape = shape
    layers: list[Layer] = []
    if rng.random() < 0.3:
        bias = _bias(rng, shape)
        layers.append(Input(shape=shape, neuron=_neuron(rng), bias=np.zeros(shape, int) if bias is None else bias))
    for _ in range(int(rng.integers(1, 5))):
        layer: Dense | Conv | None = _conv(rng, shape) if len(shape) == 3 and rng.random() < 0.6 else None
        if layer is None:
            if len(shape) == 3 and rng.random() < 0.5:
                layers.append(Flatten())
            layer = _dense(rng, int(np.prod(shape)), delays)
        layers.append(layer)
        shape = layer.shape
    net = Netlist(
        layers,
        input_shape=None if isinstance(layers[0], Input) else in_shape,
        reset_interval=None if rng.random() < 0.4 else int(rng.integers(1, 13)),
        reset_offset=int(rng.integers(0, 4)),
    )
    steps, batch = int(rng.integers(4, 25)), 1 if rng.random() < 0.8 else 2
    spikes: np.ndarray
    if isinstance(layers[0], Input):
        drive = rng.integers(-INPUT_DRIVE, INPUT_DRIVE + 1, (batch, steps) + tuple(in_shape))
        spikes = drive * (rng.random(drive.shape) < 0.3)
    else:
        spikes = rng.random((batch, steps) + tuple(in_shape)) < rng.uniform(0.05, 0.6)
    return LavaCase(net, steps, spikes=spikes, record=RECORDABLE)


def _spike_exp(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 26)) if rng.random() < 0.15 else int(rng.integers(0, 9))


def _graded_vth(rng: np.random.Generator, spike_exp: int) -> int:
    limit = INT32_MAX >> (spike_exp + STATE_EXP)
    return int(
        rng.choice(
            [0, int(rng.integers(0, min(limit, 64) + 1)), int(rng.integers(0, limit + 1)), limit],
            p=[0.25, 0.5, 0.17, 0.08],
        )
    )


def _sigma_delta(rng: np.random.Generator) -> SigmaDeltaNeuron:
    spike_exp = _spike_exp(rng)
    return SigmaDeltaNeuron(
        vth=_graded_vth(rng, spike_exp),
        spike_exp=spike_exp,
        message_bits=int(rng.integers(1, 25)),
        activation=str(rng.choice(["relu", "none"])),
        cum_error=bool(rng.random() < 0.3),
    )


def _graded_bias(rng: np.random.Generator, neuron, shape: tuple[int, ...]) -> np.ndarray | None:
    if not isinstance(neuron, SigmaDeltaNeuron) or rng.random() < 0.3:
        return None
    limit = INT32_MAX >> (neuron.spike_exp + STATE_EXP)
    small = min(limit, 50)
    return rng.integers(-limit - 1, limit + 1, shape) if rng.random() < 0.2 else rng.integers(-small, small + 1, shape)


def _graded_layer(rng: np.random.Generator, shape: tuple[int, ...], last: bool) -> list[Layer]:
    neuron = (
        SigmaNeuron(message_bits=int(rng.integers(1, 25)))
        if rng.random() < (0.5 if last else 0.1)
        else _sigma_delta(rng)
    )
    layer: Dense | Conv | None = _conv(rng, shape) if len(shape) == 3 and rng.random() < 0.6 else None
    out: list[Layer] = []
    if layer is None:
        if len(shape) == 3 and rng.random() < 0.5:
            out.append(Flatten())
        layer = _dense(rng, int(np.prod(shape)))
    layer.neuron = neuron
    layer.bias = _graded_bias(rng, neuron, (layer.shape[0],) if rng.random() < 0.7 else layer.shape)
    if isinstance(layer, Dense) and layer.bias is not None and layer.bias.ndim > 1:
        layer.bias = layer.bias.reshape(-1)[: layer.shape[0]]
    return out + [layer]


def random_sdnn_case(rng: np.random.Generator) -> LavaCase:
    """One random sigma-delta netlist with graded input (see the module's docstring)."""
    shape: tuple[int, ...] = _spatial(rng) if rng.random() < 0.5 else (int(rng.integers(1, 25)),)
    in_shape, bits = shape, 0
    layers: list[Layer] = []
    if rng.random() < 0.5:
        spike_exp = _spike_exp(rng)
        neuron = DeltaNeuron(
            vth=_graded_vth(rng, spike_exp),
            spike_exp=spike_exp,
            message_bits=int(rng.integers(1, 25)),
            cum_error=bool(rng.random() < 0.3),
        )
        layers.append(Input(shape=shape, neuron=neuron, bias=np.zeros(shape, int)))
    else:
        bits = int(rng.choice([0, 16]))
    count = int(rng.integers(1, 5))
    for k in range(count):
        layers += _graded_layer(rng, shape, k == count - 1)
        shape = layers[-1].shape
    net = Netlist(layers, input_shape=None if layers[0].kind == "input" else in_shape, input_message_bits=bits)
    steps, batch = int(rng.integers(4, 25)), 1 if rng.random() < 0.8 else 2
    size = (batch, steps) + tuple(in_shape)
    spikes: np.ndarray
    if bits == 0 and layers[0].kind != "input":
        spikes = rng.random(size) < rng.uniform(0.05, 0.6)
    else:
        top = int(rng.choice([2**6, 2**12, 2**19, 2**24]))
        spikes = rng.integers(-top, top + 1, size) * (rng.random(size) < 0.5)
    return LavaCase(net, steps, spikes=spikes, record=("s", "sigma", "act"))


def graded_sums_exact(case: LavaCase) -> bool:
    """Whether Lava computes the case's graded conv sums exactly: every one below 2**24 (its float32 conv)."""
    if not case.net.graded:
        return True
    rec = simulate(case.net, case.steps, spikes=case.spikes, record=("s",))
    pre = case.spikes
    for i in case.net.neuron_layers:
        layer = case.net.layers[i]
        top = 0 if pre is None else int(np.abs(pre).max(initial=0))
        if isinstance(layer, Conv):
            fan = int(np.abs(layer.weight).reshape(layer.weight.shape[0], -1).sum(axis=1).max(initial=0))
            if (fan << layer.weight_exp) * top >= 2**24:
                return False
        pre = rec.s[i]
    return True


def recurrent_case(rng: np.random.Generator) -> LavaCase:
    """A CUBA or sigma-delta case whose dense layers are recurrent (one at least, none delayed)."""
    while True:
        case = random_sdnn_case(rng) if rng.random() < 0.5 else random_case(rng)
        dense = {i: layer for i, layer in enumerate(case.net.layers) if isinstance(layer, Dense)}
        if dense:
            break
    chosen = [i for i in dense if rng.random() < 0.6] or [int(rng.choice(list(dense)))]
    for i in chosen:
        layer = dense[i]
        n = layer.shape[0]
        weight_rec = _weights(rng, (n, n), int(rng.choice([8, 64, WEIGHT_MAG])))
        bits = layer.weight_bits if fx.sign_mode(weight_rec) == "mixed" else min(layer.weight_bits, 8)
        case.net.layers[i] = RecurrentDense(
            weight=layer.weight,
            neuron=layer.neuron,
            bias=layer.bias,
            weight_exp=layer.weight_exp,
            weight_bits=bits,
            weight_rec=weight_rec,
        )
    case.net.validate()
    return case


KINDS = ("cuba", "sdnn", "recurrent", "delay")
DRAW = {
    "cuba": random_case,
    "sdnn": random_sdnn_case,
    "recurrent": recurrent_case,
    "delay": lambda rng: random_case(rng, delays=True),
}


def _draw(rng: np.random.Generator, kind: str) -> LavaCase:
    while True:
        case = DRAW[kind](rng)
        if graded_sums_exact(case):
            return case


def generate_cases(n: int, seed: int = 0, kind: str = "cuba") -> list[LavaCase]:
    """``n`` random cases of ``kind`` (see :data:`KINDS`; ``all`` cycles through them), the same for
    the same seed; each within Lava's limits."""
    if kind not in KINDS + ("all",):
        raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(KINDS + ('all',))}")
    rng = np.random.default_rng(seed)
    kinds = [KINDS[k % len(KINDS)] if kind == "all" else kind for k in range(n)]
    cases = [_draw(rng, k) for k in kinds]
    for k, case in enumerate(cases):
        check_lava_limits(case, f"generated case {k}")
    return cases


def describe(net: Netlist) -> str:
    """A one-line summary of a netlist: layer kinds, shapes and (sigma-delta) neuron kinds."""
    parts = []
    for layer in net.layers:
        shape = "x".join(str(s) for s in layer.shape)
        neuron = getattr(getattr(layer, "neuron", None), "kind", "")
        parts.append(f"{layer.kind} {shape}" + (f" {neuron}" if neuron else ""))
    return " -> ".join(parts) + (f", reset every {net.reset_interval}" if net.reset_interval else "")


# --- the comparison ----------------------------------------------------------------


def compare(index: int, case: LavaCase, sim: Recording, ref: Recording, *, keep: int = 5) -> CaseResult:
    """Count the values of s, u and v that differ; keep the first ``keep`` (earliest steps first)."""
    result = CaseResult(index, describe(case.net))
    found: list[Mismatch] = []
    for var in case.record:
        ours, theirs = getattr(sim, var), getattr(ref, var)
        if theirs is None:
            continue
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
    *,
    seed: int = 0,
    reference: Callable[[Sequence[LavaCase]], list[Recording]] | None = None,
    kind: str = "cuba",
    device: str | None = None,
) -> Report:
    """Generate ``n`` cases of ``kind``, run them in the simulator (torch's on ``device`` if given) and in
    ``reference`` (Lava by default), compare."""
    if reference is None:
        reference = run_lava_cases
    cases = generate_cases(n, seed, kind)
    refs = reference(cases)
    failed, total = [], 0
    for k, (case, ref) in enumerate(zip(cases, refs)):
        sim = simulator(device)(
            case.net,
            case.steps,
            spikes=case.spikes,
            bias=case.bias,
            record=case.record,
            reset_interval=case.reset_interval,
        )
        result = compare(k, case, sim, ref)
        total += result.mismatching
        if result.mismatching:
            failed.append(result)
    return Report(len(cases), total, failed)

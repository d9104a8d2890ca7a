"""The quantizer: folded float layers -> an integer netlist for a target.

Every integer limit of the target bounds what the quantizer produces: weight
bits and mantissa range, weight exponent range, threshold range, bias mantissa
and exponent ranges, and the decay ranges (:class:`Limits`).

Each neuron layer gets its own scale ``lam``: a float voltage ``x`` is ``lam * x``
in the chip's v units. Then, for weight exponent ``e`` (``<< 6`` is the chip's
input alignment) and bias exponent ``eb``::

    weight mantissa  w = round(W * lam / (64 * 2**e))     (on the target's weight grid)
    threshold        vth = round(V_th * lam / 64)           (compared as vth << 6)
    bias mantissa    b = round(c * lam / 2**eb)             (eb = 6, netx's, when the target allows it)
    current decay    du = round(4096 * current_decay) - 1
    voltage decay    dv = round(4096 * voltage_decay)

A recurrent dense layer's feed-forward and recurrent weights share its scale,
exponent and ``weight_bits`` (8 at most, as ``dense_rec`` holds them). Where a
weight column carries a bias from an always-on neuron (``FloatLayer.bias_column``),
what its rounding loses enters the bias mantissa at its steady state.

A dense layer may be held in ``K = FloatLayer.copies`` copies: the chip holds each
of its ``n`` neurons K times (copy ``c`` of neuron ``i`` is neuron ``c n + i``),
with the same inputs, so the copies spike alike. Each weight that reads the layer
(its recurrent ones, and the next layer's) is then a mantissa on a grid K times as
wide, split across the K copies' synapses (:func:`split_mantissas`): one scale
rounds those weights K times finer, for K times the neurons and K times (K**2
for recurrent weights) the synapses.

The weight grid (:func:`weight_grid`) holds the mantissas a chip with
``weight_bits`` keeps: multiples of ``2**(8 - bits + mixed)`` within the 8-bit
range and the target's mantissa range. ``lam`` is as large as the weight grid,
the threshold range and the exponent range allow (a larger scale rounds the
decays less), then lowered where a calibration run in the simulator shows u
wrapping or v saturating. Calibration picks the weight range from the largest
weight (``max``), a percentile (``percentile``: outliers clip), or whichever of
those gives per-layer spike rates closest to the float model's (``rate``).

:func:`layer_scale` and :meth:`LayerScale.weight` (and ``bias``, ``vth``) give the
same rounding to quantization-aware training, on numpy arrays or on torch tensors
with straight-through gradients.

A membrane readout (the output layer of a network classified by what it
integrates, ``neuron["readout"] == "membrane"``) gets the largest threshold the
target allows, so that its neurons never fire; calibration lowers its scale
where it fires all the same (v at the top of its range), and the netlist's
``meta["readout"]`` tells every consumer to decode v at the window's last step.

Timing: the chip adds one step of latency per synaptic layer. Every layer is
reset (u = v = 0) on the step its first input arrives, through the netlist's
staggered periodic reset, so layer k's step ``k + reset_offset`` is the float
model's step 0; the output window is the last layer's T steps from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from neurodeploy import fixed_point as fx
from neurodeploy.errors import NeurodeployError
from neurodeploy.fold import FloatLayer
from neurodeploy.netlist import Conv, CubaNeuron, Dense, Flatten, Input, Netlist, RecurrentDense
from neurodeploy.sim import conv2d, simulate
from neurodeploy.targets import Target

BIAS_EXP = 6  # netx programs every bias as mantissa << 6
VTH_17_BITS = 2**17 - 1  # Loihi's threshold mantissa is 17 bits wide
CALIBRATIONS = ("max", "percentile", "rate")
PERCENTILES = (100.0, 99.99, 99.9, 99.5)
_SIGN_RANGES = {"exc": (0, 255), "inh": (-255, 0), "mixed": (-256, 254)}  # netx clips mixed 255 to 254


class QuantizeError(NeurodeployError):
    """A layer that cannot be represented within the target's ranges."""


@dataclass(frozen=True)
class Limits:
    """The integer ranges the quantizer fills: a target's, or Loihi's where it gives none."""

    weight_bits: int = 8
    weight_mantissa: tuple[int, int] = (-256, 255)
    weight_exp: tuple[int, int] = (-8, 7)
    vth: tuple[int, int] = (0, VTH_17_BITS)
    bias_mantissa: tuple[int, int] = (-4096, 4095)
    bias_exp: tuple[int, int] = (0, 7)
    du: tuple[int, int] = (0, 4095)
    dv: tuple[int, int] = (0, 4095)

    @classmethod
    def from_target(cls, target: Target) -> Limits:
        """The target's limits; Loihi's defaults for those it leaves out."""
        given = {f.name: getattr(target, f.name) for f in fields(cls)}
        limits: dict[str, Any] = {
            name: tuple(v) if isinstance(v, (list, tuple)) else v for name, v in given.items() if v is not None
        }
        return cls(**limits)

    @property
    def bias_exp_used(self) -> int:
        """netx's bias exponent 6, or the nearest the target allows."""
        return int(np.clip(BIAS_EXP, *self.bias_exp))


@dataclass(frozen=True)
class WeightGrid:
    """The weight mantissas a layer may hold: multiples of ``step`` in [lo, hi]."""

    mode: str  # sign mode: exc, inh or mixed
    lo: int
    hi: int
    step: int
    bits: int  # as the netlist's Dense.weight_bits counts them (a mixed layer's sign among them)

    @property
    def top(self) -> int:
        """The largest magnitude on the side the weights fill."""
        return self.hi if self.hi > 0 else -self.lo


def weight_grid(mode: str, limits: Limits, label: str = "layer") -> WeightGrid:
    """The mantissas a chip with ``limits.weight_bits`` keeps for weights of sign ``mode``.

    A core holds the top ``bits`` of an 8-bit mantissa (a mixed layer spends one on
    the sign), so the step is ``2**(8 - bits + mixed)``; the grid is the 8-bit range
    of the sign mode cut to the target's mantissa range.
    """
    mixed = mode == "mixed"
    bits = min(limits.weight_bits, 8 + mixed)
    step = 1 << (8 - bits + mixed)
    lo, hi = _SIGN_RANGES[mode]
    lo, hi = max(lo, limits.weight_mantissa[0]), min(hi, limits.weight_mantissa[1])
    lo, hi = -(-lo // step) * step, hi // step * step
    if lo > 0 or hi < 0 or (mode != "inh" and hi == 0) or (mode != "exc" and lo == 0):
        raise QuantizeError(
            f"{label}: no nonzero {mode}-sign weight fits {limits.weight_bits}-bit weights (mantissas multiples "
            f"of {step}) within the mantissa range {list(limits.weight_mantissa)}"
        )
    return WeightGrid(mode, lo, hi, step, bits)


def fake_quantize(x, unit: float, lo: int, hi: int, step: int = 1):
    """``x`` rounded to multiples of ``step`` in [lo, hi] counted in ``unit``, back in ``x``'s units.

    A numpy array gives a numpy array; a torch tensor gives a tensor whose gradient
    passes straight through the rounding and clipping.
    """
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return np.clip(np.rint(np.asarray(x, dtype=np.float64) / (unit * step)) * step, lo, hi) * unit
    q = (x.detach() / (unit * step)).round().mul(step).clamp(lo, hi).mul(unit)
    return x + (q - x).detach()


@dataclass(frozen=True)
class LayerScale:
    """How one layer's floats map to the chip's integers: ``lam`` v units a float unit."""

    lam: float
    weight_exp: int
    grid: WeightGrid
    bias_exp: int
    bias_mantissa: tuple[int, int]
    weight_range: float

    @property
    def weight_unit(self) -> float:
        """The float weight of one mantissa unit: ``64 * 2**e / lam``."""
        return 64 * 2.0**self.weight_exp / self.lam

    def weight(self, w):
        """Weights as the chip holds them, in float units (numpy, or torch with straight-through gradients)."""
        return fake_quantize(w, self.weight_unit, self.grid.lo, self.grid.hi, self.grid.step)

    def bias(self, c):
        """Constant drives as the chip holds them, in float units."""
        return fake_quantize(c, 2.0**self.bias_exp / self.lam, *self.bias_mantissa)

    def vth(self, v):
        """Thresholds as the chip compares them, in float units."""
        return fake_quantize(v, 64 / self.lam, 1, 2**62)


def _integers(raw: np.ndarray, lo: int, hi: int, step: int = 1) -> np.ndarray:
    """``raw`` rounded to multiples of ``step`` in [lo, hi], as int64."""
    return np.rint(fake_quantize(raw, 1.0, lo, hi, step)).astype(np.int64)


def chip_decays(du: int, dv: int) -> tuple[float, float]:
    """(current decay, voltage decay) per step, as floats, that integer ``du``, ``dv`` give."""
    return (du + 1) / 4096, dv / 4096


@dataclass
class LayerQuant:
    """How one layer was quantized, for export.json and the report."""

    index: int
    kind: str
    scale: float
    weight_exp: int
    weight_bits: int
    vth: int
    du: int
    dv: int
    weights_clipped: int
    biases_clipped: int
    weight_range: float
    percentile: float
    thresholds_beyond_17_bits: int = 0  # 1 when vth needs more than Loihi's 17-bit mantissa (a wide target)
    bias_exp: int = BIAS_EXP
    copies: int = 1  # how many times the chip holds each neuron
    calibration_u_wraps: int | None = None  # on the calibration inputs; None without calibration
    calibration_v_saturations: int | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Quantized:
    """A quantized network: the netlist, per-layer facts, and the direct-encoding transform."""

    netlist: Netlist
    layers: list[LayerQuant]
    steps: int
    input_transform: dict | None = field(default=None)
    calibration: dict = field(default_factory=dict)  # set by the export pipeline: samples used, or why none

    def input_bias(self, x: np.ndarray) -> np.ndarray:
        """Bias mantissas of the input layer for samples ``x`` (direct encoding only)."""
        if self.input_transform is None:
            raise QuantizeError("this network takes input spikes, not an input bias")
        return input_bias(self.input_transform, x)


def input_bias(transform: dict, x: np.ndarray) -> np.ndarray:
    """The host side of the direct encoding: ``round(lam (A x + c) / 64)`` per neuron, clipped."""
    x = np.asarray(x, dtype=np.float64)
    weight, bias = transform["weight"], transform["bias"]
    if transform["kind"] == "dense":
        z = x.reshape(x.shape[0], -1) @ weight.T + bias
    else:
        z = conv2d(
            x,
            weight,
            stride=transform["stride"],
            padding=transform["padding"],
            dilation=transform["dilation"],
            groups=transform["groups"],
        )
        z = z + bias[None, :, None, None]
    lo, hi = transform["clip"]
    return np.clip(np.rint(z), lo, hi).astype(np.int64)


def decays(neuron: dict, limits: Limits, label: str) -> tuple[int, int]:
    """(du, dv) in Lava's convention from the float decays per step, within the target's ranges."""
    du = round(4096 * float(neuron["current_decay"])) - 1
    dv = round(4096 * float(neuron["voltage_decay"]))
    for name, value, (lo, hi) in (("du", du, limits.du), ("dv", dv, limits.dv)):
        if not lo <= value <= hi:
            raise QuantizeError(f"{label}: decay {name}={value} is outside the target's range [{lo}, {hi}]")
    return du, dv


def _drive_range(layer: FloatLayer) -> float:
    """Largest constant drive |c| (for direct input, |A x + c| over x in [0, 1])."""
    if layer.neuron.get("drive") != "bias":
        return float(np.abs(layer.bias).max(initial=0.0))
    pos = np.clip(layer.weight, 0, None).reshape(layer.weight.shape[0], -1).sum(axis=1)
    neg = np.clip(layer.weight, None, 0).reshape(layer.weight.shape[0], -1).sum(axis=1)
    if layer.kind == "conv":
        return float(np.abs(layer.bias).max(initial=0.0) + max(pos.max(), -neg.min()))
    return float(np.maximum(np.abs(layer.bias + pos), np.abs(layer.bias + neg)).max())


def _exponent_range(layer: FloatLayer, grid: WeightGrid, limits: Limits, label: str) -> tuple[int, int]:
    """The weight exponents the target allows and netx can carry.

    netx stores dense weights as integers and derives exponents <= 0, so a dense
    exponent lies in [-log2(step), 0] (the mantissas stay exact integers); conv
    weights carry no exponent, so only e >= 0 folds into them.
    """
    e_lo, e_hi = limits.weight_exp
    if layer.kind == "conv":
        e_lo = max(e_lo, 0)
    else:
        e_lo, e_hi = max(e_lo, -(grid.step.bit_length() - 1)), min(e_hi, 0)
    if e_lo > e_hi:
        raise QuantizeError(
            f"{label}: the target's weight exponent range {list(limits.weight_exp)} leaves no "
            f"exponent a netx {layer.kind} layer can carry"
        )
    return e_lo, e_hi


def layer_scale(
    layer: FloatLayer,
    *,
    limits: Limits = Limits(),
    pct: float = 100.0,
    exp_shift: int = 0,
    label: str = "layer",
    in_copies: int = 1,
) -> LayerScale:
    """The largest scale every range allows, halved ``exp_shift`` times (by the exponent where it can).

    The threshold must fit the target's ``vth`` and the constant drive its bias
    mantissa; within that, the exponent is the largest at which the weight range
    (the ``pct`` percentile of |W|) fills the weight grid, or the smallest allowed.
    ``in_copies``: how many copies of each input neuron the chip holds (the layer before's).
    """
    vth_f = float(layer.neuron["vth"])
    weights = synapse_weights(layer, in_copies)
    grid = weight_grid(fx.sign_mode(weights), limits, label)
    w_range = float(np.percentile(np.abs(weights), pct)) or 1.0
    drive = _drive_range(layer)
    bias_exp = limits.bias_exp_used
    lam_max = limits.vth[1] * 64 / vth_f
    if drive > 0:
        lam_max = min(lam_max, max(-limits.bias_mantissa[0], limits.bias_mantissa[1]) * 2**bias_exp / drive)
    e_lo, e_hi = _exponent_range(layer, grid, limits, label)
    e = int(np.clip(np.floor(np.log2(lam_max * w_range / (64 * grid.top))), e_lo, e_hi))
    lam = min(64 * 2**e * grid.top / w_range, lam_max) / 2**exp_shift
    if exp_shift and e - exp_shift >= e_lo:
        e -= exp_shift
    return LayerScale(lam, e, grid, bias_exp, limits.bias_mantissa, w_range)


def synapse_weights(layer: FloatLayer, in_copies: int = 1) -> np.ndarray:
    """The float weight each synapse of ``layer`` holds, its recurrent ones among them (one scale covers
    both): a weight split across the copies of its input neuron counts as its share."""
    if layer.weight_rec is None:
        return layer.weight / in_copies
    return np.concatenate([layer.weight.ravel() / in_copies, layer.weight_rec.ravel() / layer.copies])


def _clipped(raw: np.ndarray, lo: int, hi: int, step: int = 1) -> int:
    """How many of ``raw`` lie beyond [lo, hi] by more than half a step."""
    return int(np.sum((raw < lo - step / 2) | (raw > hi + step / 2)))


def _weights(
    weight: np.ndarray, scale: LayerScale, limits: Limits, label: str, copies: int = 1
) -> tuple[np.ndarray, WeightGrid, int]:
    """(mantissas of the float ``weight``, the grid they lie on, how many clipped); each mantissa the
    total over ``copies`` synapses on that grid (:func:`split_mantissas` splits it).

    Where rounding zeroes every weight of one sign, the matrix changes sign mode;
    its mantissas are then cut to that mode's grid (Lava would clip them there).
    """
    raw = weight / scale.weight_unit
    grid = scale.grid
    mant = _integers(raw, copies * grid.lo, copies * grid.hi, grid.step)
    mode = fx.sign_mode(mant)
    if mode != grid.mode and np.any(mant):
        grid = weight_grid(mode, limits, label)
        mant = np.clip(mant, copies * grid.lo, copies * grid.hi)
    return mant, grid, _clipped(raw, copies * grid.lo, copies * grid.hi, grid.step)


def split_mantissas(total: np.ndarray, copies: int, step: int) -> np.ndarray:
    """Mantissas ``total`` (out, n), each on a grid ``copies`` times as wide, as ``copies`` synapses
    (out, copies * n), copy ``c`` of column ``i`` at ``c n + i``: multiples of ``step`` that differ by at
    most one step and sum to the total, so each lies on the grid when the total lies on the wide one."""
    base = total // (copies * step) * step
    extra = (total - copies * base) // step  # how many copies take one step more: 0 .. copies - 1
    return np.concatenate([base + step * (c < extra) for c in range(copies)], axis=1)


def _as_held(mant: np.ndarray, in_copies: int, copies: int, step: int) -> np.ndarray:
    """Mantissas (out, in) as the chip holds them: columns split across ``in_copies`` copies of each input
    neuron, rows repeated for the layer's ``copies``; unchanged where both are 1."""
    if in_copies > 1:
        mant = split_mantissas(mant, in_copies, step)
    return np.tile(mant, (copies, 1)) if copies > 1 else mant


def _quantize_layer(
    layer: FloatLayer,
    index: int,
    exp_shift: int,
    pct: float,
    limits: Limits,
    label: str,
    scale: LayerScale | None = None,
    in_copies: int = 1,
):
    """The integer layer's weights, recurrent weights (or None), bias, neuron and facts, at the largest
    scale the ranges allow, halved ``exp_shift`` times, or at ``scale`` when given; its rows repeated
    for its copies, and its columns split across its inputs' ``in_copies``.

    A recurrent layer's two matrices share one ``weight_bits``, and 9 bits need both of mixed sign,
    so such a layer is held to 8-bit weights.
    """
    if layer.weight_rec is not None:
        limits = replace(limits, weight_bits=min(limits.weight_bits, 8))
    if max(layer.copies, in_copies) > 1 and layer.kind != "dense":
        raise QuantizeError(f"{label}: a layer held in copies, and the layer after it, must be dense")
    du, dv = decays(layer.neuron, limits, label)
    scale = scale or layer_scale(layer, limits=limits, pct=pct, exp_shift=exp_shift, label=label, in_copies=in_copies)
    vth = limits.vth[1] if is_readout(layer) else round(float(layer.neuron["vth"]) * scale.lam / 64)
    if vth < max(1, limits.vth[0]):
        raise QuantizeError(
            f"{label}: threshold rounds to {vth} at scale {scale.lam:.3g}, below the target's "
            f"range [{max(1, limits.vth[0])}, {limits.vth[1]}]"
        )
    mant, grid, clipped_w = _weights(layer.weight, scale, limits, label, in_copies)
    mant_rec = None
    if layer.weight_rec is not None:
        mant_rec, grid_rec, clipped_rec = _weights(
            layer.weight_rec, scale, limits, f"{label} (recurrent)", layer.copies
        )
        clipped_w += clipped_rec
    braw = (layer.bias + _column_residual(layer, mant, mant_rec, scale.weight_unit, du)) * scale.lam / 2**scale.bias_exp
    bias = np.tile(_integers(braw, *limits.bias_mantissa), layer.copies)
    mant = _as_held(mant, in_copies, layer.copies, grid.step)
    if mant_rec is not None:
        mant_rec = _as_held(mant_rec, layer.copies, layer.copies, grid_rec.step)
    neuron = CubaNeuron(vth=vth, du=du, dv=dv, bias_exp=scale.bias_exp)
    facts = LayerQuant(
        index,
        layer.kind if mant_rec is None else RecurrentDense.kind,
        scale.lam,
        scale.weight_exp,
        grid.bits,
        vth,
        du,
        dv,
        clipped_w,
        _clipped(braw, *limits.bias_mantissa),
        scale.weight_range,
        pct,
        thresholds_beyond_17_bits=int(vth > VTH_17_BITS),
        bias_exp=scale.bias_exp,
        copies=layer.copies,
    )
    return mant, mant_rec, bias, neuron, facts


def _column_residual(layer: FloatLayer, mant, mant_rec, weight_unit: float, du: int) -> np.ndarray | float:
    """What the chip's current loses of a bias carried by an always-on neuron (``layer.bias_column``),
    as a constant drive of v: the float bias's settled current less the rounded weight's on the
    chip's decay (:func:`chip_decays`). The neuron's own bias adds it, exact once the current has settled."""
    if layer.bias_column is None:
        return 0.0
    exact = getattr(layer, layer.bias_column)[:, -1] / float(layer.neuron["current_decay"])
    held = (mant if layer.bias_column == "weight" else mant_rec)[:, -1] * weight_unit / chip_decays(du, 0)[0]
    return exact - held


def is_readout(layer: FloatLayer) -> bool:
    """Whether ``layer`` is a membrane readout (its neurons integrate and never fire)."""
    return layer.neuron.get("readout") == "membrane"


def _build(
    layers: list[FloatLayer],
    steps: int,
    shifts: list[int],
    pcts: list[float],
    limits: Limits,
    scales: list[LayerScale] | None = None,
) -> Quantized:
    direct = layers[0].neuron.get("drive") == "bias"
    out: list = []
    facts: list[LayerQuant] = []
    transform = None
    for k, layer in enumerate(layers):
        label = f"layer {k} ({layer.kind} {'x'.join(map(str, layer.in_shape))}->{'x'.join(map(str, layer.shape))})"
        if layer.copies > 1 and k == len(layers) - 1:
            raise QuantizeError(f"{label}: the output layer cannot be held in copies")
        mant, mant_rec, bias, neuron, fact = _quantize_layer(
            layer, k, shifts[k], pcts[k], limits, label, scales[k] if scales else None, layers[k - 1].copies if k else 1
        )
        facts.append(fact)
        if k == 0 and direct:
            transform = _direct_transform(layer, fact.scale, neuron.bias_exp, limits)
            out.append(Input(shape=layer.shape, neuron=neuron, bias=np.zeros(layer.shape, np.int64)))
            continue
        if layer.flatten_before and len(layer.in_shape) > 1 and out:
            out.append(Flatten())
        if layer.kind == "dense":
            cls, extra = (Dense, {}) if mant_rec is None else (RecurrentDense, {"weight_rec": mant_rec})
            out.append(
                cls(
                    weight=mant,
                    neuron=neuron,
                    bias=bias,
                    weight_exp=fact.weight_exp,
                    weight_bits=fact.weight_bits,
                    **extra,
                )
            )
        else:
            out.append(Conv(weight=mant, neuron=neuron, bias=bias, weight_exp=fact.weight_exp, **layer.conv))
    latency = sum(isinstance(layer, (Dense, Conv)) for layer in out)
    offset = 0 if direct else 1
    start = (len(layers) - 1) + offset
    net = Netlist(
        out,
        input_shape=None if direct else _input_shape(layers[0]),
        reset_interval=steps + latency,
        reset_offset=offset,
        output_window=(start, start + steps),
        meta={
            "steps": steps,
            "encoding_input": "bias" if direct else "spikes",
            **({"readout": "membrane"} if is_readout(layers[-1]) else {}),
        },
    )
    return Quantized(net, facts, steps, transform)


def _input_shape(first: FloatLayer) -> tuple[int, ...]:
    """Input spikes reach a first dense layer flattened (netx has no leading flatten)."""
    return (int(np.prod(first.in_shape)),) if first.kind == "dense" else first.in_shape


def _direct_transform(layer: FloatLayer, lam: float, bias_exp: int, limits: Limits) -> dict:
    unit = lam / 2**bias_exp
    return {
        "kind": layer.kind,
        "weight": layer.weight * unit,
        "bias": layer.bias * unit,
        "clip": limits.bias_mantissa,
        "in_shape": layer.in_shape,
        **layer.conv,
    }


def host_layer(q: Quantized) -> dict | None:
    """The direct encoding's first hidden layer: its synapses run on the host, its neurons on the chip."""
    t = q.input_transform
    if t is None:
        return None
    weight, shape = np.asarray(t["weight"]), tuple(q.netlist.layers[0].shape)
    dims = lambda s: "x".join(str(int(v)) for v in s)  # noqa: E731
    if t["kind"] == "dense":
        text, products = f"dense {weight.shape[1]}->{weight.shape[0]}", weight.size
    else:
        text, products = f"conv {dims(t['in_shape'])}->{dims(shape)}", int(np.prod(shape) * np.prod(weight.shape[1:]))
    return {
        "layer": 0,
        "description": f"{text}, synapses on the host",
        "host_multiply_adds": int(products),
        "note": (
            f"Layer 0 is the model's first hidden layer ({text}). The direct encoding computes its synaptic "
            f"input on the host, {int(products):,} multiply-adds a sample, and sends each of its "
            f"{int(np.prod(shape)):,} neurons the result as a bias; the neurons run on the chip. That host work "
            "is not on the chip, and not in the energy or latency figures."
        ),
    }


def layer_labels(q: Quantized) -> list[str]:
    """``layer k (description)`` for the k-th neuron layer of ``q``, numbered as its facts (``q.layers``)
    and the report's tables are; the direct encoding's host layer named as such."""
    from neurodeploy.faults import layer_labels as netlist_labels

    labels, host = netlist_labels(q.netlist, [fact.index for fact in q.layers]), host_layer(q)
    if host is not None:
        labels[0] = f"layer 0 ({host['description']})"
    return labels


def run_steps(q: Quantized) -> int:
    """Steps to run one sample: the float window plus the chip's latency."""
    return q.netlist.window[1]


def run_quantized(q: Quantized, inputs: np.ndarray, record=("s",)):
    """Simulate ``q`` on encoded inputs: spikes (B, T, ...) or samples (B, ...) for direct."""
    steps = run_steps(q)
    if q.input_transform is not None:
        return simulate(q.netlist, steps, bias=q.input_bias(inputs), record=record)
    shape = tuple(q.netlist.input_shape or ())
    pad = np.zeros((inputs.shape[0], steps) + shape, dtype=inputs.dtype)
    pad[:, : inputs.shape[1]] = inputs.reshape(inputs.shape[:2] + shape)
    return simulate(q.netlist, steps, spikes=pad, record=record)


def _overflowing_layers(q: Quantized, calib: np.ndarray) -> list[int]:
    """Neuron layers whose u wraps or v saturates on ``calib``; the counts go into their facts."""
    rec = run_quantized(q, calib, record=())
    readout = q.netlist.meta.get("readout") == "membrane"
    for k, (fact, i) in enumerate(zip(q.layers, q.netlist.neuron_layers)):
        fired = int(rec.spike_count[i]) if readout and k == len(q.layers) - 1 else 0  # v reached the top
        fact.calibration_u_wraps, fact.calibration_v_saturations = (
            int(rec.u_wraps[i]),
            int(rec.v_saturations[i]) + fired,
        )
    return [k for k, fact in enumerate(q.layers) if fact.calibration_u_wraps or fact.calibration_v_saturations]


def layer_rates(q: Quantized, calib: np.ndarray) -> list[float]:
    """Mean spike rate per neuron layer over the output-aligned window of each layer."""
    rec = run_quantized(q, calib)
    rates = []
    for k, i in enumerate(q.netlist.neuron_layers):
        start = k + q.netlist.reset_offset
        rates.append(float(rec.s[i][:, start : start + q.steps].mean()))
    return rates


def quantize(
    layers: list[FloatLayer],
    steps: int,
    *,
    limits: Limits = Limits(),
    calibration: np.ndarray | None = None,
    method: str = "max",
    float_rates: list[float] | None = None,
    scales: list[LayerScale] | None = None,
) -> Quantized:
    """Quantize folded float layers; ``calibration`` holds encoded inputs for the checks.

    ``scales`` (one a layer, from quantization-aware training) are used as they are:
    calibration then counts faults and changes nothing.
    """
    if method not in CALIBRATIONS:
        raise QuantizeError(f"unknown calibration {method!r}; choose one of {', '.join(CALIBRATIONS)}")
    n = len(layers)
    if scales is not None:
        if len(scales) != n:
            raise QuantizeError(f"{len(scales)} trained scales for {n} neuron layers")
        q = _build(layers, steps, [0] * n, [100.0] * n, limits, scales)
        if calibration is not None:
            _overflowing_layers(q, calibration)
        return q
    pcts = [100.0] * n if method == "max" else [PERCENTILES[2]] * n
    if method == "rate":
        if calibration is None or float_rates is None:
            raise QuantizeError("calibration 'rate' needs calibration inputs and the float model's spike rates")
        pcts = _rate_search(layers, steps, limits, calibration, float_rates)
    shifts = [0] * n
    q = _build(layers, steps, shifts, pcts, limits)
    if calibration is None:
        return q
    for _ in range(limits.weight_exp[1] - limits.weight_exp[0]):
        bad = _overflowing_layers(q, calibration)
        if not bad:
            break
        for k in bad:
            shifts[k] += 1
        q = _build(layers, steps, shifts, pcts, limits)
    else:  # out of halvings (or none allowed): count what is left
        _overflowing_layers(q, calibration)
    return q


def _rate_search(layers, steps, limits, calibration, float_rates) -> list[float]:
    """Per layer, in order, the percentile whose integer spike rate is closest to the float one."""
    pcts = [100.0] * len(layers)
    for k in range(len(layers)):
        errors = []
        for p in PERCENTILES:
            trial = pcts[:k] + [p] + pcts[k + 1 :]
            rate = layer_rates(_build(layers, steps, [0] * len(layers), trial, limits), calibration)[k]
            errors.append(abs(rate - float_rates[k]))
        pcts[k] = PERCENTILES[int(np.argmin(errors))]
    return pcts

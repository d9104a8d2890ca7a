"""The quantizer: folded float layers -> an integer netlist for a target.

Each neuron layer gets its own scale ``lam``: a float voltage ``x`` is ``lam * x``
in the chip's v units. Then, for weight exponent ``e`` (``<< 6`` is the chip's
input alignment)::

    weight mantissa  w = round(W * lam / (64 * 2**e))     (8 bits, with sign)
    threshold        vth = round(V_th * lam / 64)           (compared as vth << 6)
    bias mantissa    b = round(c * lam / 64)                (bias_exp = 6, as netx)
    current decay    du = round(4096 * current_decay) - 1
    voltage decay    dv = round(4096 * voltage_decay)

``lam`` is as large as the weight range, the threshold range and the exponent
range allow (a larger scale rounds the decays less), then lowered where a
calibration run in the simulator shows u wrapping or v saturating. Calibration
picks the weight range from the largest weight (``max``), a percentile
(``percentile``: outliers clip), or whichever of those gives per-layer spike
rates closest to the float model's (``rate``).

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

from dataclasses import dataclass, field

import numpy as np

from neurodeploy import fixed_point as fx
from neurodeploy.errors import NeurodeployError
from neurodeploy.fold import FloatLayer
from neurodeploy.netlist import Conv, CubaNeuron, Dense, Flatten, Input, Netlist
from neurodeploy.sim import conv2d, simulate

BIAS_EXP = 6  # netx programs every bias as mantissa << 6
VTH_17_BITS = 2**17 - 1  # Loihi's threshold mantissa is 17 bits wide
CALIBRATIONS = ("max", "percentile", "rate")
PERCENTILES = (100.0, 99.99, 99.9, 99.5)


class QuantizeError(NeurodeployError):
    """A layer that cannot be represented within the target's ranges."""


@dataclass(frozen=True)
class Limits:
    """The ranges the quantizer fills (a target's, or Loihi's defaults)."""

    weight_exp: tuple[int, int] = (-8, 7)
    vth_max: int = VTH_17_BITS
    bias_mantissa: tuple[int, int] = (-4096, 4095)
    decay_max: int = 4095

    @classmethod
    def from_target(cls, target) -> Limits:
        base = cls()
        return cls(
            weight_exp=tuple(target.weight_exp) if target.weight_exp else base.weight_exp,
            vth_max=target.vth[1] if target.vth else base.vth_max,
            bias_mantissa=tuple(target.bias_mantissa) if target.bias_mantissa else base.bias_mantissa,
            decay_max=target.du[1] if target.du else base.decay_max,
        )


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
        z = conv2d(x, weight, transform["stride"], transform["padding"], transform["dilation"], transform["groups"])
        z = z + bias[None, :, None, None]
    lo, hi = transform["clip"]
    return np.clip(np.rint(z), lo, hi).astype(np.int64)


def decays(neuron: dict, limits: Limits, label: str) -> tuple[int, int]:
    """(du, dv) in Lava's convention from the float decays per step."""
    du = int(round(4096 * float(neuron["current_decay"]))) - 1
    dv = int(round(4096 * float(neuron["voltage_decay"])))
    if not 0 <= du <= limits.decay_max or not 0 <= dv <= limits.decay_max:
        raise QuantizeError(f"{label}: decays du={du}, dv={dv} outside [0, {limits.decay_max}]")
    return du, dv


def _weight_grid(weight: np.ndarray) -> tuple[int, int, int]:
    """(lo, hi, step) of the mantissas for the sign mode of ``weight``."""
    mode = fx.sign_mode(weight)
    return {"exc": (0, 255, 1), "inh": (-255, 0, 1), "mixed": (-256, 254, 2)}[mode]


def _drive_range(layer: FloatLayer) -> float:
    """Largest constant drive |c| (for direct input, |A x + c| over x in [0, 1])."""
    if layer.neuron.get("drive") != "bias":
        return float(np.abs(layer.bias).max(initial=0.0))
    pos = np.clip(layer.weight, 0, None).reshape(layer.weight.shape[0], -1).sum(axis=1)
    neg = np.clip(layer.weight, None, 0).reshape(layer.weight.shape[0], -1).sum(axis=1)
    if layer.kind == "conv":
        return float(np.abs(layer.bias).max(initial=0.0) + max(pos.max(), -neg.min()))
    return float(np.maximum(np.abs(layer.bias + pos), np.abs(layer.bias + neg)).max())


def _scale(layer: FloatLayer, pct: float, limits: Limits) -> tuple[float, int, float]:
    """(lam, weight exponent, weight range): the largest scale every range allows.

    The threshold must fit ``vth_max`` and the constant drive the bias mantissa
    (at ``bias_exp`` 6); within that, the exponent is the largest at which the
    weight range fills the mantissa, or the smallest allowed one. netx limits the
    exponent to <= 0 for dense layers and >= 0 for conv layers.
    """
    vth_f = float(layer.neuron["vth"])
    lo, hi, _ = _weight_grid(layer.weight)
    w_top = hi if hi > 0 else -lo
    w_range = float(np.percentile(np.abs(layer.weight), pct)) or 1.0
    drive = _drive_range(layer)
    lam_max = limits.vth_max * 64 / vth_f
    if drive > 0:
        lam_max = min(lam_max, max(-limits.bias_mantissa[0], limits.bias_mantissa[1]) * 64 / drive)
    e_lo, e_hi = limits.weight_exp
    if layer.kind == "conv":
        e_lo = max(e_lo, 0)  # netx conv weights carry no exponent: only e >= 0 folds in
    else:
        e_hi = min(e_hi, 0)  # netx stores 8-bit dense weights and derives exponents <= 0
    e = int(np.clip(np.floor(np.log2(lam_max * w_range / (64 * w_top))), e_lo, e_hi))
    lam = min(64 * 2**e * w_top / w_range, lam_max)
    return lam, e, w_range


def _quantize_layer(layer: FloatLayer, index: int, exp_shift: int, pct: float, limits: Limits, label: str):
    """The integer layer (and its facts) at the largest scale the ranges allow, halved ``exp_shift`` times."""
    du, dv = decays(layer.neuron, limits, label)
    lo, hi, step = _weight_grid(layer.weight)
    lam, e, w_range = _scale(layer, pct, limits)
    lam /= 2**exp_shift
    if exp_shift and e - exp_shift >= limits.weight_exp[0] and (layer.kind == "dense" or e - exp_shift >= 0):
        e -= exp_shift
    vth = int(round(float(layer.neuron["vth"]) * lam / 64))
    if is_readout(layer):
        vth = limits.vth_max
    if vth < 1:
        raise QuantizeError(f"{label}: threshold rounds to {vth} at scale {lam:.3g}")
    raw = layer.weight * lam / (64 * 2**e)
    mant = np.clip(np.rint(raw / step) * step, lo, hi).astype(np.int64)
    clipped_w = int(np.sum((raw < lo - step / 2) | (raw > hi + step / 2)))
    braw = layer.bias * lam / 64
    b_lo, b_hi = limits.bias_mantissa
    bias = np.clip(np.rint(braw), b_lo, b_hi).astype(np.int64)
    clipped_b = int(np.sum((braw < b_lo - 0.5) | (braw > b_hi + 0.5)))
    neuron = CubaNeuron(vth=vth, du=du, dv=dv, bias_exp=BIAS_EXP)
    facts = LayerQuant(index, layer.kind, lam, e, 8, vth, du, dv, clipped_w, clipped_b, w_range, pct,
                       thresholds_beyond_17_bits=int(vth > VTH_17_BITS))
    return mant, bias, neuron, facts


def is_readout(layer: FloatLayer) -> bool:
    """Whether ``layer`` is a membrane readout (its neurons integrate and never fire)."""
    return layer.neuron.get("readout") == "membrane"


def _build(layers: list[FloatLayer], steps: int, shifts: list[int], pcts: list[float], limits: Limits) -> Quantized:
    direct = layers[0].neuron.get("drive") == "bias"
    out: list = []
    facts: list[LayerQuant] = []
    transform = None
    for k, layer in enumerate(layers):
        label = f"layer {k} ({layer.kind} {'x'.join(map(str, layer.in_shape))}->{'x'.join(map(str, layer.shape))})"
        mant, bias, neuron, fact = _quantize_layer(layer, k, shifts[k], pcts[k], limits, label)
        facts.append(fact)
        if k == 0 and direct:
            transform = _direct_transform(layer, fact.scale, limits)
            out.append(Input(shape=layer.shape, neuron=neuron, bias=np.zeros(layer.shape, np.int64)))
            continue
        if layer.flatten_before and len(layer.in_shape) > 1 and out:
            out.append(Flatten())
        if layer.kind == "dense":
            out.append(Dense(weight=mant, neuron=neuron, bias=bias, weight_exp=fact.weight_exp, weight_bits=8))
        else:
            out.append(Conv(weight=mant, neuron=neuron, bias=bias, weight_exp=fact.weight_exp, **layer.conv))
    latency = sum(isinstance(layer, (Dense, Conv)) for layer in out)
    offset = 0 if direct else 1
    start = (len(layers) - 1) + offset
    net = Netlist(
        out, input_shape=None if direct else _input_shape(layers[0]), reset_interval=steps + latency,
        reset_offset=offset, output_window=(start, start + steps),
        meta={"steps": steps, "encoding_input": "bias" if direct else "spikes",
              **({"readout": "membrane"} if is_readout(layers[-1]) else {})},
    )
    return Quantized(net, facts, steps, transform)


def _input_shape(first: FloatLayer) -> tuple[int, ...]:
    """Input spikes reach a first dense layer flattened (netx has no leading flatten)."""
    return (int(np.prod(first.in_shape)),) if first.kind == "dense" else first.in_shape


def _direct_transform(layer: FloatLayer, lam: float, limits: Limits) -> dict:
    return {"kind": layer.kind, "weight": layer.weight * lam / 64, "bias": layer.bias * lam / 64,
            "clip": limits.bias_mantissa, **layer.conv}


def run_steps(q: Quantized) -> int:
    """Steps to run one sample: the float window plus the chip's latency."""
    return q.netlist.output_window[1]


def run_quantized(q: Quantized, inputs: np.ndarray, record=("s",)):
    """Simulate ``q`` on encoded inputs: spikes (B, T, ...) or samples (B, ...) for direct."""
    steps = run_steps(q)
    if q.input_transform is not None:
        return simulate(q.netlist, steps, bias=q.input_bias(inputs), record=record)
    shape = tuple(q.netlist.input_shape)
    pad = np.zeros((inputs.shape[0], steps) + shape, dtype=inputs.dtype)
    pad[:, : inputs.shape[1]] = inputs.reshape(inputs.shape[:2] + shape)
    return simulate(q.netlist, steps, spikes=pad, record=record)


def _overflowing_layers(q: Quantized, calib: np.ndarray) -> list[int]:
    """Neuron layers whose u wraps or v saturates on ``calib``; the counts go into their facts."""
    rec = run_quantized(q, calib, record=())
    readout = q.netlist.meta.get("readout") == "membrane"
    for k, (fact, i) in enumerate(zip(q.layers, q.netlist.neuron_layers)):
        fired = int(rec.spike_count[i]) if readout and k == len(q.layers) - 1 else 0  # v reached the top
        fact.calibration_u_wraps, fact.calibration_v_saturations = int(rec.u_wraps[i]), int(rec.v_saturations[i]) + fired
    return [k for k, fact in enumerate(q.layers) if fact.calibration_u_wraps or fact.calibration_v_saturations]


def layer_rates(q: Quantized, calib: np.ndarray) -> list[float]:
    """Mean spike rate per neuron layer over the output-aligned window of each layer."""
    rec = run_quantized(q, calib)
    rates = []
    for k, i in enumerate(q.netlist.neuron_layers):
        start = k + q.netlist.reset_offset
        rates.append(float(rec.s[i][:, start:start + q.steps].mean()))
    return rates


def quantize(
    layers: list[FloatLayer],
    steps: int,
    limits: Limits = Limits(),
    calibration: np.ndarray | None = None,
    method: str = "max",
    float_rates: list[float] | None = None,
) -> Quantized:
    """Quantize folded float layers; ``calibration`` holds encoded inputs for the checks."""
    if method not in CALIBRATIONS:
        raise QuantizeError(f"unknown calibration {method!r}; choose one of {', '.join(CALIBRATIONS)}")
    n = len(layers)
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
            trial = pcts[:k] + [p] + pcts[k + 1:]
            rate = layer_rates(_build(layers, steps, [0] * len(layers), trial, limits), calibration)[k]
            errors.append(abs(rate - float_rates[k]))
        pcts[k] = PERCENTILES[int(np.argmin(errors))]
    return pcts

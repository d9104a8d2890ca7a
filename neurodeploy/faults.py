"""Numerical faults of a quantized netlist, counted per neuron layer, and the ``--strict`` check.

The quantizer counts weights and biases clipped to their mantissa ranges and
thresholds beyond Loihi's 17-bit mantissa; the simulator counts u wrapping and
v saturating at 24 bits. ``export``, ``run`` and ``compare`` report the counts;
with ``--strict`` any nonzero count is an error naming the layer and the count.
"""

from __future__ import annotations

from neurodeploy.counters import FAULTS
from neurodeploy.errors import NeurodeployError
from neurodeploy.netlist import describe_layer, is_graded

QUANTIZER = ("weights_clipped", "biases_clipped", "thresholds_beyond_17_bits")

Counts = list[dict[str, int]]  # one dict a neuron layer, counter name -> count


class NumericalFaultError(NeurodeployError):
    """A fault counted under ``--strict``; the message names every layer and count."""


def quantizer_counts(facts) -> Counts:
    """The quantizer's counts from its per-layer facts (:class:`neurodeploy.quantize.LayerQuant`)."""
    return [{name: int(getattr(fact, name)) for name in QUANTIZER} for fact in facts]


def calibration_counts(facts) -> Counts:
    """The simulator's counts on the calibration inputs, where a calibration ran."""
    return [
        {}
        if fact.calibration_u_wraps is None
        else {"u_wraps": fact.calibration_u_wraps, "v_saturations": fact.calibration_v_saturations}
        for fact in facts
    ]


def simulator_counts(rec, net) -> Counts:
    """The counts of a :class:`neurodeploy.sim.Recording` of ``net``; none for a sigma-delta layer, which
    has no u or v (its int32 state wraps silently, as on the chip)."""
    return [
        {} if is_graded(net.layers[i].neuron) else {name: int(getattr(rec, name).get(i, 0)) for name in FAULTS}
        for i in net.neuron_layers
    ]


def merged(*counts: Counts) -> Counts:
    """Layer by layer, the counters of every source together."""
    return [{k: v for layer in layers for k, v in layer.items()} for layers in zip(*counts)]


def layer_labels(net, numbers: list[int] | None = None) -> list[str]:
    """``layer i (description)`` for each neuron layer of ``net``: i its index in ``net.layers``, as
    ``inspect`` and the recordings number layers, or the matching entry of ``numbers``."""
    numbers = net.neuron_layers if numbers is None else numbers
    return [f"layer {n} ({describe_layer(net.layers[i])})" for n, i in zip(numbers, net.neuron_layers)]


def total(counts: Counts) -> int:
    return sum(sum(layer.values()) for layer in counts)


def summary(counts: Counts, labels: list[str]) -> dict:
    """The JSON form: the total and, per layer, its label and counts."""
    return {"total": total(counts), "layers": [{"layer": label, **layer} for label, layer in zip(labels, counts)]}


def from_summary(found: dict) -> tuple[Counts, list[str]]:
    """The (counts, labels) a :func:`summary` was made from."""
    layers = found["layers"]
    return [{k: v for k, v in layer.items() if k != "layer"} for layer in layers], [layer["layer"] for layer in layers]


def lines(counts: Counts, labels: list[str], nonzero: bool = False) -> list[str]:
    """One line a layer with every count (none for a layer without counters); with ``nonzero``, only
    the counts above zero and the layers that have one."""
    shown = [{k: v for k, v in layer.items() if v or not nonzero} for layer in counts]
    return [
        f"{label}: " + ", ".join(f"{_words(name)} {value}" for name, value in layer.items())
        for label, layer in zip(labels, shown)
        if layer
    ]


def require_none(counts: Counts, labels: list[str], where: str) -> None:
    """Raise :class:`NumericalFaultError` naming each layer and count that is not zero."""
    found = [
        f"{label}: " + ", ".join(f"{value} {_words(name)}" for name, value in layer.items() if value)
        for label, layer in zip(labels, counts)
        if any(layer.values())
    ]
    if found:
        raise NumericalFaultError(f"{where}: --strict: numerical faults: " + "; ".join(found))


def _words(name: str) -> str:
    return name.replace("_", " ")

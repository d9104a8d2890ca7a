"""The energy and latency of one inference on a placement (see :mod:`neurodeploy.mapping`).

The cost of an inference is the operations counted (by the simulator, or from an
assumed spike rate) times the target's per-operation figures; every term keeps
its count, unit cost and target key so that a report can print the arithmetic.
A sigma-delta layer's spikes are graded messages: each carries the layer's
``message_bits`` (netx's ``messageBits``, 16 by default in lava-dl 0.6's
``netx.hdf5.Network``), and the payload bits sent are counted beside the spikes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neurodeploy.mapping import Mapping
from neurodeploy.targets import Target


@dataclass(frozen=True)
class Activity:
    """Operations of one inference per neuron layer index, and what the counts rest on."""

    steps: int
    synaptic_events: dict[int, float]
    neuron_updates: dict[int, float]
    spikes: dict[int, float]
    basis: str
    neuron_spikes: dict[int, np.ndarray] = field(default_factory=dict)  # per neuron (C order), where recorded
    payload_bits: dict[int, float] = field(default_factory=dict)  # graded layers: messages x message bits

    def total(self, name: str) -> float:
        return float(sum(getattr(self, name).values()))

    def spikes_of(self, layer: int, neurons: int) -> np.ndarray:
        """Spikes of each neuron of ``layer`` an inference; spread evenly where only the total is known."""
        if layer in self.neuron_spikes:
            return self.neuron_spikes[layer]
        return np.full(neurons, self.spikes.get(layer, 0.0) / max(neurons, 1))


def measured_activity(recording) -> Activity:
    """Per-inference counts from a simulator Recording (its totals divided by the batch)."""
    per = lambda counts: {i: c / recording.batch for i, c in counts.items()}  # noqa: E731
    neuron_spikes = {
        i: np.count_nonzero(s.reshape(s.shape[0], s.shape[1], -1), axis=(0, 1)) / recording.batch
        for i, s in recording.s.items()
    }
    payload = {i: recording.spike_count[i] * bits for i, bits in recording.message_bits.items()}
    return Activity(
        recording.steps,
        per(recording.synaptic_events),
        per(recording.neuron_updates),
        per(recording.spike_count),
        f"measured: simulated {recording.batch} sample(s) x {recording.steps} steps, averaged per sample",
        neuron_spikes,
        per(payload),
    )


def assumed_activity(mapping: Mapping, steps: int, rate: float) -> Activity:
    """Counts for every neuron (and every input) spiking with probability ``rate`` each step.

    Synaptic events of a layer = its stored synapses x rate x steps (every presynaptic
    neuron's fan-out, weighted by the rate); neuron updates = neurons x steps.
    """
    events = {p.index: p.synapses * rate * steps for p in mapping.layers}
    updates = {p.index: float(p.neurons * steps) for p in mapping.layers}
    spikes = {p.index: p.neurons * rate * steps for p in mapping.layers}
    basis = (
        f"assumed: every neuron and input spikes with probability {rate:g} a step, {steps} steps; "
        "synaptic events = stored synapses x rate x steps"
    )
    payload = {p.index: spikes[p.index] * p.message_bits for p in mapping.layers if p.message_bits}
    return Activity(steps, events, updates, spikes, basis, payload_bits=payload)


@dataclass(frozen=True)
class Term:
    """One line of the cost arithmetic: count x unit cost, with the target key it comes from."""

    name: str
    count: float
    unit_cost: float | None
    unit: str  # of the unit cost: "pJ", "ns" or "mW" (static power, times a count in ns)
    key: str

    @property
    def value(self) -> float | None:
        """count x unit cost, in pJ for energy terms (mW x ns = pJ) and ns for time terms."""
        return None if self.unit_cost is None else self.count * self.unit_cost

    def text(self) -> str:
        cost = "unknown" if self.unit_cost is None else f"{self.unit_cost:g} {self.unit}"
        value = si_format(self.value, "s", 1e-9) if self.unit == "ns" else si_format(self.value, "J", 1e-12)
        return f"{self.name:<34} {self.count:>16,.1f} x {cost:<12} = {value:>12}   [{self.key}]"


@dataclass(frozen=True)
class Cost:
    """Energy and latency of one inference, with every term, source and assumption."""

    activity: Activity
    energy_terms: list[Term]  # dynamic energy, one term an operation kind
    static_term: Term | None  # static power x chips x latency, where both are known
    step_terms: list[Term]  # one time step of the busiest core, plus the barrier
    latency_ns: float | None
    notes: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    crossing_term: Term | None = None  # spike messages between chips, where the system has several
    energy_basis: str = ""  # what the energy figures are (published, fitted to a measurement...)
    latency_basis: str = ""

    @property
    def dynamic_pj(self) -> float | None:
        values = [t.value for t in self.energy_terms]
        known = [v for v in values if v is not None]
        return float(sum(known)) if len(known) == len(values) else None

    @property
    def energy_pj(self) -> float | None:
        """Dynamic energy plus static energy (when the target gives a static power) and
        chip crossings (when it prices them)."""
        extra = [t.value for t in (self.static_term, self.crossing_term) if t is not None and t.value is not None]
        return None if self.dynamic_pj is None else self.dynamic_pj + sum(extra)

    def lines(self) -> list[str]:
        """The arithmetic, ready to print."""
        blank = f"{'':>16}   {'':<12}"
        out = [f"activity: {self.activity.basis}", "energy per inference" + _basis(self.energy_basis) + ":"]
        out += ["  " + t.text() for t in self.energy_terms]
        out.append(f"  {'dynamic':<34} {blank} = {si_format(self.dynamic_pj, 'J', 1e-12):>12}")
        out += ["  " + t.text() for t in (self.static_term, self.crossing_term) if t is not None]
        out.append(f"  {'total':<34} {blank} = {si_format(self.energy_pj, 'J', 1e-12):>12}")
        if self.latency_ns is None:
            out.append("latency per inference: unknown")
        else:
            out.append(
                f"latency per inference{_basis(self.latency_basis)}: {self.activity.steps} steps x one step "
                "of the busiest core:"
            )
            out += ["  " + t.text() for t in self.step_terms]
            out.append(
                f"  {'one step':<34} {blank} = {si_format(self.latency_ns / self.activity.steps, 's', 1e-9):>12}"
            )
            out.append(
                f"  {'total':<34} {blank} = {si_format(self.latency_ns, 's', 1e-9):>12}"
                f"   ({1e9 / self.latency_ns:,.1f} inferences/s)"
            )
        out += [f"note: {n}" for n in self.notes]
        out += [f"source: {s}" for s in self.sources]
        return out


def _basis(text: str) -> str:
    return f" ({text})" if text else ""


def estimate_cost(mapping: Mapping, activity: Activity) -> Cost:
    """Energy = sum of counts x per-operation energies (+ static power x time, + chip crossings);
    latency = steps x (busiest core's step + barrier)."""
    target = mapping.target
    latency, step_terms, notes = _latency(mapping, activity)
    static = None
    if latency is not None and target.energy.static_power_mw is not None:
        static = Term(
            f"static: {mapping.chips} chip(s) x latency ns",
            latency * mapping.chips,
            target.energy.static_power_mw,
            "mW",
            "energy.static_power_mw",
        )
    elif target.energy.static_power_mw is None and target.energy.synaptic_op_pj is not None:
        notes = notes + [f"target {target.name} gives no static power: the total is dynamic energy only"]
    crossing, crossing_notes = _crossing(mapping, activity)
    sources = [s for s in (target.energy.source, target.timing.source) if s] + [f"target file: {target.path}"]
    return Cost(
        activity,
        _energy_terms(target, activity),
        static,
        step_terms,
        latency,
        _energy_notes(target, activity) + notes + crossing_notes,
        sources,
        crossing,
        target.energy.basis,
        target.timing.basis,
    )


def _crossing(mapping: Mapping, act: Activity) -> tuple[Term | None, list[str]]:
    """Spike messages an inference sent to a core on another chip, priced where the target gives a figure."""
    if mapping.chips == 1:
        return None, []
    count = sum(
        float(act.spikes_of(p.index, p.neurons) @ mapping.remote_edges[p.index])
        for p in mapping.layers
        if p.index in mapping.remote_edges
    )
    term = Term("spikes crossing chips", count, mapping.target.energy.chip_crossing_pj, "pJ", "energy.chip_crossing_pj")
    notes = [
        f"{mapping.chips} chips, filled with cores in layer order; {count / act.steps:,.1f} spikes cross chips "
        "a step, one for each destination core on another chip; crossings add no time to a step (no figure)"
    ]
    if term.unit_cost is None:
        notes.append(f"target {mapping.target.name} gives no energy for a spike between chips: not in the total")
    return term, notes


def _energy_terms(target: Target, act: Activity) -> list[Term]:
    e = target.energy
    updates, spikes = act.total("neuron_updates"), act.total("spikes")
    terms = [Term("synaptic events", act.total("synaptic_events"), e.synaptic_op_pj, "pJ", "energy.synaptic_op_pj")]
    if e.neuron_update_active_pj is not None:
        terms.append(
            Term(
                "neuron updates without a spike", updates - spikes, e.neuron_update_pj, "pJ", "energy.neuron_update_pj"
            )
        )
        terms.append(
            Term(
                "neuron updates with a spike", spikes, e.neuron_update_active_pj, "pJ", "energy.neuron_update_active_pj"
            )
        )
    else:
        terms.append(Term("neuron updates", updates, e.neuron_update_pj, "pJ", "energy.neuron_update_pj"))
    if e.spike_pj is not None:
        terms.append(Term("spikes sent", spikes, e.spike_pj, "pJ", "energy.spike_pj"))
    return terms


def _energy_notes(target: Target, act: Activity | None = None) -> list[str]:
    notes = []
    if act is not None and act.payload_bits:
        notes.append(
            f"graded messages: {act.total('payload_bits'):,.0f} payload bits in "
            f"{sum(act.spikes.get(i, 0.0) for i in act.payload_bits):,.0f} messages (the layers' message_bits: "
            "netx messageBits, 16 by default in lava-dl 0.6); no energy a payload bit is published, "
            "so a graded message costs one spike"
        )
    if target.energy.synaptic_op_pj is None or target.energy.neuron_update_pj is None:
        notes.append(f"target {target.name} publishes no energy per operation: energy is unknown")
    if target.energy.neuron_update_active_pj is not None:
        notes.append("an update counts as active when the neuron spiked in that step (an assumption)")
    if target.energy.spike_pj is not None:
        notes.append("spike routing counts one within-tile delivery a spike; hops between tiles are not counted")
    return notes


def _latency(mapping: Mapping, act: Activity) -> tuple[float | None, list[Term], list[str]]:
    """Each step lasts as long as the busiest core's work plus the end-of-step barrier.

    A layer's synaptic events are spread over its cores in proportion to the
    synapses each holds; its spikes over its neurons evenly.
    """
    t = mapping.target.timing
    if None in (t.synaptic_op_ns, t.neuron_update_ns, t.barrier_sync_ns):
        return None, [], [f"target {mapping.target.name} publishes no time per operation: latency is unknown"]
    busiest: tuple[float, list[Term]] = (-1.0, [])
    for p in mapping.layers:
        active = act.spikes.get(p.index, 0.0) / max(act.neuron_updates.get(p.index, 0.0), 1.0)
        for k, core in enumerate(p.cores):
            share = core.synapses / p.synapses if p.synapses else 0.0
            events = act.synaptic_events.get(p.index, 0.0) * share / act.steps
            terms = _core_step_terms(f"layer {p.index} core {k}", events, core.neurons, active, t)
            work = sum(term.value or 0.0 for term in terms)  # all known: the timing is checked above
            if work > busiest[0]:
                busiest = (work, terms)
    terms = busiest[1] + [Term("barrier synchronisation", 1, t.barrier_sync_ns, "ns", "timing.barrier_sync_ns")]
    step = sum(term.value or 0.0 for term in terms)
    return step * act.steps, terms, ["cores work in parallel; a core's operations run one after another"]


def _core_step_terms(label: str, events: float, neurons: int, active: float, t) -> list[Term]:
    terms = [Term(f"{label}: synaptic events", events, t.synaptic_op_ns, "ns", "timing.synaptic_op_ns")]
    if t.neuron_update_active_ns is not None:
        terms.append(
            Term(
                f"{label}: updates w/o spike",
                neurons * (1 - active),
                t.neuron_update_ns,
                "ns",
                "timing.neuron_update_ns",
            )
        )
        terms.append(
            Term(
                f"{label}: updates with spike",
                neurons * active,
                t.neuron_update_active_ns,
                "ns",
                "timing.neuron_update_active_ns",
            )
        )
    else:
        terms.append(Term(f"{label}: neuron updates", neurons, t.neuron_update_ns, "ns", "timing.neuron_update_ns"))
    return terms


def si_format(value: float | None, unit: str, scale: float) -> str:
    """``value`` x ``scale`` (pJ or ns to SI) written with the best prefix."""
    if value is None:
        return "unknown"
    if value == 0:
        return f"0 {unit}"
    x = value * scale
    for prefix, factor in (("", 1.0), ("m", 1e-3), ("u", 1e-6), ("n", 1e-9), ("p", 1e-12)):
        if abs(x) >= factor or prefix == "p":
            return f"{x / factor:.4g} {prefix}{unit}"
    return f"{x:g} {unit}"

"""Placement of a netlist's neuron layers onto a target's cores, and the cost of one inference.

Each neuron layer is cut into runs of consecutive neurons in its packing order
(index order; spatial layers position by position), one run a core, greedily: a
core takes neurons while its neurons, input axons (distinct presynaptic neurons
feeding it), synapse memory (nonzero weights it holds x bits a synapse) and output
axons (distinct destination cores its neurons reach) stay within the target's
limits. Layers do not share cores, and convolution kernels are counted expanded,
one stored synapse a nonzero weight and output neuron. Cores fill chips in
order (layer by layer), a chip taking cores while its cores, neurons and
synapses stay within the chip's limits; a spike sent from a neuron to a core on
another chip crosses chips, one message a destination core.

The cost of an inference is the operations counted (by the simulator, or from an
assumed spike rate) times the target's per-operation figures; every term keeps
its count, unit cost and target key so that a report can print the arithmetic.
A sigma-delta layer's spikes are graded messages: each carries the layer's
``message_bits`` (netx's ``messageBits``, 16 by default in lava-dl 0.6's
``netx.hdf5.Network``), and the payload bits sent are counted beside the spikes.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from neurodeploy import fixed_point as fx
from neurodeploy.errors import NeurodeployError
from neurodeploy.netlist import Conv, Dense, Layer, Netlist, describe_layer, layer_neuron
from neurodeploy.targets import Target


class MappingError(NeurodeployError):
    """A layer that cannot be placed on the target's cores: which layer, what quantity, which limit."""

    def __init__(self, layer: int, description: str, quantity: str, value: int, limit: int | None, reason: str):
        self.layer, self.description, self.quantity = layer, description, quantity
        self.value, self.limit, self.reason = value, limit, reason
        super().__init__(f"layer {layer} ({description}): {reason}")


@dataclass(frozen=True)
class Wiring:
    """The presynaptic neurons (flat indices) with a nonzero weight onto each neuron, as CSR."""

    indptr: np.ndarray  # (neurons + 1,)
    indices: np.ndarray  # (synapses,) int32

    @property
    def fan_in(self) -> np.ndarray:
        return np.diff(self.indptr)

    @property
    def synapses(self) -> int:
        return int(self.indices.size)


def layer_wiring(layer) -> Wiring | None:
    """The wiring of a dense or conv layer as the chip stores it; ``None`` for other layers."""
    if isinstance(layer, Dense):
        return _dense_wiring(fx.dense_weights(layer.weight, layer.weight_bits))
    if isinstance(layer, Conv):
        return _conv_wiring(layer)
    return None


def _dense_wiring(weight: np.ndarray) -> Wiring:
    rows, cols = np.nonzero(weight)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=weight.shape[0]))])
    return Wiring(indptr.astype(np.int64), cols.astype(np.int32))


def _conv_wiring(layer: Conv) -> Wiring:
    """Expand a convolution into per-neuron input lists, output channel by output channel."""
    _c_in, h, w = layer.in_shape
    _, ho, wo = layer.shape
    (sh, sw), (ph, pw), (dh, dw) = layer.stride, layer.padding, layer.dilation
    per_group = layer.weight.shape[0] // layer.groups
    rows_h = np.arange(ho)[:, None, None] * sh - ph
    cols_w = np.arange(wo)[None, :, None] * sw - pw
    counts, chunks = [], []
    for co in range(layer.weight.shape[0]):
        ci, kh, kw = np.nonzero(layer.weight[co])
        ci = ci + (co // per_group) * layer.weight.shape[1]
        hi = rows_h + kh[None, None, :] * dh
        wi = cols_w + kw[None, None, :] * dw
        valid = (hi >= 0) & (hi < h) & (wi >= 0) & (wi < w)
        flat = (ci[None, None, :] * h + hi) * w + wi
        counts.append(valid.sum(axis=2).ravel())
        chunks.append(flat[valid].astype(np.int32))
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))])
    return Wiring(indptr.astype(np.int64), np.concatenate(chunks))


def synapse_bits(layer, target: Target) -> int:
    """Bits one stored synapse of ``layer`` takes on ``target``: weight, index, delay."""
    weight_bits = layer.weight_bits if isinstance(layer, Dense) else 8
    delay_bits = target.synapse_delay_bits if getattr(layer, "delay", None) is not None else 0
    return weight_bits + target.synapse_index_bits + delay_bits


@dataclass(frozen=True)
class CoreUse:
    """What one core holds: ``neurons`` neurons of a layer from position ``first`` in its packing order."""

    layer: int
    first: int
    neurons: int
    input_axons: int
    output_axons: int
    synapses: int
    synapse_bits: int
    chip: int = 0


@dataclass
class LayerPlacement:
    """The cores one neuron layer occupies."""

    index: int  # layer index in the netlist
    description: str
    neurons: int
    synapses: int
    cores: list[CoreUse]
    message_bits: int = 0  # bits a graded message carries; 0 for binary spikes


@dataclass
class Mapping:
    """Cores and chips a netlist takes on a target, with per-core use."""

    target: Target
    layers: list[LayerPlacement]
    # per layer index, per neuron (C order): its destination cores on other chips than its own
    remote_edges: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def cores(self) -> int:
        return sum(len(p.cores) for p in self.layers)

    @property
    def neurons(self) -> int:
        return sum(p.neurons for p in self.layers)

    @property
    def synapses(self) -> int:
        return sum(p.synapses for p in self.layers)

    def chips_needed(self) -> dict[str, int]:
        """Chips each chip-level limit asks for (cores, and neurons and synapses where known)."""
        t = self.target
        need = {"cores": math.ceil(self.cores / t.cores_per_chip)}
        if t.neurons_per_chip:
            need["neurons"] = math.ceil(self.neurons / t.neurons_per_chip)
        if t.synapses_per_chip:
            need["synapses"] = math.ceil(self.synapses / t.synapses_per_chip)
        return need

    @property
    def chips(self) -> int:
        """Chips the placement fills (at least every bound of :meth:`chips_needed`)."""
        return max((c.chip + 1 for p in self.layers for c in p.cores), default=1)

    def utilization(self, core: CoreUse) -> dict[str, float | None]:
        """Fraction of each per-core limit a core uses; ``None`` where the target has no limit."""
        t = self.target
        ratio = lambda used, limit: used / limit if limit else None  # noqa: E731
        return {
            "neurons": ratio(core.neurons, t.neurons_per_core),
            "input_axons": ratio(core.input_axons, t.input_axons_per_core),
            "output_axons": ratio(core.output_axons, t.output_axons_per_core),
            "synapse_memory": ratio(core.synapse_bits, t.synapse_memory_bits),
        }


def network_wiring(net: Netlist) -> dict[int, Wiring | None]:
    """Wiring of every neuron layer, by layer index (``None`` for input layers)."""
    return {i: layer_wiring(net.layers[i]) for i in net.neuron_layers}


def packing_order(shape: tuple[int, ...]) -> np.ndarray:
    """The order in which a layer's neurons (C-order indices) fill cores.

    Spatial (C, H, W) layers go position by position, all channels of a position
    together, so a core holds a patch of the map and needs few input axons; other
    layers go in index order.
    """
    n = int(np.prod(shape))
    if len(shape) != 3:
        return np.arange(n)
    return np.arange(n).reshape(shape).transpose(1, 2, 0).ravel()


def map_network(net: Netlist, target: Target, wiring: dict[int, Wiring | None] | None = None) -> Mapping:
    """Place every neuron layer of ``net`` on ``target``'s cores and chips; raise MappingError if one cannot be."""
    wiring = network_wiring(net) if wiring is None else wiring
    layers = net.neuron_layers
    feeds = {i: j for i, j in itertools.pairwise(layers) if wiring[j] is not None}  # layer -> the layer it feeds
    fed = {j: w for j in feeds.values() if (w := wiring[j]) is not None}  # the wiring into each fed layer
    placements: dict[int, LayerPlacement] = {}
    core_of: dict[int, np.ndarray] = {}  # core (within its layer) of each neuron, C order
    for i in reversed(layers):
        layer = net.layers[i]
        order = packing_order(layer.shape)
        j = feeds.get(i)
        out_edges = (
            np.bincount(_distinct_edges(fed[j], core_of[j])[0], minlength=order.size)
            if j is not None
            else np.zeros(order.size, np.int64)
        )
        cores = _pack(i, layer, _reorder(wiring[i], order), out_edges[order], target)
        placements[i] = LayerPlacement(
            i,
            describe_layer(layer),
            order.size,
            sum(c.synapses for c in cores),
            cores,
            getattr(layer_neuron(layer), "message_bits", 0),
        )
        core_of[i] = np.empty(order.size, np.int64)
        core_of[i][order] = np.repeat(np.arange(len(cores)), [c.neurons for c in cores])
    placed = _place_on_chips([placements[i] for i in layers], target)
    chip_of = {p.index: np.array([c.chip for c in p.cores]) for p in placed}
    if max(int(c.max()) for c in chip_of.values()) == 0:
        return Mapping(target, placed, {i: np.zeros(placements[i].neurons, np.int64) for i in feeds})
    remote = {i: _remote_edges(fed[j], core_of[j], chip_of[j], chip_of[i][core_of[i]]) for i, j in feeds.items()}
    return Mapping(target, placed, remote)


def _place_on_chips(layers: list[LayerPlacement], target: Target) -> list[LayerPlacement]:
    """The same layers with each core's chip: cores fill chips in order while every chip limit holds."""
    chip, cores, neurons, synapses, out = 0, 0, 0, 0, []
    for p in layers:
        placed = []
        for core in p.cores:
            full = (
                cores + 1 > target.cores_per_chip
                or (target.neurons_per_chip is not None and neurons + core.neurons > target.neurons_per_chip)
                or (target.synapses_per_chip is not None and synapses + core.synapses > target.synapses_per_chip)
            )
            if full and cores:
                chip, cores, neurons, synapses = chip + 1, 0, 0, 0
            cores, neurons, synapses = cores + 1, neurons + core.neurons, synapses + core.synapses
            placed.append(dataclasses.replace(core, chip=chip))
        out.append(dataclasses.replace(p, cores=placed))
    return out


def _reorder(wiring: Wiring | None, order: np.ndarray) -> Wiring | None:
    """The same wiring with its rows (postsynaptic neurons) taken in ``order``."""
    if wiring is None:
        return None
    lengths = wiring.fan_in[order]
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    gather = np.repeat(wiring.indptr[order] - indptr[:-1], lengths) + np.arange(indptr[-1])
    return Wiring(indptr, wiring.indices[gather])


def _distinct_edges(wiring: Wiring, core_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (presynaptic neuron, downstream core) pairs with at least one synapse."""
    n_cores = int(core_of.max(initial=0)) + 1
    pairs = np.unique(wiring.indices.astype(np.int64) * n_cores + np.repeat(core_of, wiring.fan_in))
    return pairs // n_cores, pairs % n_cores


def _remote_edges(wiring: Wiring, core_of: np.ndarray, chip_of_core: np.ndarray, chip_of_pre: np.ndarray) -> np.ndarray:
    """For each presynaptic neuron, its downstream cores on another chip than its own."""
    pre, core = _distinct_edges(wiring, core_of)
    remote = chip_of_core[core] != chip_of_pre[pre]
    return np.bincount(pre[remote], minlength=chip_of_pre.size)


def _pack(index: int, layer, wiring: Wiring | None, out_edges: np.ndarray, target: Target) -> list[CoreUse]:
    """Greedy runs of consecutive neurons (in packing order), each the longest that fits one core."""
    n, cores, start, window = out_edges.size, [], 0, 64
    while start < n:
        most = min(n - start, target.neurons_per_core)
        window = min(window, most)
        use = _prefix_use(layer, wiring, out_edges, start, start + window, target)
        take = _fitting(use, target)
        while take == window < most:  # everything fitted: look further
            window = min(4 * window, most)
            use = _prefix_use(layer, wiring, out_edges, start, start + window, target)
            take = _fitting(use, target)
        if take == 0:
            axons, bits, outs, synapses = (int(u[0]) for u in use)
            _unplaceable(index, layer, start, axons, bits, outs, synapses, target)
        axons, bits, outs, synapses = (int(u[take - 1]) for u in use)
        cores.append(CoreUse(index, start, take, axons, outs, synapses, bits))
        start, window = start + take, max(2 * take, 64)
    if len(cores) > 1 and not target.allow_split:
        raise MappingError(
            index,
            describe_layer(layer),
            "cores",
            len(cores),
            1,
            f"needs {len(cores)} cores, and target {target.name} does not split a layer across cores",
        )
    return cores


def _prefix_use(layer, wiring: Wiring | None, out_edges: np.ndarray, start: int, stop: int, target: Target):
    """Input axons, synapse bits, output axons and synapses of every run start..k, k < stop."""
    if wiring is None:
        zeros = np.zeros(stop - start, np.int64)
        return zeros, zeros, out_edges[start:stop].cumsum(), zeros
    synapses = wiring.fan_in[start:stop].cumsum()
    return (
        _new_inputs(wiring, start, stop).cumsum(),
        synapses * synapse_bits(layer, target),
        out_edges[start:stop].cumsum(),
        synapses,
    )


def _fitting(use, target: Target) -> int:
    """How many leading runs stay within every per-core limit (all uses grow with the run)."""
    axons, bits, outs, _ = use
    fits = np.ones(axons.size, bool)
    for used, limit in (
        (axons, target.input_axons_per_core),
        (bits, target.synapse_memory_bits),
        (outs, target.output_axons_per_core),
    ):
        if limit is not None:
            fits &= used <= limit
    return int(np.argmin(fits)) if not fits.all() else int(fits.size)


def _new_inputs(wiring: Wiring, start: int, stop: int) -> np.ndarray:
    """For neurons start..stop-1 in turn, how many inputs each adds that earlier ones did not use."""
    inputs = wiring.indices[wiring.indptr[start] : wiring.indptr[stop]]
    rows = np.repeat(np.arange(stop - start), wiring.fan_in[start:stop])
    first = np.full(int(inputs.max(initial=-1)) + 1, stop - start)  # first row using each input
    np.minimum.at(first, inputs, rows)
    return np.bincount(first[first < stop - start], minlength=stop - start)


def _unplaceable(
    index: int, layer: Layer, neuron: int, axons: int, bits: int, outs: int, _synapses: int, target: Target
) -> None:
    """Raise MappingError for a neuron that does not fit an empty core."""
    label = f"neuron {neuron} alone does not fit a core:"
    limit: int | None
    if target.input_axons_per_core is not None and axons > target.input_axons_per_core:
        limit, quantity = target.input_axons_per_core, "fan-in"
        reason = f"{label} fan-in {axons} exceeds {limit} input axons a core"
        value = axons
    elif target.synapse_memory_bits is not None and bits > target.synapse_memory_bits:
        limit, quantity, value = target.synapse_memory_bits, "synapse memory", bits
        reason = f"{label} its synapses take {bits} bits, more than {limit} bits a core"
    else:
        limit, quantity, value = target.output_axons_per_core, "output axons", outs
        reason = f"{label} fan-out to {outs} cores exceeds {limit} output axons a core"
    raise MappingError(index, describe_layer(layer), quantity, value, limit, reason)


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

"""Placement of a netlist's neuron layers onto a target's cores and chips.

Each neuron layer is cut into runs of consecutive neurons in its packing order
(index order; spatial layers position by position), one run a core, greedily: a
core takes neurons while its neurons, input axons (distinct presynaptic neurons
feeding it), synapse memory (nonzero weights it holds x bits a synapse) and output
axons (distinct destination cores its neurons reach) stay within the target's
limits. Layers do not share cores, and convolution kernels are counted expanded,
one stored synapse a nonzero weight and output neuron. A recurrent layer's own
synapses count as its others do: its neurons are inputs of the cores they reach,
and those cores destinations of theirs. Cores fill chips in
order (layer by layer), a chip taking cores while its cores, neurons and
synapses stay within the chip's limits; a spike sent from a neuron to a core on
another chip crosses chips, one message a destination core. What an inference
then costs on the placement is :mod:`neurodeploy.cost`'s.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from neurodeploy import fixed_point as fx
from neurodeploy.errors import NeurodeployError
from neurodeploy.netlist import Conv, Dense, Layer, Netlist, RecurrentDense, describe_layer, layer_neuron
from neurodeploy.targets import Target


class MappingError(NeurodeployError):
    """A layer that cannot be placed on the target's cores: which layer, what quantity, which limit."""

    def __init__(self, layer: int, description: str, *, quantity: str, value: int, limit: int | None, reason: str):
        self.layer, self.description, self.quantity = layer, description, quantity
        self.value, self.limit, self.reason = value, limit, reason
        super().__init__(f"layer {layer} ({description}): {reason}")


@dataclass(frozen=True)
class Wiring:
    """The presynaptic neurons (flat indices) with a nonzero weight onto each neuron, as CSR; a recurrent
    layer's own neuron ``j`` is source ``sources + j``, after the layer before's."""

    indptr: np.ndarray  # (neurons + 1,)
    indices: np.ndarray  # (synapses,) int32
    sources: int | None = None  # neurons of the layer before, where the layer's own follow them

    @property
    def fan_in(self) -> np.ndarray:
        return np.diff(self.indptr)

    @property
    def synapses(self) -> int:
        return int(self.indices.size)

    def part(self, own: bool) -> Wiring:
        """The synapses from the layer before (``own`` False) or from the layer's own neurons (True)."""
        if self.sources is None:
            return self if not own else Wiring(np.zeros_like(self.indptr), self.indices[:0])
        keep = (self.indices >= self.sources) == own
        counts = np.concatenate([[0], np.cumsum(keep)])[self.indptr]
        return Wiring(counts.astype(np.int64), self.indices[keep] - (self.sources if own else 0))


def layer_wiring(layer) -> Wiring | None:
    """The wiring of a dense or conv layer as the chip stores it; ``None`` for other layers."""
    if isinstance(layer, RecurrentDense):
        held = (fx.dense_weights(w, layer.weight_bits) for w in (layer.weight, layer.recurrent_weight))
        return dataclasses.replace(_dense_wiring(np.hstack(list(held))), sources=layer.weight.shape[1])
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
    fed = {j: w.part(own=False) for j in feeds.values() if (w := wiring[j]) is not None}  # from the layer before
    own = {i: w.part(own=True) for i in layers if (w := wiring[i]) is not None and w.sources is not None}
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
        cores, core_of[i] = _pack_layer(i, layer, wiring[i], own.get(i), out_edges, order, target)
        placements[i] = LayerPlacement(
            i,
            describe_layer(layer),
            order.size,
            sum(c.synapses for c in cores),
            cores,
            getattr(layer_neuron(layer), "message_bits", 0),
        )
    placed = _place_on_chips([placements[i] for i in layers], target)
    chip_of = {p.index: np.array([c.chip for c in p.cores]) for p in placed}
    sending = sorted({*feeds, *own})
    if max(int(c.max()) for c in chip_of.values()) == 0:
        return Mapping(target, placed, {i: np.zeros(placements[i].neurons, np.int64) for i in sending})
    remote = {i: np.zeros(placements[i].neurons, np.int64) for i in sending}
    for i, j in [*feeds.items(), *((i, i) for i in own)]:
        w = fed[j] if j != i else own[i]
        remote[i] += _remote_edges(w, core_of[j], chip_of[j], chip_of[i][core_of[i]])
    return Mapping(target, placed, remote)


def _pack_layer(
    index: int, layer, wiring: Wiring | None, own: Wiring | None, out_edges: np.ndarray, order, target: Target
) -> tuple[list[CoreUse], np.ndarray]:
    """The cores of one layer, and the core of each of its neurons (C order). A recurrent layer's edges
    onto its own cores depend on its packing: it is packed again, each neuron counted with the most edges
    any packing so far gave it, until its packing needs no more. The counts only grow and are bounded,
    so this ends, and the last packing never holds more edges than it was counted with."""
    edges = out_edges
    while True:
        cores = _pack(index, layer, _reorder(wiring, order), edges[order], target)
        core_of = np.empty(order.size, np.int64)
        core_of[order] = np.repeat(np.arange(len(cores)), [c.neurons for c in cores])
        if own is None:
            return cores, core_of
        needed = out_edges + np.bincount(_distinct_edges(own, core_of)[0], minlength=order.size)
        if np.all(needed <= edges):
            return cores, core_of
        edges = np.maximum(edges, needed)


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
            quantity="cores",
            value=len(cores),
            limit=1,
            reason=f"needs {len(cores)} cores, and target {target.name} does not split a layer across cores",
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
    raise MappingError(index, describe_layer(layer), quantity=quantity, value=value, limit=limit, reason=reason)

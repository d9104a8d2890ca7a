"""Design-rule checks: every way a netlist breaks a target's limits, collected at once.

:func:`check` returns a list of :class:`Violation` (empty when the netlist fits);
:func:`require` raises :class:`DesignRuleError` listing them all, one a line.
Limits a target leaves out are not checked; :func:`unchecked` names them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurodeploy import fixed_point as fx
from neurodeploy.errors import NeurodeployError
from neurodeploy.mapping import MappingError, Wiring, map_network, network_wiring, synapse_bits
from neurodeploy.netlist import Conv, Dense, Flatten, Layer, Netlist, describe_layer, is_graded
from neurodeploy.targets import Target


@dataclass(frozen=True)
class Violation:
    """One broken limit: where (layer index, or None for the whole network), what, by how much."""

    layer: int | None
    description: str  # e.g. "dense 1024->1024"
    quantity: str
    value: int | float
    limit: int | float | str | None
    message: str

    def __str__(self) -> str:
        where = "network" if self.layer is None else f"layer {self.layer} ({self.description})"
        return f"{where}: {self.message}"


class DesignRuleError(NeurodeployError):
    """A netlist that does not fit its target; the message lists every violation."""

    def __init__(self, violations: list[Violation], target: Target):
        self.violations = violations
        lines = [f"{len(violations)} design-rule violation(s) against target {target.name} ({target.path}):"]
        super().__init__("\n".join(lines + [f"  {v}" for v in violations]))


def unchecked(target: Target) -> list[str]:
    """The limits ``target`` does not give, so :func:`check` cannot enforce them."""
    names = {
        "input_axons_per_core": "input axons a core",
        "output_axons_per_core": "output axons a core",
        "synapse_memory_bits": "synapse memory a core",
        "weight_bits": "weight bits",
        "weight_mantissa": "weight mantissa range",
        "weight_exp": "weight exponent range",
        "delay": "delay range",
        "vth": "threshold range",
        "bias_mantissa": "bias mantissa range",
        "bias_exp": "bias exponent range",
        "du": "du range",
        "dv": "dv range",
        "u_bits": "u width",
        "v_bits": "v width",
    }
    return [text for attr, text in names.items() if getattr(target, attr) is None]


def check(
    net: Netlist,
    target: Target,
    input_payload: int = 1,
    wiring: dict | None = None,
    input_bias: np.ndarray | None = None,
) -> list[Violation]:
    """Every violation of ``target``'s limits by ``net``.

    ``input_payload`` is the largest magnitude an input spike carries: 1 for binary
    spikes, more for graded ones. ``input_bias`` is a run's replacement for the
    input layer's bias, checked in its place. ``wiring`` (from
    :func:`network_wiring`) saves recomputing the network's connectivity.
    """
    wiring = network_wiring(net) if wiring is None else wiring
    found: list[Violation] = []
    for i, layer in enumerate(net.layers):
        if isinstance(layer, Flatten):
            continue
        bias = input_bias if i == 0 and input_bias is not None else layer.bias
        found += _layer_violations(i, layer, bias, wiring.get(i), target)
    found += _network_violations(net, target, wiring, input_payload, found)
    return found


def require(net: Netlist, target: Target, input_payload: int = 1) -> None:
    """Raise DesignRuleError naming every violation, if there is any."""
    found = check(net, target, input_payload)
    if found:
        raise DesignRuleError(found, target)


class _Layer:
    """Collects the violations of one layer."""

    def __init__(self, index: int, layer: Layer):
        self.index, self.description = index, describe_layer(layer)
        self.found: list[Violation] = []

    def add(self, quantity: str, value, limit, message: str) -> None:
        self.found.append(Violation(self.index, self.description, quantity, value, limit, message))

    def in_range(self, quantity: str, values, allowed: tuple[int, int] | None) -> None:
        arr = np.asarray(values)
        if allowed is None or arr.size == 0:
            return
        lo, hi = allowed
        for bad, side, outside in ((arr.min(), "below", arr < lo), (arr.max(), "above", arr > hi)):
            if outside.any():
                count = f" ({int(outside.sum())} of {arr.size} values)" if arr.size > 1 else ""
                self.add(
                    quantity,
                    int(bad),
                    f"[{lo}, {hi}]",
                    f"{quantity} {int(bad)} is {side} the range [{lo}, {hi}]{count}",
                )


def _layer_violations(index: int, layer, bias, wiring: Wiring | None, target: Target) -> list[Violation]:
    v = _Layer(index, layer)
    neuron = layer.neuron
    if is_graded(neuron):
        _graded_neuron_rules(v, neuron, target)
    else:
        v.in_range("vth", neuron.vth, target.vth)
        v.in_range("du", neuron.du, target.du)
        v.in_range("dv", neuron.dv, target.dv)
        v.in_range("bias exponent", neuron.bias_exp, target.bias_exp)
        if bias is not None:
            v.in_range("bias mantissa", bias, target.bias_mantissa)
    if isinstance(layer, (Dense, Conv)):
        _synapse_rules(v, layer, target)
    if wiring is not None:
        _fan_in_rules(v, layer, wiring, target)
    n = int(np.prod(layer.shape))
    if not target.allow_split and n > target.neurons_per_core:
        v.add(
            "neurons",
            n,
            target.neurons_per_core,
            f"{n} neurons exceed {target.neurons_per_core} neurons a core, and the target does not split layers",
        )
    return v.found


def _graded_neuron_rules(v: _Layer, neuron, target: Target) -> None:
    """A sigma-delta neuron sends graded messages of ``message_bits`` bits; the target must carry them."""
    bits = neuron.message_bits
    if not target.graded_spikes:
        v.add(
            "graded spikes",
            bits,
            "binary",
            f"{neuron.kind} neurons send {bits}-bit graded messages, but target {target.name} has binary spikes only",
        )
    elif target.graded_spike_bits is not None and bits > target.graded_spike_bits:
        v.add(
            "message bits",
            bits,
            target.graded_spike_bits,
            f"{bits}-bit graded messages exceed the target's {target.graded_spike_bits} bits",
        )


def _synapse_rules(v: _Layer, layer, target: Target) -> None:
    v.in_range("weight mantissa", layer.weight, target.weight_mantissa)
    v.in_range("weight exponent", layer.weight_exp, target.weight_exp)
    bits = getattr(layer, "weight_bits", 8)
    if target.weight_bits is not None and bits > target.weight_bits:
        v.add("weight bits", bits, target.weight_bits, f"{bits} weight bits exceed {target.weight_bits}")
    if getattr(layer, "delay", None) is not None:
        v.in_range("delay", layer.delay, target.delay)


def _fan_in_rules(v: _Layer, layer, wiring: Wiring, target: Target) -> None:
    """A neuron whose inputs alone overflow a core cannot be placed, however the layer is split."""
    fan_in = wiring.fan_in
    worst = int(fan_in.max(initial=0))
    if target.input_axons_per_core is not None and worst > target.input_axons_per_core:
        over = int(np.sum(fan_in > target.input_axons_per_core))
        v.add(
            "fan-in",
            worst,
            target.input_axons_per_core,
            f"fan-in {worst} exceeds {target.input_axons_per_core} input axons a core ({over} neuron(s))",
        )
    bits = worst * synapse_bits(layer, target)
    if target.synapse_memory_bits is not None and bits > target.synapse_memory_bits:
        v.add(
            "synapse memory",
            bits,
            target.synapse_memory_bits,
            f"one neuron's {worst} synapses take {bits} bits, more than {target.synapse_memory_bits} "
            f"bits of synapse memory a core",
        )


def _network_violations(net: Netlist, target: Target, wiring, payload: int, found: list[Violation]) -> list[Violation]:
    out: list[Violation] = []
    add = lambda q, value, limit, msg: out.append(Violation(None, "", q, value, limit, msg))  # noqa: E731
    for name, bits in (("u", target.u_bits), ("v", target.v_bits)):
        if bits is not None and bits < fx.MAX_UV.bit_length():
            add(
                f"{name} width",
                fx.MAX_UV.bit_length(),
                bits,
                f"the netlist's neurons hold {fx.MAX_UV.bit_length()}-bit {name}; the target has {bits} bits",
            )
    _graded_rules(add, target, payload)
    _capacity_rules(add, out, net, target, wiring, placeable=not any(f.quantity in _UNPLACEABLE for f in found))
    return out


_UNPLACEABLE = ("fan-in", "synapse memory", "neurons")


def _graded_rules(add, target: Target, payload: int) -> None:
    if payload <= 1:
        return
    if not target.graded_spikes:
        add(
            "graded input",
            payload,
            "binary",
            f"graded input spikes (payload up to {payload}), but target {target.name} has binary spikes only",
        )
    elif target.graded_spike_bits is not None and payload >= 2 ** (target.graded_spike_bits - 1):
        add(
            "graded payload",
            payload,
            2 ** (target.graded_spike_bits - 1) - 1,
            f"input payload {payload} does not fit {target.graded_spike_bits}-bit signed graded spikes",
        )


def _capacity_rules(add, out: list[Violation], net: Netlist, target: Target, wiring, placeable: bool) -> None:
    """Cores, neurons and synapses of the whole mapping against the system's chips.

    When some layer cannot be placed, the cores check uses a lower bound: each
    layer's neurons over the neurons a core.
    """
    mapping = None
    if placeable:
        try:
            mapping = map_network(net, target, wiring)
        except MappingError as err:
            out.append(Violation(err.layer, err.description, err.quantity, err.value, err.limit, err.reason))
    if mapping is None:
        cores = sum(-(-int(np.prod(net.layers[i].shape)) // target.neurons_per_core) for i in net.neuron_layers)
        if cores > target.cores:
            add(
                "cores",
                cores,
                target.cores,
                f"needs at least {cores} cores, more than "
                f"{target.cores_per_chip} cores a chip x {target.chips} chip(s)",
            )
        return
    if mapping.cores > target.cores:
        add(
            "cores",
            mapping.cores,
            target.cores,
            f"needs {mapping.cores} cores, more than "
            f"{target.cores_per_chip} cores a chip x {target.chips} chip(s); {mapping.chips} chips would hold it",
        )
    for quantity, per_chip in (("neurons", target.neurons_per_chip), ("synapses", target.synapses_per_chip)):
        used = getattr(mapping, quantity)
        if per_chip is not None and used > per_chip * target.chips:
            add(
                quantity,
                used,
                per_chip * target.chips,
                f"{used} {quantity} exceed {per_chip} {quantity} a chip x {target.chips} chip(s)",
            )

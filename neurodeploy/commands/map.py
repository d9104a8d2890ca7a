"""``neurodeploy map``: check a netlist against a target, place it on cores, estimate its cost.

The mapping and cost are printed whenever every layer can be placed; design-rule
violations (including too few chips) are then reported and the exit status is 2.
"""

from __future__ import annotations

import argparse

from neurodeploy.commands.run import add_conventions, add_input_shape, load_network
from neurodeploy.ranges import integer, number

DEFAULT_RATE = 0.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("net", help="netlist file (netx HDF5)")
    parser.add_argument(
        "--target", required=True, help="bundled target name (see `neurodeploy targets`) or a TOML file"
    )
    parser.add_argument(
        "--chips", type=integer(1, 1 << 20), help="chips in the system (overrides the target's system.chips)"
    )
    parser.add_argument(
        "--steps",
        type=integer(1, 1 << 31),
        help="time steps an inference (default: the input's length, the end "
        "of the netlist's output window, or a netx file's tSample)",
    )
    parser.add_argument(
        "--rate",
        type=number(0, 1),
        default=DEFAULT_RATE,
        help=f"without input data: assumed spikes a neuron a step (default {DEFAULT_RATE})",
    )
    data = parser.add_mutually_exclusive_group()
    data.add_argument(
        "--input",
        help="input spikes .npy, (steps, *input shape) or (batch, steps, *input shape): "
        "simulate and count the operations",
    )
    data.add_argument("--input-bias", help="input layer bias .npy, (*shape) or (batch, *shape): simulate and count")
    add_conventions(parser, "of the simulation that counts operations (default: the target's [run] conventions)")
    add_input_shape(parser)
    parser.add_argument("--per-core", action="store_true", help="list every core's use")
    parser.add_argument(
        "--cost-reference",
        metavar="TARGET",
        help="also price the same operations with this target's figures (e.g. loihi1)",
    )


def _inputs(args, net):
    """Input spikes (with a batch axis) and input bias from the files given, or None."""
    from neurodeploy.commands.run import load_bias
    from neurodeploy.errors import InputFileError
    from neurodeploy.npyfile import load_array

    spikes = load_array(args.input) if args.input else None
    shape = tuple(net.input_shape or net.layers[0].shape)
    if spikes is not None and spikes.ndim == len(shape) + 1:
        spikes = spikes[None]
    if spikes is not None and (spikes.ndim != len(shape) + 2 or tuple(spikes.shape[2:]) != shape):
        dims = ", ".join(map(str, shape))
        raise InputFileError(f"{args.input}: expected shape ([batch,] steps, {dims}), got {spikes.shape}")
    if spikes is not None and spikes.size == 0:
        raise InputFileError(f"{args.input}: holds no sample or no step (shape {spikes.shape})")
    bias = load_bias(args.input_bias, net) if args.input_bias else None
    return spikes, bias


def _steps(args, net, spikes) -> int:
    from neurodeploy.errors import InputFileError, NeurodeployError

    if args.steps and spikes is not None and spikes.shape[1] < args.steps:
        raise InputFileError(f"{args.input}: covers {spikes.shape[1]} steps, --steps {args.steps} were asked for")
    if args.steps:
        return args.steps
    if spikes is not None:
        return int(spikes.shape[1])
    if net.output_window:
        return int(net.output_window[1])
    sample = net.meta.get("simulation", {}).get("tSample")  # netx files' sample length
    if sample:
        return int(sample)
    raise NeurodeployError(f"{args.net}: the netlist states no sample length; give --steps")


def _activity(args, net, mapping, spikes, bias, steps: int, conventions: str):
    """Measured counts when input data is given, otherwise the stated rate assumption."""
    from neurodeploy.cost import assumed_activity, measured_activity
    from neurodeploy.sim import simulate

    if spikes is None and bias is None:
        return assumed_activity(mapping, steps, args.rate)
    return measured_activity(simulate(net, steps, spikes=spikes, bias=bias, conventions=conventions))


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def _peak(values) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def print_mapping(mapping, per_core: bool = False) -> None:
    """The layer table: neurons, synapses, cores and the fullest core's use of each limit."""
    t = mapping.target
    limits = ("neurons", "input_axons", "output_axons", "synapse_memory")
    print(f"target {t.name}: {t.description}")
    print(
        f"{'layer':<6} {'kind':<28} {'neurons':>9} {'synapses':>11} {'cores':>6}  "
        "fullest core: neurons / input axons / output axons / synapse memory"
    )
    for p in mapping.layers:
        use = [mapping.utilization(c) for c in p.cores]
        peak = " / ".join(_percent(_peak(u[k] for u in use)) for k in limits)
        print(f"{p.index:<6} {p.description:<28} {p.neurons:>9,} {p.synapses:>11,} {len(p.cores):>6}  {peak}")
        for k, (core, u) in enumerate(zip(p.cores, use) if per_core else ()):
            print(
                f"{'':<7}core {k}: {core.neurons} neurons from {core.first}, {core.input_axons:,} in-axons, "
                f"{core.output_axons:,} out-axons, {core.synapses:,} synapses ({core.synapse_bits:,} bits); "
                + ", ".join(f"{n} {_percent(v)}" for n, v in u.items())
            )
    need = ", ".join(f"{v} for its {k}" for k, v in mapping.chips_needed().items())
    print(
        f"cores used: {mapping.cores} ({t.cores_per_chip} a chip); chips needed: {mapping.chips} ({need}); "
        f"system: {t.chips} chip(s)"
    )
    if mapping.chips > 1:
        print("placement on chips: " + "; ".join(_chip_lines(mapping)))


def _chip_lines(mapping) -> list[str]:
    """'chip k: layers a-b (n cores)' for each chip, in order."""
    layers: dict[int, list[int]] = {}
    cores: dict[int, int] = {}
    for p in mapping.layers:
        for c in p.cores:
            layers.setdefault(c.chip, []).append(p.index)
            cores[c.chip] = cores.get(c.chip, 0) + 1
    span = lambda ids: str(ids[0]) if ids[0] == ids[-1] else f"{ids[0]}-{ids[-1]}"  # noqa: E731
    return [f"chip {k}: layers {span(ids)} ({cores[k]} cores)" for k, ids in layers.items()]


def _print_reference(net, activity, reference) -> None:
    """The same operations priced with ``reference``'s figures, on its own placement."""
    from neurodeploy.cost import estimate_cost
    from neurodeploy.mapping import map_network

    mapping = map_network(net, reference)
    print(f"with {reference.name}'s figures, on its placement ({mapping.cores} cores, {mapping.chips} chip(s)):")
    for line in estimate_cost(mapping, activity).lines():
        print(f"  {line}")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from neurodeploy.cost import estimate_cost
    from neurodeploy.drc import DesignRuleError, check, unchecked
    from neurodeploy.mapping import MappingError, map_network, network_wiring
    from neurodeploy.targets import load_target, with_chips

    net = load_network(args)
    target = load_target(args.target)
    if args.chips:
        target = with_chips(target, args.chips)
    spikes, bias = _inputs(args, net)
    steps = _steps(args, net, spikes)
    payload = 1 if spikes is None or spikes.dtype == bool else int(np.abs(spikes).max(initial=1))
    wiring = network_wiring(net)
    violations = check(net, target, input_payload=payload, wiring=wiring, input_bias=bias)
    try:
        mapping = map_network(net, target, wiring)
    except MappingError:
        raise DesignRuleError(violations, target) from None
    print_mapping(mapping, args.per_core)
    missing = unchecked(target)
    if missing:
        print(f"not checked (the target gives no figure): {', '.join(missing)}")
    conventions = args.conventions or target.conventions
    if spikes is not None or bias is not None:
        print(f"conventions: {conventions}")
    activity = _activity(args, net, mapping, spikes, bias, steps, conventions)
    for line in estimate_cost(mapping, activity).lines():
        print(line)
    if args.cost_reference:
        _print_reference(net, activity, load_target(args.cost_reference))
    if violations:
        raise DesignRuleError(violations, target)
    return 0

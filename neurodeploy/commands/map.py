"""``neurodeploy map``: check a netlist against a target, place it on cores, estimate its cost."""

from __future__ import annotations

import argparse

DEFAULT_RATE = 0.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("net", help="netlist file (netx HDF5)")
    parser.add_argument("--target", required=True, help="bundled target name (see `neurodeploy targets`) or a TOML file")
    parser.add_argument("--steps", type=int, help="time steps an inference (default: the netlist's output window "
                        "end, or the input's length)")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE,
                        help=f"without input data: assumed spikes a neuron a step (default {DEFAULT_RATE})")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--input", help="input spikes .npy, (steps, *input shape) or (batch, steps, *input shape): "
                      "simulate and count operations")
    data.add_argument("--input-bias", help="input layer bias .npy, (*shape) or (batch, *shape): simulate and count")
    parser.add_argument("--per-core", action="store_true", help="list every core's use")


def _load_array(path: str):
    import numpy as np

    from neurodeploy.errors import InputFileError

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputFileError(f"{path}: cannot read as a .npy array: {err}") from err


def _steps(args, net, spikes) -> int:
    from neurodeploy.errors import NeurodeployError

    if args.steps:
        return args.steps
    if spikes is not None:
        return int(spikes.shape[1])
    if net.output_window:
        return int(net.output_window[1])
    raise NeurodeployError(f"{args.net}: the netlist has no output window; give --steps")


def _activity(args, net, mapping):
    """Measured counts when input data is given, otherwise the stated rate assumption."""
    import numpy as np

    from neurodeploy.mapping import assumed_activity, measured_activity
    from neurodeploy.netlist import Input
    from neurodeploy.sim import simulate

    spikes = _load_array(args.input) if args.input else None
    if spikes is not None and spikes.ndim == len(net.input_shape or net.layers[0].shape) + 1:
        spikes = spikes[None]
    steps = _steps(args, net, spikes)
    if spikes is None and not args.input_bias:
        return assumed_activity(mapping, steps, args.rate), 1
    bias = _load_array(args.input_bias) if args.input_bias else None
    if bias is not None and not isinstance(net.layers[0], Input):
        from neurodeploy.errors import NeurodeployError
        raise NeurodeployError(f"{args.input_bias}: --input-bias needs a netlist whose layer 0 is an input layer")
    payload = 1 if spikes is None or spikes.dtype == bool else int(np.abs(spikes).max(initial=1))
    try:
        recording = simulate(net, steps, spikes=spikes, bias=bias)
    except ValueError as err:
        from neurodeploy.errors import InputFileError
        raise InputFileError(f"{args.input or args.input_bias}: {err}") from err
    return measured_activity(recording), payload


def _print_mapping(mapping, per_core: bool) -> None:
    t = mapping.target
    print(f"target {t.name}: {t.description}")
    print(f"{'layer':<6} {'kind':<28} {'neurons':>9} {'synapses':>11} {'cores':>6}  max use a core: "
          "neurons / in-axons / out-axons / synapse memory")
    for p in mapping.layers:
        use = [mapping.utilization(c) for c in p.cores]
        peak = " / ".join(_percent(max((u[k] for u in use), default=None, key=_key))
                          for k in ("neurons", "input_axons", "output_axons", "synapse_memory"))
        print(f"{p.index:<6} {p.description:<28} {p.neurons:>9,} {p.synapses:>11,} {len(p.cores):>6}  {peak}")
        if per_core:
            for k, (core, u) in enumerate(zip(p.cores, use)):
                print(f"         core {k}: neurons {core.first}..{core.first + core.neurons - 1}, "
                      f"in-axons {core.input_axons:,}, out-axons {core.output_axons:,}, synapses {core.synapses:,} "
                      f"({core.synapse_bits:,} bits); use {', '.join(f'{n} {_percent(v)}' for n, v in u.items())}")
    need = ", ".join(f"{v} by {k}" for k, v in mapping.chips_needed().items())
    print(f"cores used: {mapping.cores} of {t.cores_per_chip} a chip; chips needed: {mapping.chips} ({need})")


def _key(value):
    return -1.0 if value is None else value


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def run(args: argparse.Namespace) -> int:
    from neurodeploy.drc import require, unchecked
    from neurodeploy.mapping import estimate_cost, map_network
    from neurodeploy.netio import load_netlist
    from neurodeploy.targets import load_target

    net = load_netlist(args.net)
    target = load_target(args.target)
    require(net, target)
    mapping = map_network(net, target)
    activity, payload = _activity(args, net, mapping)
    if payload > 1:
        require(net, target, input_payload=payload)
    _print_mapping(mapping, args.per_core)
    missing = unchecked(target)
    if missing:
        print(f"not checked (target gives no figure): {', '.join(missing)}")
    for line in estimate_cost(mapping, activity).lines():
        print(line)
    return 0

"""``neurodeploy targets``: the bundled hardware targets and their key limits."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", nargs="?", help="show every figure of one target: a bundled name or a TOML file (checks the file)"
    )


def _value(value, unit: str = "") -> str:
    if value is None:
        return "unknown"
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return f"{value[0]}..{value[1]}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:,}{unit}" if isinstance(value, int) else f"{value:g}{unit}"


def summary_rows(target) -> list[tuple[str, str]]:
    """The limits most often asked about, as (label, value) pairs."""
    return [
        ("cores a chip x chips", f"{target.cores_per_chip} x {target.chips}"),
        ("neurons a core", _value(target.neurons_per_core)),
        (
            "input / output axons a core",
            f"{_value(target.input_axons_per_core)} / {_value(target.output_axons_per_core)}",
        ),
        ("synapse memory a core", _value(target.synapse_memory_bits, " bits")),
        ("neurons / synapses a chip", f"{_value(target.neurons_per_chip)} / {_value(target.synapses_per_chip)}"),
        ("weight bits, exponent", f"{_value(target.weight_bits)}, {_value(target.weight_exp)}"),
        ("delay", _value(target.delay)),
        (
            "graded spikes",
            _value(target.graded_spikes) + (f" ({target.graded_spike_bits} bits)" if target.graded_spike_bits else ""),
        ),
        (
            "energy: synaptic op, neuron update",
            f"{_value(target.energy.synaptic_op_pj, ' pJ')}, {_value(target.energy.neuron_update_pj, ' pJ')}",
        ),
    ]


def _detail_rows(target) -> list[tuple[str, str]]:
    from dataclasses import fields

    rows = []
    for f in fields(target):
        value = getattr(target, f.name)
        if f.name in ("energy", "timing"):
            rows += [(f"{f.name}.{g.name}", _value(getattr(value, g.name))) for g in fields(value)]
        else:
            rows.append((f.name, _value(value)))
    return rows


def run(args: argparse.Namespace) -> int:
    from neurodeploy.drc import unchecked
    from neurodeploy.targets import list_targets, load_target

    if args.target:
        target = load_target(args.target)
        for label, value in _detail_rows(target):
            print(f"{label:<34} {value}")
        missing = unchecked(target)
        if missing:
            print(f"not checked (no figure in the file): {', '.join(missing)}")
        return 0
    for name in list_targets():
        target = load_target(name)
        print(f"{name}: {target.description}")
        for label, value in summary_rows(target):
            print(f"  {label:<36} {value}")
    print(
        "Sources are cited in each file (neurodeploy/hw_configs/*.toml); `neurodeploy targets NAME` shows every figure."
    )
    return 0

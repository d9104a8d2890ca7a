"""``neurodeploy conformance``: the simulator against Lava's fixed_pt models on random netlists."""

from __future__ import annotations

import argparse

from neurodeploy.ranges import integer, seed
from neurodeploy.simulators import DEVICE_HELP

SHOWN_CASES = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cases", type=integer(1, 1_000_000), default=200, metavar="N", help="random netlists to run (default 200)"
    )
    parser.add_argument("--seed", type=seed(), default=0, metavar="S", help="seed of the generator (default 0)")
    parser.add_argument("--device", help=DEVICE_HELP)
    parser.add_argument(
        "--kind",
        choices=("cuba", "sdnn", "recurrent", "delay", "all"),
        default="all",
        help="networks to draw: CUBA, sigma-delta, with recurrent dense layers, CUBA with delays "
        "in every dense layer, or all in turn (default)",
    )


def run(args: argparse.Namespace) -> int:
    from neurodeploy.conformance import run_conformance

    report = run_conformance(args.cases, seed=args.seed, kind=args.kind, device=args.device)
    for result in report.failed[:SHOWN_CASES]:
        print(f"case {result.index} ({result.description}): {result.mismatching} mismatching values")
        for mismatch in result.first:
            print(f"  {mismatch}")
    if len(report.failed) > SHOWN_CASES:
        print(f"... and {len(report.failed) - SHOWN_CASES} more mismatching cases")
    print(f"{report.cases} cases, {report.mismatching} mismatching values")
    return 0 if report.ok else 1

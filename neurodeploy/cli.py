"""The ``neurodeploy`` command: a thin layer over functions a Python user can call.

Each subcommand lives in ``neurodeploy.commands.<name>`` with ``add_arguments``
and ``run``; heavy imports (torch, Lava) happen inside ``run`` only.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from neurodeploy.errors import NeurodeployError

COMMANDS = {
    "inspect": "print a netlist's layer table",
    "run": "simulate a netlist (or run it in Lava) and save what it computed",
    "conformance": "check the simulator against Lava on random netlists",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neurodeploy", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        module = importlib.import_module(f"neurodeploy.commands.{name}")
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(cmd)
        cmd.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except NeurodeployError as err:
        if args.debug:
            traceback.print_exc()
        print(f"neurodeploy {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"neurodeploy {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

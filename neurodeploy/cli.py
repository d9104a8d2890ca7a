"""The ``neurodeploy`` command: a thin layer over functions a Python user can call.

Each subcommand lives in ``neurodeploy.commands.<name>`` with ``add_arguments``
and ``run``; heavy imports (torch, Lava) happen inside ``run`` only.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
import traceback
from typing import Iterator

from neurodeploy.errors import NeurodeployError

DESCRIPTION = "Spiking networks from PyTorch onto Loihi-class chips, checked bit for bit."

COMMANDS = {
    "train": "train a spiking network (TSSL-BP, BPSA/BPTA, or plain BPTT)",
    "export": "quantize a trained model for a target and write netx / NIR / ONNX files",
    "inspect": "print a netlist's layer table",
    "run": "simulate a netlist (or run it in Lava) and save what it computed",
    "conformance": "check the simulator against Lava on random netlists",
    "targets": "list the hardware targets and their limits",
    "map": "check a netlist against a target, place it on cores, estimate energy and latency",
    "compare": "run the float model and its quantized netlist on the same inputs and write a report",
    "demo": "train on the embedded digits, export to loihi2, compare, and write the report",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported, to keep start-up light."""
    parser = argparse.ArgumentParser(prog="neurodeploy", description=DESCRIPTION)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(f"neurodeploy.commands.{name}")
            module.add_arguments(cmd)
            cmd.set_defaults(run=module.run)
    return parser


def _command(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl-C so that cleanup runs (finally blocks, staged files)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _terminate(signum: int, frame) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def terminations_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise :class:`Terminated` (Python's default for them
    ends the process at once, skipping every cleanup); the previous handlers come back after."""
    names = [name for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {name: signal.signal(getattr(signal, name), _terminate) for name in names}
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(_command(argv)).parse_args(argv)
    with terminations_interrupt():
        try:
            return int(args.run(args) or 0)
        except NeurodeployError as err:
            if args.debug:
                traceback.print_exc()
            print(f"neurodeploy {args.command}: error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as err:
            signum = err.signum if isinstance(err, Terminated) else signal.SIGINT
            print(f"neurodeploy {args.command}: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
            return 128 + signum


if __name__ == "__main__":
    sys.exit(main())

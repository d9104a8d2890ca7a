"""The ``neurodeploy`` command: a thin layer over functions a Python user can call.

Each subcommand lives in ``neurodeploy.commands.<name>`` with ``add_arguments``
and ``run``; heavy imports (torch, Lava) happen inside ``run`` only.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
import traceback
from typing import Iterator

from neurodeploy import __version__
from neurodeploy.atomic import INTERRUPTS
from neurodeploy.errors import NeurodeployError
from neurodeploy.extras import missing_extra

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
    parser.add_argument("--version", action="version", version=f"neurodeploy {__version__}")
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


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP, raised like Ctrl-C so that cleanup runs (finally blocks, staged
    files). Python's default for SIGTERM and SIGHUP ends the process at once, skipping all that."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Interrupts:
    """The handler for those signals while a command runs.

    It raises :class:`Interrupted` and, until the command has received it, sends the signal
    again every RESEND seconds: an exception raised while Python runs a finalizer or a weakref
    callback is printed and dropped ("Exception ignored in ..."), and the signal with it.
    Once the command has received it, or has ended, further signals are ignored.
    """

    RESEND = 0.2

    def __init__(self) -> None:
        self.done = False
        self.lock = threading.Lock()
        self.timers: list[threading.Timer] = []

    def __call__(self, signum: int, frame) -> None:
        with self.lock:
            if self.done:
                return
            timer = threading.Timer(self.RESEND, self._resend, (signum,))
            timer.daemon = True
            self.timers.append(timer)
            timer.start()
        raise Interrupted(signum)

    def received(self) -> None:
        """The command has the interrupt (or has ended): stop sending, and let no resent signal
        that is still on its way raise again."""
        with self.lock:
            self.done = True
            timers = list(self.timers)
        for timer in timers:
            timer.cancel()
            timer.join()

    def _resend(self, signum: int) -> None:
        with self.lock:
            if self.done:
                return
        os.kill(os.getpid(), signum)


@contextlib.contextmanager
def interrupts_raise() -> Iterator[_Interrupts]:
    """While the block runs, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` (see
    :class:`_Interrupts`); the previous handlers come back after."""
    handler = _Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield handler
        return
    previous = {signum: signal.signal(signum, handler) for signum in INTERRUPTS}
    report_unraisable = sys.unraisablehook

    def quiet_for_interrupts(unraisable) -> None:  # a dropped interrupt is sent again: no report
        if not issubclass(unraisable.exc_type, Interrupted):
            report_unraisable(unraisable)

    sys.unraisablehook = quiet_for_interrupts
    try:
        yield handler
    finally:
        handler.received()
        sys.unraisablehook = report_unraisable
        for signum, before in previous.items():
            signal.signal(signum, before)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(_command(argv)).parse_args(argv)
    with interrupts_raise() as interrupts:
        try:
            return int(args.run(args) or 0)
        except NeurodeployError as err:
            if args.debug:
                traceback.print_exc()
            print(f"neurodeploy {args.command}: error: {err}", file=sys.stderr)
            return 2
        except ModuleNotFoundError as err:
            extra = missing_extra(err)
            if extra is None or args.debug:
                raise
            print(f"neurodeploy {args.command}: error: this needs the optional '{extra}' part "
                  f"(no module named {err.name!r}): pip install \"neurodeploy[{extra}]\"", file=sys.stderr)
            return 2
        except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as a pipeline expects
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 141
        except KeyboardInterrupt as err:
            interrupts.received()
            signum = err.signum if isinstance(err, Interrupted) else signal.SIGINT
            print(f"neurodeploy {args.command}: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
            return 128 + signum


if __name__ == "__main__":
    sys.exit(main())

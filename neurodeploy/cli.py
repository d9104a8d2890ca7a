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
import time
import traceback
import warnings
from collections.abc import Iterator

from neurodeploy import __version__, budget
from neurodeploy.atomic import INTERRUPTS, deferred_signals, restore_handlers
from neurodeploy.errors import NeurodeployError, printable
from neurodeploy.extras import missing_extra
from neurodeploy.ranges import show_ranges

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
    parser.add_argument(
        "--max-bytes",
        type=_bytes,
        metavar="SIZE",
        help=f"memory budget for what files and options may make a command allocate, e.g. 8G "
        f"(default: ${budget.ENV}, else {budget.DEFAULT_BYTES >> 30}G)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(f"neurodeploy.commands.{name}")
            module.add_arguments(cmd)
            show_ranges(cmd)
            show_defaults(cmd)
            cmd.set_defaults(run=module.run)
    return parser


def _bytes(text: str) -> int:
    try:
        return budget.parse_bytes(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def show_defaults(parser: argparse.ArgumentParser) -> None:
    """Append each option's default to its help text, unless the text already names it."""
    for action in parser._actions:
        default = action.default
        if (
            action.help in (None, argparse.SUPPRESS)
            or "default" in action.help
            or not action.option_strings
            or default in (None, False, argparse.SUPPRESS)
        ):
            continue
        shown = ",".join(map(str, default)) if isinstance(default, (tuple, list)) else default
        action.help = f"{action.help} (default: {shown})"


def _program(argv: list[str]) -> str:
    """How messages name the command: ``neurodeploy run``, or ``neurodeploy`` before there is one."""
    command = _command(argv)
    return "neurodeploy" if command is None else f"neurodeploy {command}"


def _command(argv: list[str]) -> str | None:
    """The subcommand: the first argument that is neither an option nor the value of --max-bytes."""
    values = iter(argv)
    for arg in values:
        if arg == "--max-bytes":
            next(values, None)
        elif not arg.startswith("-"):
            return arg
    return None


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP, raised like Ctrl-C so that cleanup runs (finally blocks, staged
    files). Python's default for SIGTERM and SIGHUP ends the process at once, skipping all that."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Interrupts:
    """The handler for those signals while a command runs; it never blocks and may be re-entered.

    The first signal raises :class:`Interrupted`. Later ones are ignored while an interrupt is
    being handled, and once the command has it (:meth:`received`) or has ended. Python prints
    and drops an exception raised while it runs a finalizer or a weakref callback ("Exception
    ignored in ..."), the interrupt with it; so a thread started beforehand sends the signal
    again every RESEND seconds until the command has it. The handler takes no lock and starts
    no thread: it only sets flags and writes one byte to a pipe that wakes that thread.
    """

    RESEND = 0.2

    def __init__(self) -> None:
        self.done = False  # the command has the interrupt, or has ended
        self.raised = False  # an Interrupted was raised (it may have been dropped)
        self.resent = False  # the next call is the resending thread's
        self.signum: int = signal.SIGINT  # the signal raised
        self.pid = os.getpid()
        self.wake_read = self.wake_write = -1

    def __call__(self, signum: int, frame) -> None:
        if self.done or isinstance(sys.exc_info()[1], KeyboardInterrupt):
            return  # over, or already being handled: cleanup runs undisturbed
        if os.getpid() != self.pid:  # a forked child: no resending thread there
            raise Interrupted(signum)
        if self.raised and not self.resent:
            return
        first, self.raised, self.resent, self.signum = not self.raised, True, False, signum
        if first and self.wake_write >= 0:
            with contextlib.suppress(OSError):
                os.write(self.wake_write, bytes([signum]))
        raise Interrupted(signum)

    def start(self) -> None:
        """Start the resending thread; it waits on a pipe for the first interrupt."""
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_write, False)
        threading.Thread(target=self._resend, name="neurodeploy-interrupts", daemon=True).start()

    def received(self) -> None:
        """The command has the interrupt (or has ended): stop sending; ignore what still comes."""
        if not self.done:
            self.done = True
            if self.wake_write >= 0:
                os.close(self.wake_write)  # the thread reads end of file and ends

    def _resend(self) -> None:
        try:
            woken = os.read(self.wake_read, 1)
            while woken and not self.done:
                time.sleep(self.RESEND)
                if not self.done:
                    self.resent = True
                    os.kill(self.pid, woken[0])
        finally:
            os.close(self.wake_read)


@contextlib.contextmanager
def interrupts_raise(restore: bool = True) -> Iterator[_Interrupts]:
    """While the block runs, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` (see
    :class:`_Interrupts`). After it, the previous handlers come back, or with ``restore`` False
    (the command line: the process is about to exit) the signals are ignored."""
    handler = _Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield handler
        return
    previous: dict = {}
    report_unraisable = sys.unraisablehook

    def quiet_for_interrupts(unraisable) -> None:
        # a dropped interrupt is sent again; one that lands while the handlers are put back after the
        # command has its interrupt (CPython: "Signal N ignored due to race condition") is not needed
        late = handler.done and "ignored due to race condition" in str(unraisable.exc_value)
        if not (issubclass(unraisable.exc_type, Interrupted) or late):
            report_unraisable(unraisable)

    try:  # a signal may come at any point from here: the handler is already in place
        for signum in INTERRUPTS:
            previous[signum] = signal.signal(signum, handler)
        sys.unraisablehook = quiet_for_interrupts
        with deferred_signals():  # an interrupt inside Thread.start breaks its lock ("release unlocked lock")
            handler.start()
        yield handler
    finally:
        handler.received()
        if restore:
            restore_handlers(previous)
            sys.unraisablehook = report_unraisable
        else:  # the OS ignores them from now on: Python's exit would reset a handler to the default action
            restore_handlers(dict.fromkeys(INTERRUPTS, signal.SIG_IGN))


def _run(argv: list[str], interrupts: _Interrupts) -> int:
    args = None
    try:
        args = build_parser(_command(argv)).parse_args(argv)
        budget.set_limit(args.max_bytes)
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _warning_line(args.command)
                return int(args.run(args) or 0)
        finally:
            budget.set_limit(None)
    except Exception as err:
        if interrupts.raised:  # the interrupt came back as another error (an import turns it into ImportError)
            raise Interrupted(interrupts.signum) from None
        if isinstance(err, BrokenPipeError):  # the reader went away (`| head`): stop quietly, as a pipeline expects
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        extra = missing_extra(err) if isinstance(err, ModuleNotFoundError) else None
        if isinstance(err, ModuleNotFoundError) and extra is not None and not (args is not None and args.debug):
            print(
                f"{_program(argv)}: error: this needs the optional '{extra}' part "
                f'(no module named {err.name!r}): pip install "neurodeploy[{extra}]"',
                file=sys.stderr,
            )
            return 2
        if not isinstance(err, NeurodeployError):
            raise
        if args is not None and args.debug:
            traceback.print_exc()
        print(f"{_program(argv)}: error: {printable(str(err))}", file=sys.stderr)
        return 2


def _warning_line(command: str):
    """A ``warnings.showwarning`` printing one line, escaped, without the source file and line."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"neurodeploy {command}: warning: {printable(str(message))}", file=sys.stderr if file is None else file)

    return show


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` (default: the process's arguments); return the exit status."""
    command = sys.argv[1:] if argv is None else argv
    try:
        with interrupts_raise(restore=argv is not None) as interrupts:
            return _run(command, interrupts)
    except KeyboardInterrupt as err:  # the handlers are back (or ignoring): nothing interrupts this
        signum = err.signum if isinstance(err, Interrupted) else signal.SIGINT
        print(f"{_program(command)}: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + signum


if __name__ == "__main__":
    sys.exit(main())

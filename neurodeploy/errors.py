"""Errors a user can cause and fix: the CLI prints them without a traceback, exit status 2."""

from pathlib import Path


def printable(text: str) -> str:
    """``text`` with control characters (escape codes, carriage returns) shown escaped, as ``\\x1b``."""
    return "".join(c if c.isprintable() or c == "\n" else repr(c)[1:-1] for c in text)


class NeurodeployError(Exception):
    """Base of every user-facing error; the message names the file, the place and the limit."""


class InputFileError(NeurodeployError):
    """A file that cannot be read as what it claims to be (netx, NIR, checkpoint, target, array)."""


class OutputFileError(NeurodeployError):
    """An output that could not be written (a full disk, no permission); no partial file is left."""

    def __init__(self, path, reason: str, note: str = ""):
        super().__init__(f"{path}: {reason}" + (f"; {note}" if note else ""))
        self.path, self.reason = Path(path), reason


class ExistingOutputError(NeurodeployError):
    """Outputs that exist already: train, export and compare refuse them without ``--force``."""


class SimulationError(NeurodeployError, ValueError):
    """A run the netlist cannot take: input shaped or as long as it needs not, variables or conventions unknown."""

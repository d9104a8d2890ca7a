"""Errors a user can cause and fix: the CLI prints them without a traceback, exit status 2."""


class NeurodeployError(Exception):
    """Base of every user-facing error; the message names the file, the place and the limit."""


class InputFileError(NeurodeployError):
    """A file that cannot be read as what it claims to be (netx, NIR, checkpoint, target, array)."""


class OutputFileError(NeurodeployError):
    """An output that could not be written (a full disk, no permission); no partial file is left."""

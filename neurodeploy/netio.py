"""Load a netlist from any file format the package reads, chosen by the file's suffix."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from neurodeploy.errors import InputFileError
from neurodeploy.netlist import Netlist


def _read_netx(path: Path, input_shape=None) -> Netlist:
    from neurodeploy.exporters.netx import read_netx

    return read_netx(path, input_shape)


def _read_nir(path: Path, input_shape=None) -> Netlist:  # a NIR graph states its input shape
    from neurodeploy.exporters.nir import read_nir

    return read_nir(path)


READERS: dict[str, Callable[..., Netlist]] = {
    ".net": _read_netx,
    ".h5": _read_netx,
    ".hdf5": _read_netx,
    ".nir": _read_nir,
}


def load_netlist(path: str | os.PathLike, input_shape: tuple[int, ...] | None = None) -> Netlist:
    """Read the netlist in ``path`` with the reader its suffix names.

    ``input_shape`` (C, H, W) serves a netx file that gives none (lava-dl's SLAYER export of a conv network).
    """
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        known = ", ".join(sorted(READERS))
        raise InputFileError(f"{path}: unknown netlist format '{path.suffix}' (known suffixes: {known})")
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    return reader(path, input_shape)

"""Untrusted HDF5 files (netx, NIR) checked before any data is read.

:func:`open_hdf5` opens a file read-only, walks every link in it and refuses
external links, soft links, objects reached twice (aliases and cycles), data
stored outside the file, elements other than numbers and strings, and datasets
whose declared size is beyond the limits below, all before a single array is
allocated. HDF5 errors raised while the caller reads the file become
:class:`InputFileError` naming the file.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Iterator

from neurodeploy.errors import InputFileError

MAX_ELEMENTS = 1 << 26  # elements a dataset may declare
MAX_BYTES = 1 << 29  # bytes a dataset may declare
MAX_TOTAL_BYTES = 1 << 30  # bytes all datasets together may declare
MAX_OBJECTS = 100_000  # groups and datasets in a file
MAX_DEPTH = 64  # nested groups
READABLE_KINDS = "biufSO"  # booleans, numbers, fixed and variable-length strings
H5_ERRORS = (OSError, KeyError, RuntimeError)  # what h5py raises for damaged structures or data


@contextlib.contextmanager
def open_hdf5(path: str | os.PathLike, kind: str = "HDF5 file") -> Iterator[object]:
    """The checked ``h5py.File`` of ``path``, read-only; HDF5 errors inside become :class:`InputFileError`.

    ``kind`` names what the file should be in the message when it cannot be opened.
    """
    import h5py

    name = str(path)
    try:
        h5 = h5py.File(path, "r")
    except (OSError, ValueError) as err:
        raise InputFileError(f"{name}: not a readable {kind}: cannot open as HDF5: {err}") from None
    with h5:
        try:
            check_tree(h5, name)
            yield h5
        except (*H5_ERRORS, UnicodeDecodeError) as err:
            raise InputFileError(f"{name}: damaged HDF5 structure or data: {type(err).__name__}: {err}") from None


def check_tree(h5, name: str) -> None:
    """Check every link of ``h5`` (HDF5's own visit: fast, each group once, cycles included);
    raise :class:`InputFileError` at the first unsafe one."""
    import h5py

    links: list[tuple[bytes, int, int]] = []

    def add(link: bytes, info) -> bool | None:
        links.append((link, info.type, info.u))
        return True if len(links) > MAX_OBJECTS else None  # a non-None answer stops the visit

    h5.id.links.visit(add, info=True)
    if len(links) > MAX_OBJECTS:
        raise InputFileError(f"{name}: holds more than {MAX_OBJECTS} objects")
    kinds: dict[int, int] = {}

    def note(obj: bytes, info) -> None:
        kinds[info.addr] = info.type  # returns None: the visit goes on

    h5py.h5o.visit(h5.id, note, info=True)
    seen = {h5py.h5o.get_info(h5.id).addr: "/"}
    total = 0
    for link, kind, address in links:
        path = "/" + link.decode("utf-8", "replace")
        if kind != h5py.h5l.TYPE_HARD:
            raise InputFileError(f"{name}: {path}: {_describe_link(h5, link, kind)}; links are refused")
        if path.count("/") > MAX_DEPTH:
            raise InputFileError(f"{name}: {path}: groups nest deeper than {MAX_DEPTH}")
        first = seen.setdefault(address, path)
        if first != path:
            raise InputFileError(f"{name}: {path}: links to the object already at {first}; aliases are refused")
        if kinds.get(address) == h5py.h5o.TYPE_DATASET:
            total += check_dataset(h5py.h5d.open(h5.id, link), path, name)
            if total > MAX_TOTAL_BYTES:
                raise InputFileError(f"{name}: datasets declare more than {MAX_TOTAL_BYTES} bytes in all")


def _describe_link(h5, link: bytes, kind: int) -> str:
    import h5py

    if kind == h5py.h5l.TYPE_SOFT:
        return f"is a soft link to {h5.id.links.get_val(link).decode('utf-8', 'replace')}"
    if kind == h5py.h5l.TYPE_EXTERNAL:
        target, inside = h5.id.links.get_val(link)
        return f"is an external link to {target.decode('utf-8', 'replace')}:{inside.decode('utf-8', 'replace')}"
    return f"is a user-defined link (type {kind})"


def check_dataset(dsid, path: str, name: str) -> int:
    """The bytes the dataset ``dsid`` (a low-level ``h5py.h5d.DatasetID``) declares, once its storage,
    element type and size pass."""
    import h5py

    plist = dsid.get_create_plist()
    if plist.get_layout() == h5py.h5d.VIRTUAL or plist.get_external_count():
        raise InputFileError(f"{name}: {path}: stores its data outside the file; refused")
    try:
        dtype = dsid.dtype
    except (TypeError, ValueError) as err:  # a damaged datatype message: integers of 10 bytes, unknown encodings
        raise InputFileError(f"{name}: {path}: holds data of a type numpy cannot represent ({err})") from None
    if dtype.kind not in READABLE_KINDS or dtype.kind == "O" and h5py.check_string_dtype(dtype) is None:
        raise InputFileError(f"{name}: {path}: holds {dtype} data; only numbers and strings are read")
    space = dsid.get_space()
    if space.get_simple_extent_type() == h5py.h5s.NULL:
        return 0
    elements = math.prod(space.shape)
    if elements > MAX_ELEMENTS:
        raise InputFileError(f"{name}: {path}: declares {elements} elements, more than the limit of {MAX_ELEMENTS}")
    size = elements * dtype.itemsize
    if size > MAX_BYTES:
        raise InputFileError(f"{name}: {path}: declares {size} bytes, more than the limit of {MAX_BYTES}")
    return size

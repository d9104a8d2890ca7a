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
import faulthandler
import functools
import math
import os
import select
import signal
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

from neurodeploy import budget
from neurodeploy.atomic import deferred_signals
from neurodeploy.errors import InputFileError

MAX_ELEMENTS = 1 << 26  # elements a dataset may declare
MAX_BYTES = 1 << 29  # bytes a dataset may declare, read wide
MAX_TOTAL_BYTES = 1 << 30  # bytes all datasets together may declare, read wide
WIDE_BYTES = 8  # numbers are read as 64-bit integers or floats
MAX_OBJECTS = 100_000  # groups and datasets in a file
MAX_DEPTH = 64  # nested groups
READABLE_KINDS = "biufSO"  # booleans, numbers, fixed and variable-length strings
H5_ERRORS = (OSError, KeyError, RuntimeError)  # what h5py raises for damaged structures or data
REHEARSAL_SECONDS = 10  # a reading rehearsal taking longer than this (plus the size allowance) hangs
REHEARSAL_BYTES_PER_SECOND = 10e6
DAMAGED = "damaged HDF5 structure or data"


@functools.cache
def h5py_module() -> ModuleType:
    """h5py, imported once, with interrupts held back (:func:`~neurodeploy.atomic.deferred_signals`).

    Its import registers HDF5 type converters, then the exit call that removes them. An interrupt
    between the two leaves HDF5's own exit handler calling h5py after the interpreter has gone,
    and the process ends in a segfault.
    """
    with deferred_signals():
        import h5py
    return h5py


@contextlib.contextmanager
def open_hdf5(path: str | os.PathLike, kind: str = "HDF5 file") -> Iterator[Any]:
    """The checked ``h5py.File`` of ``path``, read-only; HDF5 errors inside become :class:`InputFileError`.

    ``kind`` names what the file should be in the message when it cannot be opened.
    """
    h5py = h5py_module()
    name = str(path)
    try:
        h5 = h5py.File(path, "r")
    except (OSError, ValueError) as err:
        raise InputFileError(f"{name}: not a readable {kind}: cannot open as HDF5: {err}") from None
    with h5:
        try:
            indirect = check_tree(h5, name)
            if indirect:
                rehearse(path, name, indirect)
            yield h5
        except (*H5_ERRORS, UnicodeDecodeError) as err:
            raise InputFileError(f"{name}: {DAMAGED}: {type(err).__name__}: {err}") from None


def rehearse(path: str | os.PathLike, name: str, datasets: list[str]) -> None:
    """Read ``datasets`` of ``path`` once in a forked child first: the HDF5 library can loop forever
    or crash reading some damaged data (a corrupted heap of variable-length strings, found by
    fuzzing), and only a child can be stopped. A child that hangs or dies makes an
    :class:`InputFileError` naming the dataset it was reading; the errors it meets are left for the
    caller's own read to report. A no-op without fork.
    """
    if not hasattr(os, "fork"):
        return
    seconds = REHEARSAL_SECONDS + os.path.getsize(path) / REHEARSAL_BYTES_PER_SECOND
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report each dataset before reading it, then "done"; never returns
        code = 1
        try:
            faulthandler.disable()  # a crash here is expected and reported by the parent
            os.close(read_end)
            code = _read_all(path, datasets, write_end)
        finally:
            os._exit(code)
    os.close(write_end)
    last, ended = "", "timeout"
    try:
        last, ended = _follow_child(read_end, seconds)
    finally:
        os.close(read_end)
        if ended == "timeout":  # or the parent was interrupted: the child goes too
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    where = f"reading {last}" if last else "opening it"
    if ended == "timeout":
        raise InputFileError(f"{name}: {where} did not finish within {seconds:.0f} s; {DAMAGED}")
    if ended == "died":
        how = (
            f"signal {signal.Signals(os.WTERMSIG(status)).name}"
            if os.WIFSIGNALED(status)
            else f"exit status {os.WEXITSTATUS(status)}"
        )
        raise InputFileError(f"{name}: the HDF5 library failed ({how}) {where}; {DAMAGED}")


def _read_all(path, datasets: list[str], out: int) -> int:
    """In the child: read each dataset, writing its path to ``out`` first; 0 once all are read."""
    try:
        h5py = h5py_module()
        with h5py.File(path, "r") as h5:
            for dataset in datasets:
                os.write(out, dataset.encode("utf-8", "replace") + b"\n")
                try:
                    h5[dataset][()]
                except (*H5_ERRORS, TypeError, ValueError):  # the parent's reader reports these
                    pass
        os.write(out, b"\0done\n")
        return 0
    except BaseException:  # an interrupt, an error opening: the parent's own read reports it
        os.write(out, b"\0done\n")
        return 1


def _follow_child(fd: int, seconds: float) -> tuple[str, str]:
    """(the last dataset the child named, how it ended: "done", "died" or "timeout") within ``seconds``."""
    deadline = time.monotonic() + seconds
    buffer = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return _last(buffer), "timeout"
        chunk = os.read(fd, 65536)
        if not chunk:  # the pipe closed without "done": the child died
            return _last(buffer), "died"
        buffer += chunk
        if buffer.endswith(b"\0done\n"):
            return "", "done"


def _last(buffer: bytes) -> str:
    lines = buffer.rstrip(b"\n").split(b"\n")
    return lines[-1].decode("utf-8", "replace")


def check_tree(h5, name: str) -> list[str]:
    """Check every link of ``h5`` (HDF5's own visit: fast, each group once, cycles included);
    raise :class:`InputFileError` at the first unsafe one.

    Returns the datasets read through structures the file describes (chunk indexes and filters,
    the heap of variable-length strings), which :func:`rehearse` reads first; contiguous and
    compact data of fixed size is one bounded read.
    """
    h5py = h5py_module()
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
    total, indirect = 0, []
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
            dsid = h5py.h5d.open(h5.id, link)
            total += check_dataset(dsid, path, name)
            if total > MAX_TOTAL_BYTES:
                raise InputFileError(
                    f"{name}: datasets declare more than {MAX_TOTAL_BYTES} bytes in all "
                    f"(numbers counted as read, 64 bits each)"
                )
            budget.require(total, f"{name}: reading its datasets (numbers read as 64 bits each)")
            if _read_indirectly(dsid):
                indirect.append(path)
    return indirect


def _describe_link(h5, link: bytes, kind: int) -> str:
    h5py = h5py_module()
    if kind == h5py.h5l.TYPE_SOFT:
        return f"is a soft link to {h5.id.links.get_val(link).decode('utf-8', 'replace')}"
    if kind == h5py.h5l.TYPE_EXTERNAL:
        target, inside = h5.id.links.get_val(link)
        return f"is an external link to {target.decode('utf-8', 'replace')}:{inside.decode('utf-8', 'replace')}"
    return f"is a user-defined link (type {kind})"


def _read_indirectly(dsid) -> bool:
    """Chunked (possibly filtered) storage, or variable-length strings."""
    h5py = h5py_module()
    if dsid.get_create_plist().get_layout() == h5py.h5d.CHUNKED:
        return True
    info = h5py.check_string_dtype(dsid.dtype)
    return info is not None and info.length is None


def check_dataset(dsid, path: str, name: str) -> int:
    """The bytes the dataset ``dsid`` (a low-level ``h5py.h5d.DatasetID``) declares, once its storage,
    element type and size pass."""
    h5py = h5py_module()
    plist = dsid.get_create_plist()
    if plist.get_layout() == h5py.h5d.VIRTUAL or plist.get_external_count():
        raise InputFileError(f"{name}: {path}: stores its data outside the file; refused")
    try:
        dtype = dsid.dtype
    except (TypeError, ValueError) as err:  # a damaged datatype message: integers of 10 bytes, unknown encodings
        raise InputFileError(f"{name}: {path}: holds data of a type numpy cannot represent ({err})") from None
    if dtype.kind not in READABLE_KINDS or (dtype.kind == "O" and h5py.check_string_dtype(dtype) is None):
        raise InputFileError(f"{name}: {path}: holds {dtype} data; only numbers and strings are read")
    space = dsid.get_space()
    if space.get_simple_extent_type() == h5py.h5s.NULL:
        return 0
    elements = math.prod(space.shape)
    if elements > MAX_ELEMENTS:
        raise InputFileError(f"{name}: {path}: declares {elements} elements, more than the limit of {MAX_ELEMENTS}")
    size = elements * max(dtype.itemsize, WIDE_BYTES if dtype.kind in "biuf" else 1)  # numbers are read as int64
    if size > MAX_BYTES:
        raise InputFileError(f"{name}: {path}: declares {size} bytes, more than the limit of {MAX_BYTES}")
    return size

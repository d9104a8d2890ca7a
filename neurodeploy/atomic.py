"""Atomic file output: write to a temporary name in the same folder, rename when complete.

:func:`atomic_path` is how every output file is written; :func:`replace_all` puts a
set of staged files in place together; :func:`deferred_signals` holds SIGINT,
SIGTERM and SIGHUP back over the few steps that must not be cut in two.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path
from typing import Iterable, Iterator

from neurodeploy.errors import OutputFileError

# the signals that interrupt a command: raised as exceptions by the CLI, held back by deferred_signals
INTERRUPTS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP back while the block runs; the first one that came is raised
    again when it ends, for the handler that was in place before.

    Works through Python's handlers (which run in the main thread whatever thread the
    signal reached); a no-op off the main thread, where handlers cannot be changed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {signum: signal.signal(signum, lambda signum, frame: caught.append(signum)) for signum in INTERRUPTS}
    try:
        yield
    finally:
        restore_handlers(previous)
        if caught:
            signal.raise_signal(caught[0])


def restore_handlers(previous: dict) -> None:
    """Put each signal's previous handler back; all of them, even when one raises as soon as it is back."""
    if previous:
        (signum, handler), *rest = previous.items()
        try:
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        finally:
            restore_handlers(dict(rest))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    On any error (or interrupt) the temporary file is removed and ``path`` is
    left as it was, so no half-written output ever carries the final name. An
    ``OSError`` while writing (a full disk, no permission) becomes
    :class:`OutputFileError` naming ``path``.
    """
    path = Path(path)
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with deferred_signals():  # the temporary file exists only once the cleanup below knows its name
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
            os.close(fd)
            tmp_path = Path(name)
        umask = os.umask(0)
        os.umask(umask)
        tmp_path.chmod(0o666 & ~umask)  # mkstemp makes it private; outputs get the usual mode
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as err:
        raise OutputFileError(path, f"cannot write: {err.strerror or err}") from err
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


def replace_all(moves: Iterable[tuple[Path, Path]], backup_dir: Path) -> None:
    """Rename each staged ``(source, destination)`` pair into place, all or none.

    Signals wait until every rename is done. Destinations that exist are first
    linked (or copied) into ``backup_dir``, on the same file system; if a rename
    fails, those already made are undone and the previous files restored.
    """
    done: list[tuple[Path, Path | None]] = []
    with deferred_signals():
        try:
            for source, destination in moves:
                backup = _backup(destination, backup_dir) if destination.exists() else None
                os.replace(source, destination)
                done.append((destination, backup))
        except OSError as err:
            failed = destination
            for placed, backup in reversed(done):
                if backup is None:
                    placed.unlink()
                else:
                    os.replace(backup, placed)
            raise OutputFileError(failed, f"cannot put the new files in place: {err.strerror or err}; "
                                  "the ones already moved were put back") from err


def _backup(path: Path, backup_dir: Path) -> Path:
    backup = backup_dir / f"{path.name}.previous"
    try:
        os.link(path, backup)
    except OSError:  # no hard links on this file system
        shutil.copy2(path, backup)
    return backup

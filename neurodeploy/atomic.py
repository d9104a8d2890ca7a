"""Output files: written only onto regular files or new paths, under a temporary name, renamed when complete.

:func:`atomic_path` is how every output file is written. :func:`staged_outputs` makes a
command's outputs in one folder all or nothing: inside it, :func:`atomic_path` writes into a
staging folder, and the files are renamed into place together when the command succeeds.
:func:`check_output` refuses, by name, anything but a regular file or a path that does not
exist yet (a device, a FIFO, a directory, a symlink to one). :func:`deferred_signals` holds
SIGINT, SIGTERM and SIGHUP back over the few steps that must not be cut in two.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from neurodeploy.errors import ExistingOutputError, OutputFileError

# the signals that interrupt a command: raised as exceptions by the CLI, held back by deferred_signals
INTERRUPTS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)
# errors a writer meets on a full disk or a read-only file system (h5py and torch raise RuntimeError)
WRITE_ERRORS = (OSError, RuntimeError)


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
            _set_handler(signum, signal.SIG_DFL if handler is None else handler)
        finally:
            restore_handlers(dict(rest))


def _set_handler(signum: int, handler) -> None:
    """``signal.signal``, once more where Python 3.10 reports a signal that arrived while a handler
    was being replaced ("Signal N ignored due to race condition", raised before the change)."""
    try:
        signal.signal(signum, handler)
    except OSError as err:
        if "race condition" not in str(err):
            raise
        signal.signal(signum, handler)


def check_output(path: str | os.PathLike) -> Path:
    """``path`` if it is a regular file (or a symlink to one) or does not exist; otherwise
    :class:`OutputFileError` naming what it is, and nothing is touched."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            raise OutputFileError(
                path, "is a symlink to nothing; outputs are written only onto regular files or new paths"
            ) from None
        return path
    except OSError as err:  # a file where a folder should be, a loop of symlinks, no permission
        raise OutputFileError(path, f"cannot write: {err.strerror or err}") from None
    if not stat.S_ISREG(mode):
        what = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        link = " (through a symlink)" if os.path.islink(path) else ""
        raise OutputFileError(path, f"is {what}{link}; outputs are written only onto regular files or new paths")
    return path


def refuse_existing(paths: Iterable[str | os.PathLike], force: bool = False) -> None:
    """Before any work: :class:`ExistingOutputError` naming each of ``paths`` that exists, unless ``force``
    (each checked by :func:`check_output`)."""
    existing = [str(p) for p in paths if check_output(p).exists()]
    if existing and not force:
        raise ExistingOutputError(f"{', '.join(existing)} exist(s); pass --force to overwrite")


def check_output_folder(path: str | os.PathLike) -> Path:
    """``path`` if it is a folder (or a symlink to one) or does not exist; otherwise :class:`OutputFileError`."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return check_output(path)  # a dangling symlink is refused
    except OSError as err:
        raise OutputFileError(path, f"cannot write: {err.strerror or err}") from None
    if not stat.S_ISDIR(mode):
        what = "a regular file" if stat.S_ISREG(mode) else next((n for t, n in _KINDS if t(mode)), "not a folder")
        raise OutputFileError(path, f"is {what}, not a folder for the outputs")
    return path


def check_writable(path: str | os.PathLike, folder: bool = False) -> Path:
    """:func:`check_output` (or :func:`check_output_folder`), and a file can be made where ``path`` goes
    (tried with a nameless temporary file): for a command to refuse its output before the work."""
    path = check_output_folder(path) if folder else check_output(path)
    existing = next(p for p in [path if folder else path.parent, *Path(os.path.abspath(path)).parents] if p.is_dir())
    with _as_output_error(path), tempfile.TemporaryFile(dir=existing):
        pass
    return path


@dataclass
class Staging:
    """The outputs of one command under ``folder``, written into ``root`` (a private folder inside it)."""

    folder: Path
    root: Path
    overwrite: bool
    moves: dict[Path, Path] = field(default_factory=dict)  # final path -> staged path

    def covers(self, path: Path) -> bool:
        return self.folder in Path(os.path.abspath(path)).parents

    def stage(self, path: Path) -> Path:
        """The staged path of the output ``path``; it is renamed into place when the command succeeds."""
        final = Path(os.path.abspath(path))
        staged = self.root / final.relative_to(self.folder)
        staged.parent.mkdir(parents=True, exist_ok=True)
        self.moves[final] = staged
        return staged


_STAGING: contextvars.ContextVar[Staging | None] = contextvars.ContextVar("neurodeploy_staging", default=None)


def staged_path(path: str | os.PathLike) -> Path:
    """Where the output ``path``, written earlier by this command, is until the command ends."""
    staging = _STAGING.get()
    final = Path(os.path.abspath(path))
    return staging.moves.get(final, Path(path)) if staging is not None else Path(path)


@contextlib.contextmanager
def staged_outputs(folder: str | os.PathLike, overwrite: bool = True, prefix: str = ".staging-") -> Iterator[Staging]:
    """Stage every file the block writes under ``folder`` (through :func:`atomic_path`) and rename them
    into place together once it succeeds: all of them or none. Without ``overwrite``, an output that
    exists by then (another command wrote it meanwhile) is refused and nothing is put in place.

    Inside another staging that covers ``folder``, the block's files join that one. The folders
    made for the outputs are removed again if the block fails.
    """
    folder = Path(os.path.abspath(check_output_folder(folder)))
    outer = _STAGING.get()
    if outer is not None and (outer.covers(folder) or outer.folder == folder):
        yield outer
        return
    made: list[Path] = []
    root = None
    try:
        with _as_output_error(folder):
            made = _make_folders(folder)
            with deferred_signals():  # the staging folder exists only once the cleanup below knows its name
                root = Path(tempfile.mkdtemp(prefix=prefix, dir=folder))
        staging = Staging(folder, root, overwrite)
        token = _STAGING.set(staging)
        try:
            yield staging
        finally:
            _STAGING.reset(token)
        with _as_output_error(folder):
            for final in staging.moves:
                made += _make_folders(final.parent)
        replace_all(((staged, final) for final, staged in staging.moves.items()), root, overwrite)
        made = []
    finally:
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
        for path in reversed(made):
            with contextlib.suppress(OSError):
                path.rmdir()


@contextlib.contextmanager
def _as_output_error(path: Path) -> Iterator[None]:
    try:
        yield
    except WRITE_ERRORS as err:
        error = _write_error(path, err)
        if error is err:
            raise
        raise error from err


def _make_folders(folder: Path) -> list[Path]:
    """Make ``folder`` and its missing parents; the ones made, outermost first."""
    missing = [p for p in [folder, *folder.parents] if not p.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    ``path`` must be a regular file or new (:func:`check_output`). On any error (or interrupt)
    the temporary file is removed and ``path`` is left as it was, so no half-written output ever
    carries the final name. An error while writing (a full disk, a read-only file system, no
    permission) becomes :class:`OutputFileError` naming ``path``. Inside :func:`staged_outputs`
    the file is written into the staging folder and renamed into place with the others.
    """
    path = check_output(path)
    staging = _STAGING.get()
    if staging is not None and staging.covers(path):
        with _as_output_error(path):
            staged = staging.stage(path)
        try:
            with _as_output_error(path):
                yield staged
        except BaseException:  # a caller that goes on without this file must not get it put in place
            staging.moves.pop(Path(os.path.abspath(path)), None)
            staged.unlink(missing_ok=True)
            raise
        return
    tmp_path: Path | None = None
    try:
        with _as_output_error(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            with deferred_signals():  # the temporary file exists only once the cleanup below knows its name
                fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
                os.close(fd)
                tmp_path = Path(name)
            umask = os.umask(0)
            os.umask(umask)
            tmp_path.chmod(0o666 & ~umask)  # mkstemp makes it private; outputs get the usual mode
            yield tmp_path
            check_output(path)
            os.replace(tmp_path, path)
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


def _write_error(path: Path, err: BaseException) -> BaseException:
    """The OutputFileError for an error met writing ``path``; a library's RuntimeError only when the
    file system is full or read-only (h5py and torch report those so), else the error itself."""
    cause = _file_system_state(path)
    if isinstance(err, OSError):  # h5py's carry HDF5's whole report: its errno says it in short
        cause = os.strerror(err.errno) if err.errno else cause or _first_line(err)
    return err if cause is None else OutputFileError(path, f"cannot write: {cause}")


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [""])[0][:200]


def _file_system_state(path: Path) -> str | None:
    """``No space left on device`` or ``Read-only file system`` for the file system of ``path``, or None."""
    folder = next((p for p in Path(os.path.abspath(path)).parents if p.is_dir()), None)
    if folder is None:
        return None
    try:
        fs = os.statvfs(folder)
    except (OSError, TypeError, AttributeError):
        return None
    if fs.f_flag & getattr(os, "ST_RDONLY", 1):
        return os.strerror(errno.EROFS)
    return os.strerror(errno.ENOSPC) if fs.f_bavail == 0 else None


def replace_all(moves: Iterable[tuple[Path, Path]], backup_dir: Path, overwrite: bool = True) -> None:
    """Rename each staged ``(source, destination)`` pair into place, all or none.

    Signals wait until every rename is done. Destinations that exist are first linked (or
    copied) into ``backup_dir``, on the same file system; if a rename fails, those already
    made are undone and the previous files restored. Without ``overwrite``, a destination
    that exists is refused (each is claimed with an exclusive create, so two commands racing
    for one folder cannot both succeed). A destination that is not a regular file is refused.
    """
    done: list[tuple[Path, Path | None]] = []
    with deferred_signals():
        try:
            for k, (source, destination) in enumerate(moves):
                check_output(destination)
                backup = None
                if not overwrite:
                    _claim(destination)
                elif destination.exists():
                    backup = _backup(destination, backup_dir / f"{k}.previous")
                try:
                    os.replace(source, destination)
                except OSError:
                    if not overwrite:  # the empty file claimed above
                        destination.unlink(missing_ok=True)
                    raise
                done.append((destination, backup))
        except (OSError, OutputFileError) as err:
            for placed, backup in reversed(done):
                if backup is None:
                    with contextlib.suppress(OSError):
                        placed.unlink()
                else:
                    os.replace(backup, placed)
            if isinstance(err, OutputFileError):
                raise OutputFileError(err.path, err.reason, "nothing was put in place") from err
            raise OutputFileError(
                destination,
                f"cannot put the new files in place: {err.strerror or err}; the ones already moved were put back",
            ) from err


def _claim(path: Path) -> None:
    """Create ``path`` empty, failing if anything is there already."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    except FileExistsError:
        raise OutputFileError(
            path, "exists (written meanwhile by another command?); pass --force to overwrite"
        ) from None


def _backup(path: Path, backup: Path) -> Path:
    try:
        os.link(path, backup)
    except OSError:  # no hard links on this file system
        shutil.copy2(path, backup)
    return backup

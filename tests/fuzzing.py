"""Random valid netlists and random corruptions of valid input files, for the fuzz tests.

Corruptions come in two kinds: byte-level (truncation, flipped bits, overwritten,
deleted or inserted spans) and structured (edits made with h5py, on a parsed
TOML or checkpoint tree, or on an array and its ``.npy`` header). Each is drawn
from a ``numpy.random.Generator`` seeded with the case number, so a failing
case is reproduced from its number alone.

``NEURODEPLOY_FUZZ=nightly`` multiplies every case count by :data:`NIGHTLY_FACTOR`.
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from neurodeploy.errors import NeurodeployError
from neurodeploy.netlist import Conv, CubaNeuron, Dense, Input, Netlist

NIGHTLY_FACTOR = 20
SCALE = NIGHTLY_FACTOR if os.environ.get("NEURODEPLOY_FUZZ", "").lower() == "nightly" else 1
CASE_SECONDS = 10  # a loader taking longer on one small file counts as a hang
Rng = np.random.Generator


def cases(n: int) -> int:
    """``n`` cases in the default suite, :data:`NIGHTLY_FACTOR` times as many nightly."""
    return n * SCALE


# --------------------------------------------------------------------------- running cases


class Hang(BaseException):
    """A loader that ran past :data:`CASE_SECONDS` on one input."""


@contextlib.contextmanager
def deadline(seconds: float):
    """Raise :class:`Hang` in the main thread once ``seconds`` have passed."""

    def expire(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Tally:
    """Outcomes of a fuzz run: accepted, refused (with a NeurodeployError), and failures."""

    accepted: int = 0
    refused: int = 0
    failures: list[str] = field(default_factory=list)
    by_kind: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # wall clock
    cpu_seconds: float = 0.0  # this process's CPU time (steadier on a shared machine)

    @property
    def total(self) -> int:
        return self.accepted + self.refused + len(self.failures)

    def summary(self, name: str) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.by_kind.items()))
        return (
            f"{name}: {self.total} corrupted inputs in {self.seconds:.1f} s ({self.cpu_seconds:.1f} s CPU): "
            f"{self.refused} refused, "
            f"{self.accepted} still valid, {len(self.failures)} failures ({kinds})"
        )


def fuzz(
    n: int,
    corrupt: Callable[[Rng, Path], str],
    load: Callable[[Path], Any] | LoaderProcess,
    path: Path,
    keep: Path,
    first_seed: int = 0,
) -> Tally:
    """Run ``n`` cases: ``corrupt(rng, path)`` writes a corrupted file and names the corruption,
    ``load(path)`` must return or raise a :class:`NeurodeployError` whose message names the file.

    ``load`` runs in this process, or in a :class:`LoaderProcess`. Failing inputs are copied into
    ``keep`` as ``case<seed><suffix>``.
    """
    outcome = load.outcome if isinstance(load, LoaderProcess) else functools.partial(_outcome, load)
    tally = Tally()
    start, cpu = time.perf_counter(), time.process_time()
    for seed in range(first_seed, first_seed + n):
        kind = corrupt(np.random.default_rng(seed), path)
        label = " ".join(kind.split(";")[0].split()[:2]).split(":")[0]
        tally.by_kind[label] = tally.by_kind.get(label, 0) + 1
        problem = outcome(path)
        if problem is None:
            tally.accepted += 1
        elif problem == "":
            tally.refused += 1
        else:
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, keep / f"case{seed}{path.suffix}")
            tally.failures.append(f"case {seed} ({kind}): {problem}")
    tally.seconds, tally.cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    return tally


def _outcome(load: Callable[[Path], Any], path: Path) -> str | None:
    """None if loaded, "" if refused cleanly, else what went wrong."""
    try:
        with deadline(CASE_SECONDS):
            load(path)
    except NeurodeployError as err:
        if str(path) not in str(err) and path.name not in str(err):
            return f"the message does not name the file: {err}"
        return ""
    except Hang as err:
        return f"hang: {err}"
    except Exception as err:  # the property under test: nothing but NeurodeployError escapes
        return f"{type(err).__name__}: {err}"
    return None


class LoaderProcess:
    """A small Python process of its own that runs one loader on file after file.

    It keeps the heavy modules of the test session (torch) out of the loader's process,
    which makes the forks of :func:`neurodeploy.h5check.rehearse` cheap, and a crash or a
    hang of the loader is reported as a failing case instead of ending the test run.
    ``spec`` is ``"module:function"``.
    """

    def __init__(self, spec: str):
        self.spec = spec
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> LoaderProcess:
        return self

    def __exit__(self, *exc) -> None:
        self._stop()

    def outcome(self, path: Path) -> str | None:
        """As :func:`_outcome`, from the other process."""
        if self.proc is None:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _WORKER, str(Path(__file__).parent), self.spec],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                bufsize=1,
            )
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        if not select.select([self.proc.stdout], [], [], 3 * CASE_SECONDS)[0]:
            self._stop()
            return f"hang: no answer within {3 * CASE_SECONDS} s"
        answer = self.proc.stdout.readline()
        if not answer:
            code = self.proc.wait()
            self.proc = None
            return f"crash: the loader's process ended with status {code}"
        return None if answer == "ok\n" else "" if answer == "refused\n" else answer[len("fail ") :].rstrip("\n")

    def _stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


_WORKER = """
import importlib, sys, warnings
from pathlib import Path
warnings.simplefilter("ignore")
sys.path.insert(0, sys.argv[1])
from fuzzing import _outcome
module, name = sys.argv[2].split(":")
load = getattr(importlib.import_module(module), name)
for line in sys.stdin:
    problem = _outcome(load, Path(line.rstrip("\\n")))
    answer = "ok" if problem is None else "refused" if problem == "" else "fail " + problem.replace("\\n", " ")
    print(answer, flush=True)
"""


_NIR_CALLS = itertools.count()


def load_nir_alternately(path: Path) -> None:
    """The netlist reader on even calls, the float-graph import on odd ones (each reads the whole file)."""
    from neurodeploy.netio import load_netlist

    (load_float_graph if next(_NIR_CALLS) % 2 else load_netlist)(path)


def load_float_graph(path: Path) -> None:
    """What ``export`` reads from a foreign NIR file: its float graph, folded for the quantizer."""
    from neurodeploy.export import load_float_model
    from neurodeploy.fold import fold

    fold(load_float_model(path, steps=4).graph)


# --------------------------------------------------------------------------- byte corruptions


def corrupt_bytes(data: bytes, rng: Rng) -> tuple[bytes, str]:
    """One random byte-level corruption of ``data`` and its name."""
    buf = bytearray(data)
    n = len(buf)
    kind = rng.choice(
        ["truncate", "flip", "overwrite", "zero", "delete", "insert", "duplicate", "empty"],
        p=[0.2, 0.25, 0.15, 0.1, 0.1, 0.1, 0.08, 0.02],
    )
    at = int(rng.integers(0, n))
    span = int(rng.choice([1, 2, 4, 8, 64, 512]))
    if kind == "truncate":
        return bytes(buf[:at]), f"truncate:{at}"
    if kind == "flip":
        for pos in rng.integers(0, n, int(rng.integers(1, 9))):
            buf[pos] ^= 1 << int(rng.integers(0, 8))
        return bytes(buf), "flip"
    if kind == "overwrite":
        buf[at : at + span] = rng.integers(0, 256, len(buf[at : at + span]), dtype=np.uint8).tobytes()
        return bytes(buf), f"overwrite:{at}+{span}"
    if kind == "zero":
        buf[at : at + span] = bytes(len(buf[at : at + span]))
        return bytes(buf), f"zero:{at}+{span}"
    if kind == "delete":
        del buf[at : at + span]
        return bytes(buf), f"delete:{at}+{span}"
    if kind == "insert":
        buf[at:at] = rng.integers(0, 256, span, dtype=np.uint8).tobytes()
        return bytes(buf), f"insert:{at}+{span}"
    if kind == "duplicate":
        buf[at:at] = buf[at : at + span]
        return bytes(buf), f"duplicate:{at}+{span}"
    return b"", "empty"


def byte_corrupter(valid: bytes) -> Callable[[Rng, Path], str]:
    """A ``corrupt`` function for :func:`fuzz` writing byte corruptions of ``valid``."""

    def corrupt(rng: Rng, path: Path) -> str:
        data, kind = corrupt_bytes(valid, rng)
        path.write_bytes(data)
        return "bytes " + kind

    return corrupt


# --------------------------------------------------------------------------- HDF5 corruptions


def _objects(h5) -> list[str]:
    names: list[str] = []
    h5.visit(names.append)
    return names


def _bad_values(rng: Rng, like: np.ndarray) -> tuple[np.ndarray, str]:
    """Values of the wrong type, range or shape for a dataset shaped like ``like``."""
    shape = like.shape
    kind = rng.choice(
        [
            "nan",
            "inf",
            "fraction",
            "negative",
            "huge",
            "int64max",
            "zero",
            "string",
            "bool",
            "float",
            "uint64",
            "int8wrap",
            "empty",
            "scalar",
            "extra_dim",
            "drop_dim",
            "longer",
            "transpose",
        ]
    )
    base = np.asarray(like)
    numeric = base.dtype.kind in "biuf"
    values = base.astype(np.float64) if numeric else np.ones(shape)
    if kind == "nan":
        out = values.copy()
        out.reshape(-1)[: max(1, out.size // 2)] = np.nan if out.size else 0
        return out if out.size else np.array([np.nan]), kind
    if kind == "inf":
        return np.full(shape or (1,), rng.choice([np.inf, -np.inf])), kind
    if kind == "fraction":
        return values + 0.5, kind
    if kind == "negative":
        return -np.abs(values) - 1, kind
    if kind == "huge":
        return np.full(shape, float(rng.choice([2.0**31, 2.0**40, 1e300]))), kind
    if kind == "int64max":
        return np.full(shape, np.iinfo(np.int64).max, np.int64), kind
    if kind == "zero":
        return np.zeros(shape, np.int64), kind
    if kind == "string":
        return np.array([b"junk"] * max(1, int(np.prod(shape)))), kind
    if kind == "bool":
        return np.ones(shape, bool), kind
    if kind == "float":
        return values.astype(np.float32), kind
    if kind == "uint64":
        return np.full(shape, np.iinfo(np.uint64).max, np.uint64), kind
    if kind == "int8wrap":
        return np.full(shape, -128, np.int8), kind
    if kind == "empty":
        return np.zeros((0,) + shape[1:], np.int64), kind
    if kind == "scalar":
        return np.asarray(values.reshape(-1)[0] if values.size else 3.0), kind
    if kind == "extra_dim":
        return values[None], kind
    if kind == "drop_dim":
        return values.reshape(-1)[: max(1, values.size - 1)], kind
    if kind == "longer":
        return np.concatenate([values.reshape(-1), values.reshape(-1)[:3], [1.0]]), kind
    return values.T.copy() if values.ndim > 1 else values.reshape(-1)[::-1].copy(), kind


def _replace(group, key: str, data) -> None:
    del group[key]
    group.create_dataset(key, data=data)


def _string_edit(rng: Rng, text: bytes) -> bytes:
    """A small edit of a (JSON or name) string: a character changed, deleted or inserted."""
    buf = bytearray(text)
    at = int(rng.integers(0, max(1, len(buf))))
    choice = rng.choice(["change", "delete", "insert", "number", "truncate"])
    if choice == "truncate":
        return bytes(buf[:at])
    if choice == "number":
        digits = [i for i, c in enumerate(buf) if chr(c).isdigit()]
        if digits:
            pos = int(rng.choice(digits))
            return (
                bytes(buf[:pos])
                + rng.choice([b"-1", b"1e400", b"NaN", b"99999999999999999999", b"0.5", b'"x"'])
                + bytes(buf[pos + 1 :])
            )
    if choice == "delete" and buf:
        del buf[at]
        return bytes(buf)
    if choice == "insert":
        buf[at:at] = bytes(rng.choice([b"{", b"}", b"[", b"]", b",", b'"', b":", b"null", b"\xff"]))
        return bytes(buf)
    if buf:
        buf[at] = int(rng.integers(0, 256))
    return bytes(buf)


def corrupt_hdf5(rng: Rng, path: Path) -> str:
    """One structured corruption of the HDF5 file at ``path``, made in place with h5py; its name
    (``...:skipped`` when the drawn edit does not apply, e.g. after an earlier edit of the same case)."""
    with h5py.File(path, "r+") as h5:
        names = _objects(h5)
        target = names[int(rng.integers(0, len(names)))]
        kind = str(
            rng.choice(
                [
                    "delete",
                    "values",
                    "values",
                    "values",
                    "string",
                    "swap",
                    "soft",
                    "external",
                    "alias",
                    "cycle",
                    "huge",
                    "extra",
                    "rename",
                    "attr",
                ]
            )
        )
        try:
            kind = _edit_hdf5(rng, h5, names, target, kind)
        except (ValueError, KeyError, TypeError):  # h5py refuses the edit (a name taken, a link already gone)
            kind += ":skipped"
    return f"hdf5 {kind} {target}"


def _edit_hdf5(rng: Rng, h5, names: list[str], target: str, kind: str) -> str:
    parent_name, _, key = target.rpartition("/")
    parent = h5[parent_name or "/"]
    obj = h5[target]
    if isinstance(obj, h5py.Dataset) and (obj.size or 0) > 1 << 20:  # a huge one from an earlier edit: leave it
        return f"{kind}:skipped"
    if kind == "delete":
        del parent[key]
    elif kind in ("values", "string") and isinstance(obj, h5py.Dataset):
        data = obj[()]
        if kind == "string" and isinstance(data, (bytes, np.ndarray)) and np.asarray(data).dtype.kind in "SO":
            item = data if isinstance(data, bytes) else np.asarray(data).reshape(-1)[0]
            item = item.encode() if isinstance(item, str) else bytes(item)
            _replace(parent, key, np.array([_string_edit(rng, item)]) if np.ndim(data) else _string_edit(rng, item))
        else:
            values, name = _bad_values(rng, np.asarray(data) if np.asarray(data).dtype.kind in "biuf" else np.ones(1))
            _replace(parent, key, values)
            kind = f"values:{name}"
    elif kind == "swap":
        del parent[key]
        if isinstance(obj, h5py.Group):
            parent.create_dataset(key, data=np.arange(3))
        else:
            parent.create_group(key)
    elif kind == "soft":
        other = names[int(rng.integers(0, len(names)))]
        del parent[key]
        parent[key] = h5py.SoftLink("/" + other if rng.random() < 0.8 else "/nowhere")
    elif kind == "external":
        del parent[key]
        parent[key] = h5py.ExternalLink("/etc/hostname", "/x")
    elif kind == "alias":
        other = names[int(rng.integers(0, len(names)))]
        if other != target and not target.startswith(other + "/") and not other.startswith(target + "/"):
            del parent[key]
            parent[key] = h5[other]
    elif kind == "cycle" and isinstance(obj, h5py.Group):
        obj["loop"] = parent
    elif kind == "huge" and isinstance(obj, h5py.Dataset):
        del parent[key]
        shape = (10**12,) if rng.random() < 0.5 else (10**6, 10**6)
        parent.create_dataset(key, shape=shape, dtype="i8", chunks=(1,) * len(shape))
    elif kind == "extra":
        group = obj if isinstance(obj, h5py.Group) else parent
        group.create_dataset(f"extra{int(rng.integers(0, 9))}", data=rng.integers(-5, 5, 4))
    elif kind == "rename" and parent_name:
        parent.move(key, str(rng.choice(["99", "-1", "x", key + "0", "00"])))
    elif kind == "attr":
        obj.attrs["note"] = np.arange(10)
    else:
        kind = f"{kind}:skipped"
    return kind


def hdf5_corrupter(valid: bytes) -> Callable[[Rng, Path], str]:
    """A ``corrupt`` function: ``valid`` written out, then one to three structured HDF5 edits."""

    def corrupt(rng: Rng, path: Path) -> str:
        path.write_bytes(valid)
        kinds = [corrupt_hdf5(rng, path) for _ in range(int(rng.choice([1, 1, 1, 2, 3])))]
        return "; ".join(kinds)

    return corrupt


# --------------------------------------------------------------------------- nested-tree corruptions


def _leaves(tree, prefix=()) -> list[tuple]:
    """Paths to every node of a tree of dicts and lists (the root excluded)."""
    out = []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        out.append(prefix + (key,))
        out += _leaves(value, prefix + (key,))
    return out


def wrong_value(rng: Rng, old) -> tuple[Any, str]:
    """A value of the wrong type or range in place of ``old`` (numpy arrays and torch tensors kept in kind)."""
    kind = str(
        rng.choice(
            [
                "none",
                "string",
                "negative",
                "zero",
                "huge",
                "nan",
                "inf",
                "list",
                "dict",
                "bool",
                "float",
                "bigint",
                "empty",
            ]
        )
    )
    table = {
        "none": None,
        "string": "x" * int(rng.integers(0, 4)),
        "zero": 0,
        "huge": 10**15,
        "nan": math.nan,
        "inf": math.inf,
        "list": [1, "a", None],
        "dict": {"a": 1},
        "bool": True,
        "float": 0.5,
        "bigint": 2**70,
        "empty": [],
    }
    if kind == "negative":
        if isinstance(old, (int, float)) and not isinstance(old, bool):
            return -abs(old) - 1, kind
        return -3, kind
    return table[kind], kind


def corrupt_tree(tree, rng: Rng, replace: Callable[[Rng, Any], tuple[Any, str]] = wrong_value) -> str:
    """Apply one corruption in place to a tree of dicts and lists: delete, replace or add an entry."""
    paths = _leaves(tree)
    path = paths[int(rng.integers(0, len(paths)))]
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    action = rng.choice(["delete", "replace", "replace", "replace", "add"])
    if action == "delete":
        del parent[key]
        return f"delete {'/'.join(map(str, path))}"
    if action == "add":
        if isinstance(parent, dict):
            parent[f"unknown{int(rng.integers(0, 9))}"] = 1
        else:
            parent.append(parent[key])
        return f"add at {'/'.join(map(str, path[:-1]))}"
    value, kind = replace(rng, parent[key])
    parent[key] = value
    return f"replace {'/'.join(map(str, path))} by {kind}"


def checkpoint_value(rng: Rng, old) -> tuple[Any, str]:
    """A wrong value for a checkpoint entry: for a tensor, wrong shapes, dtypes and values; else
    :func:`wrong_value`, or an object a weights-only unpickler must refuse."""
    import datetime

    import torch

    if isinstance(old, torch.Tensor):
        kind = str(
            rng.choice(
                [
                    "nan",
                    "inf",
                    "shape",
                    "transpose",
                    "empty",
                    "scalar",
                    "int",
                    "bool",
                    "complex",
                    "half",
                    "list",
                    "string",
                ]
            )
        )
        t = old.detach().clone().float()
        if kind in ("nan", "inf") and t.numel():
            t.view(-1)[int(rng.integers(0, t.numel()))] = math.nan if kind == "nan" else -math.inf
            return t, kind
        table = {
            "shape": lambda: torch.zeros(tuple(s + 1 for s in t.shape) or (2,)),
            "transpose": lambda: t.T.contiguous() if t.dim() == 2 else t.reshape(-1, 1),
            "empty": lambda: torch.zeros(0),
            "scalar": lambda: torch.tensor(1.0),
            "int": lambda: t.to(torch.int64),
            "bool": lambda: t > 0,
            "complex": lambda: t.to(torch.complex64),
            "half": lambda: t.half(),
            "list": lambda: t.tolist(),
            "string": lambda: "weights",
        }
        return table.get(kind, lambda: t)(), kind
    if rng.random() < 0.1:
        unsafe = [datetime.date(2020, 1, 1), {1, 2}, complex(1, 2), range(3)]
        return unsafe[int(rng.integers(0, len(unsafe)))], "unsafe object"
    return wrong_value(rng, old)


# --------------------------------------------------------------------------- TOML


def to_toml(data: dict) -> str:
    """TOML text of ``data``: top-level scalars, then one table a dict (the shape of target files)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for name, table in data.items():
        if isinstance(table, dict):
            lines.append(f"[{name}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
            lines += [
                f"{k} = {{ {', '.join(f'{a} = {_toml_value(b)}' for a, b in v.items())} }}"
                for k, v in table.items()
                if isinstance(v, dict)
            ]
    return "\n".join(lines) + "\n"


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return '"none"' if value is None else repr(value)


def toml_value(rng: Rng, old) -> tuple[Any, str]:
    """Values TOML can hold, wrong for a target file: types, signs, sizes, order of ranges."""
    kind = str(
        rng.choice(
            [
                "string",
                "negative",
                "zero",
                "huge",
                "nan",
                "inf",
                "float",
                "bool",
                "reversed",
                "short",
                "nested",
                "bigint",
                "table",
            ]
        )
    )
    if kind == "reversed" and isinstance(old, list):
        return list(reversed(old)), kind
    table = {
        "string": "eight",
        "negative": -1,
        "zero": 0,
        "huge": 2**62,
        "nan": math.nan,
        "inf": math.inf,
        "float": 2.5,
        "bool": False,
        "reversed": [5, 1],
        "short": [1],
        "nested": [[1, 2], [3]],
        "bigint": 9223372036854775807,
        "table": {"a": 1},
    }
    return table[kind], kind


# --------------------------------------------------------------------------- .npy


def npy_header_edit(data: bytes, rng: Rng) -> tuple[bytes, str]:
    """A ``.npy`` file whose header lies: a huge or negative shape, another dtype, Fortran order."""
    end = data.index(b"\n") + 1
    header = data[10:end].decode("latin1")
    kind = str(rng.choice(["shape_huge", "shape_negative", "shape_more", "descr", "fortran", "garbage"]))
    if kind == "shape_huge":
        header = header.replace("'shape': (", "'shape': (1000000000000, ", 1)
    elif kind == "shape_negative":
        header = header.replace("'shape': (", "'shape': (-5, ", 1)
    elif kind == "shape_more":
        header = header.replace("'shape': (", "'shape': (2, ", 1)
    elif kind == "descr":
        descr = str(rng.choice(["<f8", "|O", "<U3", "|V8", "<c16", ">i8", "|b1", "<M8[s]"]))
        start = header.index("'descr': '") + 10
        header = header[:start] + descr + header[header.index("'", start) :]
        kind += ":" + descr
    elif kind == "fortran":
        header = header.replace("'fortran_order': False", "'fortran_order': True")
    else:
        header = header.replace("{", "{'x': __import__('os'), ", 1)
    body = header.rstrip("\n").rstrip(" ")
    pad = (-(10 + len(body) + 1)) % 64
    new = (body + " " * pad + "\n").encode("latin1")
    return data[:8] + len(new).to_bytes(2, "little") + new + data[end:], kind


def npy_bytes(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def wrong_array(rng: Rng, good: np.ndarray) -> tuple[bytes, str]:
    """An array file of the wrong dtype, shape or values in place of ``good``."""
    kind = str(
        rng.choice(
            [
                "object",
                "complex",
                "string",
                "structured",
                "datetime",
                "nan",
                "inf",
                "fraction",
                "huge",
                "negative",
                "graded",
                "extra_dim",
                "drop_dim",
                "wrong_dim",
                "empty",
                "scalar",
                "short",
                "bigendian",
                "uint64",
                "float16",
                "fortran",
            ]
        )
    )
    a = good.astype(np.int64)
    if kind == "object":
        return npy_bytes(np.array([{"a": 1}, None], dtype=object), allow_pickle=True), kind
    if kind == "complex":
        return npy_bytes(a.astype(np.complex64)), kind
    if kind == "string":
        return npy_bytes(a.astype(str)), kind
    if kind == "structured":
        return npy_bytes(np.zeros(a.shape, dtype=[("x", "i4"), ("y", "f8")])), kind
    if kind == "datetime":
        return npy_bytes(a.astype("datetime64[s]")), kind
    if kind in ("nan", "inf"):
        f = a.astype(np.float64)
        f.reshape(-1)[int(rng.integers(0, f.size))] = np.nan if kind == "nan" else -np.inf
        return npy_bytes(f), kind
    if kind == "fraction":
        return npy_bytes(a + 0.25), kind
    if kind == "huge":
        return npy_bytes(a * 0 + 2**40), kind
    if kind == "negative":
        return npy_bytes(-a - 1), kind
    if kind == "graded":
        return npy_bytes(a * 3 + 2), kind
    if kind == "extra_dim":
        return npy_bytes(a[None, None]), kind
    if kind == "drop_dim":
        return npy_bytes(a.reshape(a.shape[0], -1)), kind
    if kind == "wrong_dim":
        return npy_bytes(np.concatenate([a, a[..., :1]], axis=-1)), kind
    if kind == "empty":
        return npy_bytes(a[:0]), kind
    if kind == "scalar":
        return npy_bytes(np.asarray(1)), kind
    if kind == "short":
        return npy_bytes(a[:, :1] if a.ndim > 2 else a[:1]), kind
    if kind == "bigendian":
        return npy_bytes(a.astype(">i8")), kind
    if kind == "uint64":
        return npy_bytes(a.astype(np.uint64) + np.uint64(2**63)), kind
    if kind == "float16":
        return npy_bytes(a.astype(np.float16)), kind
    return npy_bytes(np.asfortranarray(a)), kind


def sample_netlist(input_layer: bool) -> Netlist:
    """A small netlist with every kind of field a reader checks: an input layer (or an input shape),
    a padded conv with a per-channel bias, an implied flatten, a dense layer with delays, bias and a
    name, and the run conventions."""
    rng = np.random.default_rng(0)
    neuron = CubaNeuron(vth=50, du=100, dv=200, bias_exp=6)
    layers: list = [Input((2, 4, 4), neuron, bias=rng.integers(0, 40, (2, 4, 4)))] if input_layer else []
    layers += [
        Conv(rng.integers(-8, 9, (2, 2, 3, 3)), neuron, padding=(1, 1), bias=rng.integers(-5, 5, 2)),
        Dense(
            rng.integers(-100, 100, (3, 32)),
            neuron,
            bias=rng.integers(-20, 30, 3),
            delay=rng.integers(0, 4, (3, 32)),
            name="out",
        ),
    ]
    return Netlist(
        layers,
        input_shape=None if input_layer else (2, 4, 4),
        reset_interval=7,
        reset_offset=1,
        output_window=(2, 9),
        meta={"simulation": {"Ts": 1, "tSample": 9}},
    )

"""Datasets read from local files only (nothing is downloaded).

``load_dataset(name, root, split)`` returns ``(x, y)``: ``x`` float32 in [0, 1],
(N, C, H, W), and ``y`` int64 labels. Names and where the files must be:

* ``digits``: scikit-learn's 8x8 digits (embedded, no ``root``), pixels / 16, shape
  (N, 1, 8, 8). Split: ``sklearn.model_selection.train_test_split(test_size=0.25,
  stratify=y, random_state=0)``, 1347 train / 450 test (:data:`DIGITS_SPLIT`).
* ``mnist`` / ``fashion-mnist``: the IDX files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``,
  optionally ``.gz``) in ``root/MNIST/raw`` or ``root/FashionMNIST/raw`` (torchvision's
  layout), ``root/raw`` or ``root`` itself. Shape (N, 1, 28, 28).
* ``cifar10``: ``root/cifar-10-batches-py`` (``data_batch_1..5``, ``test_batch``, read
  with an unpickler that only rebuilds numpy arrays) or ``root/cifar-10-batches-bin``
  (``data_batch_1..5.bin``, ``test_batch.bin``); either folder may be ``root`` itself.
  Shape (N, 3, 32, 32).
* ``nmnist``: the original event files, ``root/Train/<digit>/*.bin`` and
  ``root/Test/<digit>/*.bin``; events binned into ``steps`` bins of ``bin_us``
  microseconds (default: 300 ms spread over the bins). Returns uint8 spikes
  (N, T, 2, 34, 34) as a :class:`PackedSpikes` (bit-packed; index it for arrays),
  channel 0 = OFF and 1 = ON events; several events in one bin make one spike.
"""

from __future__ import annotations

import codecs
import gzip
import io
import math
import pickle
import zlib
from pathlib import Path

import numpy as np

from neurodeploy import budget
from neurodeploy.errors import NeurodeployError, printable

try:
    from numpy._core.multiarray import _reconstruct as _np_reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct as _np_reconstruct  # type: ignore[no-redef]  # numpy 1.x path

DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "nmnist")
_ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "n-mnist": "nmnist",
}
DIGITS_SPLIT = {
    "method": "sklearn.model_selection.train_test_split",
    "test_size": 0.25,
    "stratify": True,
    "random_state": 0,
    "n_train": 1347,
    "n_test": 450,
}
NMNIST_DURATION_US = 300_000
SAMPLE_GROWTH = 4  # a byte of a file becomes a float32 sample value
GZIP_CHUNK = 1 << 20
MNIST_SHAPE = (28, 28)
CIFAR_SAMPLE = 3072  # bytes of one CIFAR-10 image
NUM_CLASSES = 10


class DatasetError(NeurodeployError, ValueError):
    """A missing folder or file, or a file that is not what it should be."""


def dataset_name(name: str) -> str:
    """Canonical dataset name; raise :class:`DatasetError` for unknown ones."""
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return key


def split_info(name: str, **params) -> dict:
    """How the train/test split of ``name`` is made (stored in checkpoints)."""
    name = dataset_name(name)
    if name == "digits":
        return dict(DIGITS_SPLIT)
    return {"method": "official train/test files", **params}


def load_dataset(
    name: str, root: str | Path | None = None, split: str = "train", *, steps: int = 30, bin_us: int | None = None
) -> tuple[np.ndarray | PackedSpikes, np.ndarray]:
    """Load one split of a dataset as ``(x, y)`` (see the module docstring).

    ``steps`` and ``bin_us`` only matter for ``nmnist``.
    """
    name = dataset_name(name)
    if split not in ("train", "test"):
        raise DatasetError(f"split must be 'train' or 'test', got {split!r}")
    if name == "digits":
        return _digits(split)
    if root is None:
        raise DatasetError(f"dataset {name!r} needs a data folder (--data-root DIR); nothing is downloaded")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"data folder {str(root)!r} does not exist or is not a folder")
    if name == "cifar10":
        return _cifar10(root, split)
    if name == "nmnist":
        return _nmnist(root, split, steps, bin_us)
    return _mnist_like(root, split, "MNIST" if name == "mnist" else "FashionMNIST")


def _digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None]
    y = data.target.astype(np.int64)
    s = DIGITS_SPLIT
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=s["test_size"], stratify=y, random_state=s["random_state"]
    )
    return (x_tr, y_tr) if split == "train" else (x_te, y_te)


# --- MNIST / Fashion-MNIST (IDX files) ---------------------------------------------------


def _read_bytes(path: Path) -> bytes | bytearray:
    """The file's bytes, decompressed if it ends in .gz, within the memory budget (a gzip stream is
    decompressed only up to it); unreadable or damaged files raise DatasetError."""
    limit = budget.limit() // SAMPLE_GROWTH
    try:
        if path.suffix != ".gz":
            budget.require(path.stat().st_size * SAMPLE_GROWTH, f"{path}: its samples as float32")
            return path.read_bytes()
        data = bytearray()
        with gzip.open(path, "rb") as stream:
            while len(data) <= limit and (chunk := stream.read(GZIP_CHUNK)):
                data += chunk
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"{path}: cannot read: {err}") from None
    budget.require(len(data) * SAMPLE_GROWTH, f"{path}: decompressed (stopped at {len(data)} bytes), as float32")
    return data


def _labels(labels: np.ndarray, path: Path) -> np.ndarray:
    """Class labels as int64, each one of the 10 classes."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DatasetError(f"{path}: labels must be 0..{NUM_CLASSES - 1}, found {labels.min()} .. {labels.max()}")
    return labels


def _read_idx(path: Path, sample_shape: tuple[int, ...]) -> np.ndarray:
    """An IDX array of unsigned bytes shaped (N, *sample_shape) with N >= 1."""
    raw, dims = _read_bytes(path), 1 + len(sample_shape)
    if len(raw) < 4 + 4 * dims or raw[:2] != b"\0\0" or raw[2] != 0x08 or raw[3] != dims:
        raise DatasetError(f"{path}: not an IDX file of unsigned bytes with {dims} dimensions")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    if shape[1:] != sample_shape or shape[0] < 1:
        raise DatasetError(
            f"{path}: header says shape {shape}, expected (N >= 1, {', '.join(map(str, sample_shape))})".replace(
                ", )", ")"
            )
        )
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * dims)
    if data.size != math.prod(shape):
        raise DatasetError(f"{path}: header says {shape} but the file holds {data.size} bytes")
    return data.reshape(shape)


def _find(folders: list[Path], names: list[str]) -> list[Path] | None:
    """The first folder holding every name (plain or .gz), as paths."""
    for folder in folders:
        found = []
        for n in names:
            hits = [folder / n, folder / (n + ".gz")]
            found.append(next((p for p in hits if p.is_file()), None))
        if all(found):
            return found  # type: ignore[return-value]
    return None


def _mnist_like(root: Path, split: str, folder: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    names = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
    folders = [root / folder / "raw", root / "raw", root]
    paths = _find(folders, names)
    if paths is None:
        raise DatasetError(
            f"{folder} {split} files not found: expected {names[0]}[.gz] and {names[1]}[.gz] in one of "
            + ", ".join(str(f) for f in folders)
        )
    images = _read_idx(paths[0], MNIST_SHAPE)
    labels = _read_idx(paths[1], ())
    if len(images) != len(labels):
        raise DatasetError(f"{paths[0]} has {len(images)} images but {paths[1]} has {len(labels)} labels")
    return (images.astype(np.float32) / 255.0)[:, None], _labels(labels, paths[1])


# --- CIFAR-10 -----------------------------------------------------------------------------


class _NdarrayName:
    """What the global ``numpy.ndarray`` unpickles to: a name :func:`_reconstruct` accepts, not a constructor
    (called, ``numpy.ndarray`` would allocate any shape, or view a buffer with strides of 0)."""

    def __new__(cls, *args, **kwargs):
        raise pickle.UnpicklingError("numpy.ndarray is called, not rebuilt as numpy pickles arrays; refused")


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays (as numpy pickles them) and builtin containers; refuses anything else."""

    def find_class(self, module: str, name: str):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return _reconstruct
        if (module, name) == ("numpy", "ndarray"):
            return _NdarrayName
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if (module, name) == ("_codecs", "encode"):  # bytes in protocol-2 pickles written by Python 3
            return codecs.encode
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")


def _reconstruct(cls, shape, dtype):
    """The empty array numpy's pickles start from (its data comes with the pickle's state, checked by numpy)."""
    if cls is not _NdarrayName or tuple(shape) != (0,):
        raise pickle.UnpicklingError(f"refusing to rebuild {cls!r} of shape {shape!r}")
    return _np_reconstruct(np.ndarray, (0,), dtype)


def _cifar_py(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _ArrayUnpickler(io.BytesIO(_read_bytes(path)), encoding="latin1").load()
        data, labels = batch["data"], batch["labels"]
    except (
        pickle.UnpicklingError,
        KeyError,
        TypeError,
        EOFError,
        ValueError,
        IndexError,
        AttributeError,
        OverflowError,
        MemoryError,
        RecursionError,
    ) as err:  # what a damaged pickle or a wrong structure raises
        raise DatasetError(
            f"{path}: not a CIFAR-10 python batch ({type(err).__name__}: {printable(str(err))[:200]})"
        ) from None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != CIFAR_SAMPLE:
        raise DatasetError(f"{path}: expected data as a uint8 array (N, {CIFAR_SAMPLE}), got {_kind(data)}")
    if isinstance(labels, list) and all(type(v) is int for v in labels):
        labels = np.array(labels, dtype=np.int64)
    if not isinstance(labels, np.ndarray) or labels.dtype.kind not in "iu" or labels.shape != (len(data),):
        raise DatasetError(f"{path}: expected {len(data)} integer labels, got {_kind(labels)}")
    return data, _labels(labels, path)


def _kind(value) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array {value.shape}"
    return f"a {type(value).__name__}" + (f" of {len(value)}" if isinstance(value, (list, tuple)) else "")


def _cifar_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.frombuffer(_read_bytes(path), np.uint8)
    if raw.size % 3073:
        raise DatasetError(f"{path}: size {raw.size} is not a multiple of a 3073-byte CIFAR-10 record")
    records = raw.reshape(-1, 3073)
    return records[:, 1:], _labels(records[:, 0], path)


def _cifar10(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    for folder, reader, suffix in (
        (root / "cifar-10-batches-py", _cifar_py, ""),
        (root, _cifar_py, ""),
        (root / "cifar-10-batches-bin", _cifar_bin, ".bin"),
        (root, _cifar_bin, ".bin"),
    ):
        paths = [folder / (n + suffix) for n in names]
        if all(p.is_file() for p in paths):
            parts = [reader(p) for p in paths]
            data = np.concatenate([d for d, _ in parts]).reshape(-1, 3, 32, 32)
            return data.astype(np.float32) / 255.0, np.concatenate([lab for _, lab in parts])
    raise DatasetError(
        f"CIFAR-10 {split} files not found under {root}: expected {', '.join(names)} in "
        f"{root / 'cifar-10-batches-py'} (python batches) or the same names with .bin in "
        f"{root / 'cifar-10-batches-bin'} (binary version)"
    )


# --- N-MNIST --------------------------------------------------------------------------------


def read_nmnist_events(path: Path) -> dict[str, np.ndarray]:
    """Events of one N-MNIST file: x, y (0..33), polarity p (1 = ON) and time ts in us.

    Each event is 5 bytes: x, y, then polarity in the top bit and a 23-bit timestamp.
    """
    raw = np.frombuffer(_read_bytes(Path(path)), np.uint8)
    if raw.size % 5:
        raise DatasetError(f"{path}: size {raw.size} is not a multiple of 5-byte N-MNIST events")
    ev = raw.reshape(-1, 5).astype(np.int64)
    ts = ((ev[:, 2] & 0x7F) << 16) | (ev[:, 3] << 8) | ev[:, 4]
    return {"x": ev[:, 0], "y": ev[:, 1], "p": ev[:, 2] >> 7, "ts": ts}


def bin_events(ev: dict[str, np.ndarray], steps: int, bin_us: int) -> np.ndarray:
    """Spikes (T, 2, 34, 34) uint8 of the events in the first ``steps * bin_us`` us."""
    out = np.zeros((steps, 2, 34, 34), np.uint8)
    t = ev["ts"] // bin_us
    keep = (t < steps) & (ev["x"] < 34) & (ev["y"] < 34)
    out[t[keep], ev["p"][keep], ev["y"][keep], ev["x"][keep]] = 1
    return out


class PackedSpikes:
    """Binary spikes (N, *shape) kept 8 to a byte; indexing returns unpacked uint8 arrays.

    N-MNIST's 60,000 training samples at T = 30 take 0.5 GB this way instead of 4 GB.
    """

    def __init__(self, samples: list[np.ndarray]):
        self.sample_shape = samples[0].shape if samples else ()
        self.bits = np.stack([np.packbits(s.reshape(-1)) for s in samples]) if samples else np.zeros((0, 0), np.uint8)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.bits), *self.sample_shape)

    def __len__(self) -> int:
        return len(self.bits)

    def __getitem__(self, index) -> np.ndarray:
        rows = self.bits[index]
        size = int(np.prod(self.sample_shape))
        flat = np.unpackbits(rows, axis=-1, count=size)
        return flat.reshape(*rows.shape[:-1], *self.sample_shape)

    @property
    def nbytes(self) -> int:
        return int(self.bits.nbytes)

    def take(self, indices, axis: int = 0) -> PackedSpikes:
        """The samples at ``indices``, still packed (as ``ndarray.take`` along the sample axis)."""
        if axis != 0:
            raise ValueError(f"packed spikes are taken along the sample axis 0, not {axis}")
        out = PackedSpikes([])
        out.sample_shape, out.bits = self.sample_shape, self.bits.take(indices, axis=0)
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        full = self[:]
        return full if dtype is None else full.astype(dtype)


def _nmnist(root: Path, split: str, steps: int, bin_us: int | None) -> tuple[PackedSpikes, np.ndarray]:
    if steps < 1:
        raise DatasetError(f"nmnist: steps = {steps} must be >= 1")
    if bin_us is not None and bin_us < 1:
        raise DatasetError(f"nmnist: bin_us = {bin_us} must be >= 1")
    bin_us = bin_us or NMNIST_DURATION_US // steps
    name = "Train" if split == "train" else "Test"
    folder = next((f for f in (root / name, root / name.lower()) if f.is_dir()), None)
    files = (
        [] if folder is None else [(p, d) for d in range(NUM_CLASSES) for p in sorted((folder / str(d)).glob("*.bin"))]
    )
    if not files:
        raise DatasetError(
            f"N-MNIST {split} events not found: expected {root / name}/<digit 0-9>/*.bin "
            "(the original binary files, Train.zip and Test.zip unpacked)"
        )
    budget.require(
        len(files) * steps * 2 * 34 * 34 // 8, f"{folder}: {len(files)} samples of {steps} steps, bit-packed"
    )
    x = PackedSpikes([bin_events(read_nmnist_events(p), steps, bin_us) for p, _ in files])
    return x, np.array([d for _, d in files], dtype=np.int64)

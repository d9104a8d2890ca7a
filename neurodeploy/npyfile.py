"""Untrusted ``.npy`` array files (input spikes, input biases) read safely.

The header is checked before any data is read: a number dtype (never a pickle,
never an ``.npz`` archive), no negative size, a declared size the file really
holds, and room in the memory budget (:mod:`neurodeploy.budget`) for the array
read as 64-bit integers. Every refusal is an :class:`InputFileError` naming the file.
"""

from __future__ import annotations

import math
import os
import tokenize

import numpy as np

from neurodeploy import budget
from neurodeploy.errors import InputFileError
from neurodeploy.fixed_point import INT32


def load_array(path: str) -> np.ndarray:
    """A finite, integer-valued ``.npy`` array (never a pickle, never an archive).

    The header is checked before any data is read: a number dtype, and a declared
    size the file really holds (a header declaring 10**12 elements allocates nothing).
    """
    try:
        with open(path, "rb") as fh:
            _check_npy_header(fh, path)
            fh.seek(0)
            arr = np.load(fh, allow_pickle=False)
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError) as err:
        raise InputFileError(f"{path}: not a readable .npy array: {err}") from None
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise InputFileError(f"{path}: holds non-finite values")
        if np.any(arr != np.round(arr)):
            raise InputFileError(f"{path}: expected integers, got fractional values")
    lo, hi = (arr.min().item(), arr.max().item()) if arr.size else (0, 0)  # Python numbers: exact comparisons
    if lo < -INT32 or hi >= INT32:
        raise InputFileError(f"{path}: values must fit in 32 bits, found {lo} .. {hi}")
    return arr


def npy_shape(path: str) -> tuple[int, ...]:
    """The shape a .npy file declares, read from its checked header alone."""
    try:
        with open(path, "rb") as fh:
            return _check_npy_header(fh, path)
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except OSError as err:
        raise InputFileError(f"{path}: not a readable .npy array: {err}") from None


def _check_npy_header(fh, path: str) -> tuple[int, ...]:
    """Refuse what is not a .npy file of numbers whose data the file holds in full; returns its shape."""
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(fh)
    except ValueError:
        raise InputFileError(f"{path}: not a .npy array file (an .npz archive or other data)") from None
    if version not in ((1, 0), (2, 0)):
        raise InputFileError(f"{path}: .npy format version {version} is not supported (1.0 or 2.0)")
    read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
    try:
        shape, _, dtype = read(fh)
    except (ValueError, SyntaxError, tokenize.TokenError) as err:  # numpy parses the header as Python literals
        raise InputFileError(f"{path}: damaged .npy header: {err}") from None
    if dtype.hasobject:
        raise InputFileError(
            f"{path}: not a readable .npy array: dtype {dtype} holds pickled Python objects, which are never loaded"
        )
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise InputFileError(f"{path}: expected numbers, got dtype {dtype}")
    if any(d < 0 for d in shape):
        raise InputFileError(f"{path}: declares a negative size in shape {shape}")
    declared = math.prod(shape) * dtype.itemsize
    held = os.fstat(fh.fileno()).st_size - fh.tell()
    if held < declared:
        raise InputFileError(f"{path}: the header declares shape {shape} ({declared} bytes), the file holds {held}")
    budget.require(math.prod(shape) * max(dtype.itemsize, 8), f"{path}: shape {shape} read as 64-bit integers")
    return tuple(shape)

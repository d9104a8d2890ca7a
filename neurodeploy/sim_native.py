"""The simulator's compiled kernel (sim_native.c): CUBA layers of binary spikes, sample by sample.

The C file ships with the package and is compiled on first use with the system's C
compiler (``$CC``, else ``cc``; ``-O3 -march=native``) into the user's cache, one
library a source, compiler and CPU, then loaded with ctypes. Where no compiler is
found, the build fails, or ``NEURODEPLOY_NATIVE=0``, :func:`library` gives None and
:func:`neurodeploy.sim.simulate` runs its numpy path, which computes the same
integers. This module knows layers only as the kernel takes them (:class:`Layer`);
:mod:`neurodeploy.sim` builds them from a netlist.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.cache import cache_dir

SOURCE = Path(__file__).with_name("sim_native.c")
FLAGS = ("-O3", "-march=native", "-std=c11", "-shared", "-fPIC")
ENV_VAR = "NEURODEPLOY_NATIVE"  # 0: never use the kernel
BUILD_TIMEOUT_S = 300
SUM_LIMIT = 2**31  # the kernel sums weights in int32
LANES = 16  # int32 values the kernel steps at a time
KINDS = {"input": 0, "dense": 1, "conv": 2}
NARROW_LIMIT = 2**15  # a convolution whose sums stay below this in magnitude is summed in int16
NARROW_LANES = 32  # int16 values the kernel sums at a time
FEW_CHANNELS = 4  # a narrow convolution of at most this many input channels sums from tables of subsets
TILE_RANGE = (-128, 128)  # weights in this range are multiplied in tiles of bytes, where the CPU has them
IMAGE_LIMIT = 2**31 - 2**16  # bytes of a convolution's input image, below this for tiles
ROW_LIMIT = 2**16  # bytes of an output's inputs, at most this for tiles
POINTED = ("bias", "weight", "ones", "tap_start", "taps", "fan_out")  # a Layer's int32 array fields
SIZES = (
    "kind",
    "n",
    "n_in",
    "row",
    "channels_in",
    "narrow",
    "kernel_taps",
    "stride",
    "exp",
    "wrap24",
    "exact32",
    "keep_u",
    "keep_v",
    "threshold",
    "bias_exp",
    "bias_channels",
    "k_tiles",
    "n_tiles",
    "tile_width",
    "runs",
    "run_length",
    "image_bytes",
    "image_start",
    "image_row",
    "in_rows",
    "row_bits",
)  # the integer fields of a Layer, in sim_native.c's order
EXP_RANGE = (-31, 25)  # weight exponents the kernel shifts by
COUNTED = ("events", "wraps", "saturations", "spiked")  # a layer's counts, as sim.STEPPED orders them

_I64, _P32, _P64, _P8 = ctypes.c_int64, ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_int64), ctypes.c_void_p


FIELDS: list[tuple[str, Any]] = (
    [(name, _I64) for name in SIZES]
    + [(name, _P32) for name in POINTED]
    + [("subsets", ctypes.POINTER(ctypes.c_int16)), ("reads", _P32), ("tiles", _P8), ("image_reads", _P32)]
    + [("bias_mant", ctypes.POINTER(ctypes.c_int64)), ("resets", _P8), ("spikes", _P8)]
    + [(name, _I64) for name in COUNTED]
)  # the fields of ``Layer`` in sim_native.c, in its order
FIELD_TYPES = dict(FIELDS)


class Layer(ctypes.Structure):
    """One neuron layer as the kernel takes it."""

    _fields_ = FIELDS

    def point(self, arrays: dict[str, np.ndarray]) -> None:
        """Point fields at C-contiguous arrays of their types; the caller keeps the arrays alive."""
        for name, array in arrays.items():
            kind = FIELD_TYPES[name]
            setattr(self, name, array.ctypes.data if kind is _P8 else ctypes.cast(array.ctypes.data, kind))


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled kernel, built on first use; None where it cannot be built or is turned off."""
    if os.environ.get(ENV_VAR, "1") == "0":
        return None
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        return None
    try:
        key = hashlib.sha256(b"\0".join([SOURCE.read_bytes(), " ".join(FLAGS).encode(), compiler.encode(), _cpu()]))
        path = cache_dir() / "native" / f"sim_native-{key.hexdigest()[:16]}.so"
        if not path.is_file():
            _build(compiler, path)
        lib = ctypes.CDLL(str(path))
    except (OSError, RuntimeError, subprocess.SubprocessError):  # no source, no home, no build
        return None
    lib.run.argtypes = [ctypes.POINTER(Layer), _I64, _P64, _I64, _I64, _P8, _P32, _P32, ctypes.c_int32, _P32]
    lib.run.restype = ctypes.c_int
    lib.tiles_ready.restype = ctypes.c_int
    return lib


@functools.cache
def tiles(lib: ctypes.CDLL) -> bool:
    """Whether ``lib`` multiplies tiles of bytes (x86 AMX) here: built for a CPU that has them and
    allowed by the system to this process."""
    return bool(lib.tiles_ready())


def _cpu() -> bytes:
    """What ``-march=native`` depends on: the CPU's model and flags where Linux tells them."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    wanted = [line for line in lines if line.startswith(("model name", "flags"))][:2]
    return "\n".join([platform.machine(), *wanted]).encode()


def _build(compiler: str, path: Path) -> None:
    """Compile SOURCE to ``path``, written whole or not at all; without ``-march=native`` where the
    compiler refuses it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".build-", suffix=".so")
    os.close(fd)
    try:
        for flags in (FLAGS, tuple(flag for flag in FLAGS if flag != "-march=native")):
            done = subprocess.run(
                [compiler, *flags, "-o", temp, str(SOURCE)], capture_output=True, timeout=BUILD_TIMEOUT_S
            )
            if done.returncode == 0:
                os.replace(temp, path)
                return
        raise subprocess.CalledProcessError(done.returncode, compiler, done.stdout, done.stderr)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


@dataclass(frozen=True)
class ConvGeometry:
    """Where a convolution's inputs reach, for weights held (kH, kW, C_in, C_out), channels-last.

    ``tap_start`` (input positions + 1) and ``taps`` (output offset, weight offset) list the taps
    each input position reaches; ``uses`` (input positions, kH * kW) and ``covers`` (output
    positions, kH * kW) count the taps that join them;
    ``gather`` (output positions, kH * kW) is the input position each tap of an output reads, -1
    in the padding.
    The arrays are shared between calls: read-only.
    """

    tap_start: np.ndarray
    taps: np.ndarray
    uses: np.ndarray
    covers: np.ndarray
    gather: np.ndarray


@functools.lru_cache(maxsize=64)
def conv_geometry(
    conv_in: tuple[int, ...], conv_out: tuple[int, ...], kernel, stride, padding, dilation
) -> ConvGeometry:
    """The :class:`ConvGeometry` of a convolution from its (C, H, W) shapes and its parameters."""
    (ci, hi, wi), (co, ho, wo), (kh, kw) = conv_in, conv_out, kernel
    y, x, ky, kx = np.meshgrid(np.arange(hi), np.arange(wi), np.arange(kh), np.arange(kw), indexing="ij")
    ny, nx = y + padding[0] - ky * dilation[0], x + padding[1] - kx * dilation[1]
    oy, ox = ny // stride[0], nx // stride[1]
    hit = (ny >= 0) & (ny % stride[0] == 0) & (oy < ho) & (nx >= 0) & (nx % stride[1] == 0) & (ox < wo)
    position, out, tap = (y * wi + x)[hit], (oy * wo + ox)[hit], (ky * kw + kx)[hit]  # position ascending
    start = np.concatenate([[0], np.cumsum(np.bincount(position, minlength=hi * wi))])
    taps = hi * wi, ho * wo, kh * kw
    geometry = ConvGeometry(
        tap_start=start.astype(np.int32),
        taps=np.ascontiguousarray(np.stack([out * co, tap * ci * co], axis=1), np.int32),
        uses=np.bincount(position * taps[2] + tap, minlength=taps[0] * taps[2]).reshape(taps[0], taps[2]),
        covers=np.bincount(out * taps[2] + tap, minlength=taps[1] * taps[2]).reshape(taps[1], taps[2]),
        gather=np.full((taps[1], taps[2]), -1, np.int32),
    )
    geometry.gather[out, tap] = position
    for array in vars(geometry).values():
        array.flags.writeable = False
    return geometry


def few_channel_sums(per_tap: np.ndarray, stride: int, gather: np.ndarray) -> dict[str, np.ndarray]:
    """The ``subsets`` and ``reads`` of a convolution of at most 4 input channels (see
    sim_native.c) from its weights (taps, C_in, C_out), padded row length and gather."""
    taps, ci, co = per_tap.shape
    chosen = (np.arange(16)[:, None] >> np.arange(ci)) & 1  # (16, C_in): the channels of each subset
    subsets = np.zeros((taps + 1, 16, stride), np.int16)
    subsets[:taps, :, :co] = np.einsum("sc,tco->tso", chosen, per_tap)
    inside = gather >= 0
    first_bit = np.where(inside, gather * ci, 0)
    offset = np.where(inside, np.arange(taps) * 16 * stride, taps * 16 * stride)
    return {"subsets": subsets, "reads": np.ascontiguousarray(np.stack([first_bit, offset], axis=-1), np.int32)}


def fits_tiles(conv_in: tuple[int, ...], kernel, padding) -> bool:
    """Whether a convolution's input image (C, H, W) padded and an output's row of inputs are within
    the kernel's limits for tiles (its offsets are int32; a thread lays out 256 rows at a time)."""
    (ci, hi, wi), (kh, kw) = conv_in, kernel
    return (hi + 2 * padding[0]) * (wi + 2 * padding[1]) * ci < IMAGE_LIMIT and kh * kw * ci <= ROW_LIMIT


def image_tiles(
    per_tap: np.ndarray, conv_in: tuple[int, ...], conv_out: tuple[int, ...], kernel, stride, padding, dilation
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """A convolution's ``tiles`` and ``image_reads`` (see sim_native.c) from its weights (taps, C_in,
    C_out) within TILE_RANGE, with the sizes they go with."""
    taps, ci, co = per_tap.shape
    (_, hi, wi), (_, ho, wo), (kh, kw) = conv_in, conv_out, kernel
    k_tiles, n_tiles = -(-taps * ci // 64), -(-co // 16)
    across = -(-co // n_tiles)  # outputs a tile
    weight = np.zeros((64 * k_tiles, n_tiles * across), np.int8)
    weight[: taps * ci, :co] = per_tap.reshape(taps * ci, co)
    blocks = weight.reshape(k_tiles, 16, 4, n_tiles, across).transpose(0, 3, 1, 4, 2)  # (K / 4, N, 4) in tiles
    width = wi + 2 * padding[1]  # the image's positions a row
    oy, ox, ky, kx = np.meshgrid(np.arange(ho), np.arange(wo), np.arange(kh), np.arange(kw), indexing="ij")
    start = ((oy * stride[0] + ky * dilation[0]) * width + ox * stride[1] + kx * dilation[1]) * ci
    runs = start[..., 0] if dilation[1] == 1 else start  # with dilation 1 a kernel row's inputs are one run
    sizes = {
        "k_tiles": k_tiles,
        "n_tiles": n_tiles,
        "tile_width": across,
        "runs": kh if dilation[1] == 1 else kh * kw,
        "run_length": kw * ci if dilation[1] == 1 else ci,
        "image_bytes": (hi + 2 * padding[0]) * width * ci,
        "image_start": (padding[0] * width + padding[1]) * ci,
        "image_row": width * ci,
        "in_rows": hi,
        "row_bits": wi * ci,
    }
    arrays = {"tiles": np.ascontiguousarray(blocks).reshape(-1), "image_reads": runs.reshape(-1).astype(np.int32)}
    return arrays, sizes


def pointer(array: np.ndarray | None, kind):
    """A ctypes pointer to a contiguous array's data (None for None)."""
    return None if array is None else array.ctypes.data_as(kind)


def run(
    lib: ctypes.CDLL,
    layers: list[Layer],
    batch: int,
    steps: int,
    spike_v: int,
    workers: int,
    spikes_in: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, ...]]]:
    """Run ``batch`` samples through ``layers`` on ``workers`` threads (the kernel frees the GIL).

    ``spikes_in`` (batch, steps, n_in) uint8 feed layer 0. Returns the last layer's spike counts
    and final v a sample (batch, n), and per layer its counts (:data:`COUNTED`) over the batch.
    """
    n = int(layers[-1].n)
    out_counts, out_v = np.zeros((batch, n), np.int32), np.zeros((batch, n), np.int32)
    threads = max(1, min(workers, batch))
    held = [(Layer * len(layers))(*layers) for _ in range(threads)]  # each thread counts in its own copy
    next_sample = np.zeros(1, np.int64)  # shared: each thread takes the next sample while any remain
    stop = np.zeros(1, np.int32)  # set when the caller is interrupted: each thread ends at its next layer

    def part(k: int) -> int:
        inputs = None if spikes_in is None else spikes_in.ctypes.data
        counts, v, flag = (pointer(a, _P32) for a in (out_counts, out_v, stop))
        return lib.run(held[k], len(layers), pointer(next_sample, _P64), batch, steps, inputs, counts, v, spike_v, flag)

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(part, k) for k in range(threads)]
        try:
            done = [future.result() for future in futures]
        except BaseException:
            stop[0] = 1
            raise
    if -2 in done:
        raise RuntimeError(f"the system refused the compiled kernel its AMX tiles; set {ENV_VAR}=0 to run on numpy")
    if any(code < 0 for code in done):
        raise MemoryError("the simulator's compiled kernel ran out of memory")
    counted = [
        tuple(sum(int(getattr(array[k], name)) for array in held) for name in COUNTED) for k in range(len(layers))
    ]
    return out_counts, out_v, counted

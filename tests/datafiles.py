"""Small dataset files in the formats neurodeploy reads, as bytes, for tests."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def idx_bytes(data: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes (MNIST's format) holding ``data``."""
    header = bytes([0, 0, 0x08, data.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in data.shape)
    return header + np.asarray(data).astype(np.uint8).tobytes()


def nmnist_bytes(rows) -> bytes:
    """An N-MNIST .bin file of events (x, y, polarity, timestamp in us), 5 bytes each."""
    out = bytearray()
    for x, y, p, ts in rows:
        x, y, p, ts = int(x), int(y), int(p), int(ts)
        out += bytes([x, y, (p << 7) | (ts >> 16), (ts >> 8) & 0xFF, ts & 0xFF])
    return bytes(out)


def mnist_folder(root: Path, n: int = 20) -> Path:
    """A torchvision-layout MNIST folder under ``root`` with ``n`` random images a split."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(np.arange(n) % 10))
    return root

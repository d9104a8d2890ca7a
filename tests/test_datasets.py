"""Dataset readers, on the embedded digits and on small files written like the originals."""

import functools
import gzip
import operator
import os
import pickle

import numpy as np
import pytest
from neurodeploy.datasets import DIGITS_SPLIT, DatasetError, bin_events, load_dataset, read_nmnist_events, split_info

from datafiles import idx_bytes, nmnist_bytes


def test_digits_split_is_fixed_and_stratified():
    pytest.importorskip("sklearn")
    x, y = load_dataset("digits", split="train")
    xt, yt = load_dataset("digits", split="test")
    assert x.shape == (1347, 1, 8, 8) and xt.shape == (450, 1, 8, 8)
    assert x.dtype == np.float32 and y.dtype == np.int64 and x.min() == 0.0 and x.max() == 1.0
    assert len(y) == DIGITS_SPLIT["n_train"] and len(yt) == DIGITS_SPLIT["n_test"]
    assert np.bincount(yt).min() >= 43 and np.bincount(yt).max() <= 46
    x2, y2 = load_dataset("digits", split="train")
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert split_info("digits")["random_state"] == 0


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_mnist_like_torchvision_layout(tmp_path, name, folder):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([7, 2, 1])))
    x, y = load_dataset(name, tmp_path, "test")
    assert x.shape == (3, 1, 28, 28) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0], images[0] / 255.0, rtol=1e-6)
    assert y.tolist() == [7, 2, 1]
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte"):
        load_dataset(name, tmp_path, "train")


def test_bad_idx_file(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\0\0\x08\x01" + b"\0" * 8)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([1])))
    with pytest.raises(DatasetError, match="not an IDX file"):
        load_dataset("mnist", tmp_path, "test")


def _cifar_batch(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, n).tolist()}


def test_cifar10_python_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = [_cifar_batch(2, i) for i in range(6)]
    for i, b in enumerate(batches[:5], start=1):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(b, protocol=2))
    (folder / "test_batch").write_bytes(pickle.dumps(batches[5]))
    x, y = load_dataset("cifar10", tmp_path, "train")
    assert x.shape == (10, 3, 32, 32) and y.tolist() == functools.reduce(
        operator.iadd, (b["labels"] for b in batches[:5]), []
    )
    np.testing.assert_allclose(x[0].reshape(-1), batches[0]["data"][0] / 255.0, rtol=1e-6)
    assert load_dataset("cifar10", tmp_path, "test")[0].shape == (2, 3, 32, 32)


def test_cifar10_unpickler_refuses_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps({"data": os.system, "labels": []}))
    with pytest.raises(DatasetError, match=r"posix\.system|nt\.system"):
        load_dataset("cifar10", tmp_path, "test")


def test_cifar10_binary_version(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    records = np.zeros((2, 3073), np.uint8)
    records[:, 0] = [3, 9]
    records[1, 1:] = 255
    (folder / "test_batch.bin").write_bytes(records.tobytes())
    x, y = load_dataset("cifar10", tmp_path, "test")
    assert y.tolist() == [3, 9] and x[0].max() == 0.0 and x[1].min() == 1.0
    with pytest.raises(DatasetError, match="data_batch_1"):
        load_dataset("cifar10", tmp_path, "train")


def test_nmnist_events_and_binning(tmp_path):
    rows = [(3, 5, 1, 10), (3, 5, 1, 20), (33, 0, 0, 150_000), (1, 1, 1, 299_999), (2, 2, 0, 400_000)]
    ev = read_nmnist_events(_write(tmp_path / "Test" / "4" / "00001.bin", nmnist_bytes(rows)))
    assert ev["ts"].tolist() == [10, 20, 150_000, 299_999, 400_000] and ev["p"].tolist() == [1, 1, 0, 1, 0]
    spikes = bin_events(ev, 3, 100_000)
    assert spikes.shape == (3, 2, 34, 34) and spikes.sum() == 3
    assert spikes[0, 1, 5, 3] == 1 and spikes[1, 0, 0, 33] == 1 and spikes[2, 1, 1, 1] == 1
    _write(tmp_path / "Test" / "0" / "00002.bin", nmnist_bytes([(0, 0, 0, 5)]))
    x, y = load_dataset("nmnist", tmp_path, "test", steps=3)
    assert x.shape == (2, 3, 2, 34, 34) and len(x) == 2 and y.tolist() == [0, 4]
    assert x[1].dtype == np.uint8 and np.array_equal(x[1], spikes) and x[0].sum() == 1
    assert np.array_equal(x[np.array([1, 0])][0], spikes) and np.asarray(x).shape == (2, 3, 2, 34, 34)


def _write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_missing_folders_name_the_folder_and_files(tmp_path):
    with pytest.raises(DatasetError, match="needs a data folder"):
        load_dataset("mnist")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("mnist", tmp_path / "nowhere")
    with pytest.raises(DatasetError, match=r"Train/<digit 0-9>/\*\.bin"):
        load_dataset("nmnist", tmp_path, "train")
    with pytest.raises(DatasetError, match="unknown dataset 'svhn'"):
        load_dataset("svhn")
    with pytest.raises(DatasetError, match="split must be"):
        load_dataset("digits", split="val")

"""Files from others run nothing and allocate nothing absurd: pickles in checkpoints and arrays, zip
bombs, HDF5 links out of the file, aliases and cycles, data stored elsewhere, huge declared sizes."""

from __future__ import annotations

import builtins
import io
import os
import pickle
import resource
import zipfile

import h5py
import numpy as np
import pytest
import torch
from neurodeploy.cli import main
from neurodeploy.errors import InputFileError
from neurodeploy.exporters.netx import write_netx
from neurodeploy.models import CheckpointError, load_checkpoint, make_rule, parse_arch, save_checkpoint
from neurodeploy.models.network import SpikingNetwork
from neurodeploy.netio import load_netlist
from neurodeploy.npyfile import load_array

from datafiles import idx_bytes
from fuzzing import sample_netlist

MAX_GROWTH_MB = 200  # what refusing a file may add to the process's peak memory


class SystemCall:
    """Unpickling this runs a shell command."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class OpenFile:
    """Unpickling this creates a file through a builtin."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (builtins.open, (self.path, "w"))


def _checkpoint(path) -> dict:
    model = SpikingNetwork(parse_arch("64-10"), (1, 8, 8), make_rule("tssl"), "current")
    return save_checkpoint(
        path, model, encoding={"name": "direct"}, steps=4, dataset="digits", split={}, float_test_accuracy=0.5, seed=0
    )


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "created-by-unpickling"
    yield path
    assert not path.exists(), "unpickling ran code from the file"


@pytest.mark.parametrize("payload", ["system", "open"])
def test_checkpoint_whose_pickle_runs_code_is_refused(tmp_path, marker, payload):
    ckpt = _checkpoint(None)
    ckpt["training"] = {"note": SystemCall(f"touch {marker}") if payload == "system" else OpenFile(str(marker))}
    path = tmp_path / "evil.pt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused: it holds Python objects other than tensors"):
        load_checkpoint(path)


def test_cli_refuses_the_pickle_in_one_line_exit_2(tmp_path, marker, capsys):
    ckpt = _checkpoint(None)
    ckpt["state_dict"] = SystemCall(f"touch {marker}")
    path = tmp_path / "evil.pt"
    torch.save(ckpt, path)
    assert main(["export", str(path), "-o", str(tmp_path / "out"), "--calibrate", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"neurodeploy export: error: {path}: refused") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_plain_pickle_is_never_unpickled(tmp_path, marker):
    path = tmp_path / "legacy.pt"
    path.write_bytes(pickle.dumps({"format": "neurodeploy-checkpoint", "x": SystemCall(f"touch {marker}")}))
    with pytest.raises(CheckpointError, match=r"not a checkpoint written by torch\.save"):
        load_checkpoint(path)


def test_compressed_checkpoint_is_refused_before_it_expands(tmp_path):
    """A zip bomb: 64 MB of zeros deflate to a few dozen kB."""
    ckpt = _checkpoint(None)
    ckpt["training"] = {"pad": torch.zeros(16 * 2**20)}
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    stored = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    path = tmp_path / "bomb.pt"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bomb:
        for name in stored.namelist():
            bomb.writestr(name, stored.read(name))
    assert path.stat().st_size < 2**20
    with pytest.raises(CheckpointError, match="is compressed"):
        load_checkpoint(path)


def test_valid_checkpoint_still_loads(tmp_path):
    _checkpoint(tmp_path / "ok.pt")
    _model, ckpt = load_checkpoint(tmp_path / "ok.pt")
    assert ckpt["format"] == "neurodeploy-checkpoint"


def test_npy_holding_a_pickle_is_refused_unread(tmp_path, marker):
    path = tmp_path / "evil.npy"
    np.save(path, np.array([SystemCall(f"touch {marker}")], dtype=object), allow_pickle=True)
    with pytest.raises(InputFileError, match="pickled Python objects, which are never loaded"):
        load_array(str(path))


def test_npy_declaring_a_huge_shape_allocates_nothing(tmp_path):
    path = tmp_path / "huge.npy"
    np.save(path, np.zeros(4, np.int64))
    data = path.read_bytes().replace(b"'shape': (4,)", b"'shape': (1000000000000,)")
    path.write_bytes(data)
    before = _peak_mb()
    with pytest.raises(InputFileError, match=r"declares shape \(1000000000000,\)"):
        load_array(str(path))
    assert _peak_mb() - before < MAX_GROWTH_MB


def test_npz_archive_is_not_an_input_array(tmp_path):
    path = tmp_path / "arrays.npy"
    with open(path, "wb") as fh:
        np.savez(fh, a=np.zeros(3))
    with pytest.raises(InputFileError, match=r"not a \.npy array file"):
        load_array(str(path))


# --------------------------------------------------------------------------- HDF5: netx and NIR


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(params=["netx", "nir"])
def hdf5_file(request, tmp_path):
    """A valid netx or NIR file and the path of one dataset inside it (a conv weight)."""
    net = sample_netlist(input_layer=False)
    if request.param == "netx":
        path = tmp_path / "net.net"
        write_netx(net, path)
        return path, "layer/1/weight"
    pytest.importorskip("nir")
    from neurodeploy.exporters.nir import write_nir

    path = tmp_path / "net.nir"
    write_nir(net, path)
    return path, "node/nodes/l0_conv/weight"


def _edit(path, edit) -> None:
    with h5py.File(path, "r+") as h5:
        edit(h5)


def _refused(path, match: str, monkeypatch) -> InputFileError:
    """Refused with ``match``, and for NIR before nir.read is called."""
    nir = pytest.importorskip("nir") if path.suffix == ".nir" else None
    if nir is not None:
        monkeypatch.setattr(nir, "read", lambda *a, **k: pytest.fail("nir.read ran on an unchecked file"))
    with pytest.raises(InputFileError, match=match) as err:
        load_netlist(path)
    assert str(err.value).startswith(str(path))
    return err.value


def test_external_link_is_refused(hdf5_file, tmp_path, monkeypatch):
    path, dataset = hdf5_file
    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as h5:
        h5["weight"] = np.ones((2, 2, 3, 3))

    def link(h5):
        del h5[dataset]
        h5[dataset] = h5py.ExternalLink(str(secret), "/weight")

    _edit(path, link)
    _refused(path, f"/{dataset}: is an external link to {secret}", monkeypatch)


@pytest.mark.parametrize("target", ["/elsewhere/weight", "/../../etc/passwd", "/"])
def test_soft_links_are_refused(hdf5_file, monkeypatch, target):
    path, dataset = hdf5_file

    def link(h5):
        del h5[dataset]
        h5[dataset] = h5py.SoftLink(target)

    _edit(path, link)
    _refused(path, f"/{dataset}: is a soft link to {target}; links are refused", monkeypatch)


def test_hard_link_cycle_is_refused(hdf5_file, monkeypatch):
    """nir's reader recurses through groups: a group linked into itself would never end."""
    path, dataset = hdf5_file
    group = dataset.rpartition("/")[0]
    _edit(path, lambda h5: h5[group].__setitem__("loop", h5[group]))
    _refused(path, "aliases are refused", monkeypatch)


@pytest.mark.parametrize("shape", [(10**12,), (10**6, 10**6)])
def test_absurd_declared_size_is_refused_before_allocating(hdf5_file, monkeypatch, shape):
    path, dataset = hdf5_file

    def huge(h5):
        del h5[dataset]
        h5.create_dataset(dataset, shape=shape, dtype="f8", chunks=(1,) * len(shape))

    _edit(path, huge)
    assert path.stat().st_size < 2**20
    before = _peak_mb()
    _refused(path, f"/{dataset}: declares {np.prod(shape, dtype=object)} elements, more than the limit", monkeypatch)
    assert _peak_mb() - before < MAX_GROWTH_MB


def test_data_stored_in_another_file_is_refused(hdf5_file, tmp_path, monkeypatch):
    path, dataset = hdf5_file
    raw = tmp_path / "raw.bin"
    raw.write_bytes(np.ones(18).tobytes())

    def external(h5):
        del h5[dataset]
        h5.create_dataset(dataset, shape=(2, 1, 3, 3), dtype="f8", external=[(str(raw), 0, 144)])

    _edit(path, external)
    _refused(path, "stores its data outside the file", monkeypatch)


def test_virtual_dataset_is_refused(hdf5_file, tmp_path, monkeypatch):
    path, dataset = hdf5_file
    source = tmp_path / "source.h5"
    with h5py.File(source, "w") as h5:
        h5["w"] = np.ones(18)

    def virtual(h5):
        layout = h5py.VirtualLayout(shape=(18,), dtype="f8")
        layout[:] = h5py.VirtualSource(str(source), "w", shape=(18,))
        del h5[dataset]
        h5.create_virtual_dataset(dataset, layout)

    _edit(path, virtual)
    _refused(path, "stores its data outside the file", monkeypatch)


def test_opaque_and_variable_length_data_are_refused(hdf5_file, monkeypatch):
    path, dataset = hdf5_file

    def vlen(h5):
        del h5[dataset]
        h5.create_dataset(dataset, (2,), dtype=h5py.vlen_dtype(np.int64))

    _edit(path, vlen)
    _refused(path, "only numbers and strings are read", monkeypatch)


# --------------------------------------------------------------------------- what the user sees


@pytest.mark.parametrize("suffix", [".net", ".nir", ".pt", ".toml", ".npy"])
def test_a_corrupt_file_is_one_line_and_exit_2_and_debug_shows_the_traceback(tmp_path, capsys, suffix):
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    good_net = tmp_path / "good.net"
    write_netx(sample_netlist(input_layer=False), good_net)
    argv = {
        ".net": ["inspect", str(path)],
        ".nir": ["inspect", str(path)],
        ".pt": ["export", str(path), "-o", str(tmp_path / "out")],
        ".toml": ["targets", str(path)],
        ".npy": ["run", str(good_net), "--steps", "3", "--input", str(path), "-o", str(tmp_path / "o.npz")],
    }[suffix]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"neurodeploy {argv[0]}: error: {path}: ") and err.count("\n") == 1, err
    assert main(["--debug", *argv]) == 2
    assert "Traceback (most recent call last)" in capsys.readouterr().err


# --------------------------------------------------------------------------- datasets


def test_cifar_batch_whose_pickle_runs_code_is_refused(tmp_path, marker):
    from neurodeploy.datasets import DatasetError, load_dataset

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps({"data": SystemCall(f"touch {marker}"), "labels": [0]}))
    with pytest.raises(DatasetError, match=r"test_batch: not a CIFAR-10 python batch.*not allowed"):
        load_dataset("cifar10", root=tmp_path, split="test")


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda raw: raw[: len(raw) // 2], "cannot read"),  # a truncated gzip stream
        (lambda raw: b"\x1f\x8b" + bytes(40), "cannot read"),  # a gzip header, then garbage
    ],
)
def test_damaged_mnist_files_are_dataset_errors(tmp_path, damage, message):
    import gzip

    from neurodeploy.datasets import DatasetError, load_dataset

    images = gzip.compress(idx_bytes(np.zeros((2, 28, 28))))
    labels = gzip.compress(idx_bytes(np.array([3, 4])))
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(damage(images))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(labels)
    with pytest.raises(DatasetError, match=message):
        load_dataset("mnist", root=tmp_path, split="test")


def test_labels_outside_the_classes_are_refused(tmp_path):
    from neurodeploy.datasets import DatasetError, load_dataset

    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((1, 28, 28))))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([200])))
    with pytest.raises(DatasetError, match=r"labels must be 0\.\.9, found 200"):
        load_dataset("mnist", root=tmp_path, split="test")


# --------------------------------------------------------------------------- HDF5 library hangs and crashes


def _compress(path, dataset: str) -> None:
    """Store ``dataset`` chunked and compressed, which is read through structures the file describes."""

    def edit(h5):
        data = h5[dataset][()]
        del h5[dataset]
        h5.create_dataset(dataset, data=data, chunks=True, compression="gzip")

    _edit(path, edit)


def _stall_on(dataset: str, action):
    """A stand-in for h5py's dataset read that runs ``action`` on ``dataset`` (the child inherits it)."""
    real = h5py.Dataset.__getitem__

    def read(self, key):
        if self.name == dataset:
            action()
        return real(self, key)

    return read


def test_a_read_that_never_ends_is_stopped_and_named(hdf5_file, monkeypatch):
    import time

    import neurodeploy.h5check as h5check

    path, dataset = hdf5_file
    _compress(path, dataset)
    monkeypatch.setattr(h5check, "REHEARSAL_SECONDS", 2)
    monkeypatch.setattr(h5py.Dataset, "__getitem__", _stall_on("/" + dataset, lambda: time.sleep(3600)))
    start = time.monotonic()
    with pytest.raises(InputFileError, match=rf"{path}: reading /{dataset} did not finish within 2 s; damaged HDF5"):
        load_netlist(path)
    assert time.monotonic() - start < 30


def test_a_read_that_crashes_the_library_is_refused_not_fatal(hdf5_file, monkeypatch):
    import signal

    path, dataset = hdf5_file
    _compress(path, dataset)
    monkeypatch.setattr(
        h5py.Dataset, "__getitem__", _stall_on("/" + dataset, lambda: os.kill(os.getpid(), signal.SIGSEGV))
    )
    with pytest.raises(InputFileError, match=rf"the HDF5 library failed \(signal SIGSEGV\) reading /{dataset}"):
        load_netlist(path)


def test_a_nir_file_that_hangs_hdf5_ends(tmp_path):
    """Found by the nightly fuzz run: 512 zeroed bytes in a NIR file's global heap make HDF5 2.0 loop
    forever reading /node/edges. Whatever the library version does with it, loading ends, cleanly."""
    import time

    pytest.importorskip("nir")
    from neurodeploy.exporters.nir import write_nir

    path = tmp_path / "hang.nir"
    write_nir(sample_netlist(input_layer=False), path)
    data = bytearray(path.read_bytes())
    data[2513 : 2513 + 512] = bytes(512)
    path.write_bytes(bytes(data))
    start = time.monotonic()
    try:
        load_netlist(path)
    except InputFileError as err:
        assert str(err).startswith(str(path))
    assert time.monotonic() - start < 60

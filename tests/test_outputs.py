"""Outputs go only onto regular files or new paths, and a command's outputs are all or nothing: devices,
FIFOs and folders are refused by name and left as they were; two exports racing for one folder cannot both
win; a full disk or a read-only file system is one line and leaves nothing behind."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from neurodeploy.atomic import atomic_path, staged_outputs
from neurodeploy.cli import main
from neurodeploy.errors import OutputFileError
from neurodeploy.exporters.netx import write_netx

from fuzzing import sample_netlist
from test_atomic import _checkpoint, _snapshot

EXPORT = ["--format", "netx,nir", "--calibrate", "0"]


def _nodes(tmp_path: Path) -> dict[str, Path]:
    """A FIFO, a directory, a symlink to the FIFO and, as root, a character device (like /dev/null)."""
    nodes = {"fifo": tmp_path / "fifo", "directory": tmp_path / "dir", "symlink": tmp_path / "link"}
    os.mkfifo(nodes["fifo"])
    nodes["directory"].mkdir()
    nodes["symlink"].symlink_to(nodes["fifo"])
    if os.geteuid() == 0:
        nodes["device"] = tmp_path / "null"
        os.mknod(nodes["device"], stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return nodes


def _state(path: Path) -> tuple:
    st = os.lstat(path)
    return st.st_mode, st.st_rdev, st.st_ino, os.readlink(path) if path.is_symlink() else None


@pytest.fixture
def net(tmp_path) -> Path:
    path = tmp_path / "in.net"
    write_netx(sample_netlist(input_layer=True), path)
    return path


def test_run_onto_a_device_fifo_or_folder_is_refused_by_name(tmp_path, net, capsys):
    for kind, node in _nodes(tmp_path).items():
        before = _state(node)
        assert main(["run", str(net), "--steps", "3", "-o", str(node)]) == 2, kind
        err = capsys.readouterr().err
        what = {
            "fifo": "a FIFO",
            "directory": "a directory",
            "symlink": "a FIFO (through a symlink)",
            "device": "a character device",
        }[kind]
        assert err == (
            f"neurodeploy run: error: {node}: is {what}; outputs are written only onto regular files or new paths\n"
        )
        assert _state(node) == before
    assert not list(tmp_path.glob(".*"))


def test_train_refuses_its_output_before_training(tmp_path, capsys):
    fifo = _nodes(tmp_path)["fifo"]
    start = time.monotonic()
    assert main(["train", "--epochs", "1000", "--no-progress", "-o", str(fifo)]) == 2
    assert time.monotonic() - start < 5  # no epoch ran
    assert f"{fifo}: is a FIFO" in capsys.readouterr().err and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_export_into_a_file_or_onto_a_fifo_is_refused(tmp_path, capsys):
    ckpt = _checkpoint(tmp_path / "model.pt", seed=0)
    plain = tmp_path / "plain"
    plain.write_text("mine")
    assert main(["export", str(ckpt), "-o", str(plain), *EXPORT]) == 2
    assert f"{plain}: is a regular file, not a folder for the outputs" in capsys.readouterr().err
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "model.net")
    assert main(["export", str(ckpt), "-o", str(out), *EXPORT, "--force"]) == 2
    assert f"{out / 'model.net'}: is a FIFO" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["model.net"] and plain.read_text() == "mine"


# The first export, paused once its files are staged until the test lets it go on.
PAUSED_EXPORT = textwrap.dedent("""
    import pathlib, runpy, sys, time
    import neurodeploy.export as export
    writer, go = export._writer, pathlib.Path(sys.argv.pop(1))
    def paused_writer(fmt):
        write = writer(fmt)
        def paused(q, path):
            write(q, path)
            print("staged", flush=True)
            while not go.exists():
                time.sleep(0.01)
        return paused
    export._writer = paused_writer
    sys.argv = ["neurodeploy", *sys.argv[1:]]
    runpy.run_module("neurodeploy", run_name="__main__")
""")


def test_two_exports_into_one_empty_folder_the_second_to_finish_refuses(tmp_path, capsys):
    first, second, out, go = tmp_path / "a" / "model.pt", tmp_path / "b" / "model.pt", tmp_path / "out", tmp_path / "go"
    first.parent.mkdir(), second.parent.mkdir()
    _checkpoint(first, seed=0), _checkpoint(second, seed=1)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            PAUSED_EXPORT,
            str(go),
            "export",
            str(first),
            "-o",
            str(out),
            "--format",
            "netx",
            "--calibrate",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline() == "staged\n", child.communicate()
    assert main(["export", str(second), "-o", str(out), "--format", "netx", "--calibrate", "0"]) == 0
    won = {name: data for name, data in _snapshot(out).items() if not name.startswith(".export-")}  # the child's
    go.touch()
    _, err = child.communicate(timeout=120)
    assert child.returncode == 2
    assert "exists (written meanwhile by another command?); pass --force to overwrite" in err, err
    assert "Traceback" not in err and _snapshot(out) == won


def test_a_failed_command_puts_none_of_its_files_in_place(tmp_path):
    out = tmp_path / "new" / "report"
    with pytest.raises(KeyboardInterrupt), staged_outputs(out):
        with atomic_path(out / "inputs.npy") as tmp:
            tmp.write_bytes(b"200 samples")
        with atomic_path(out / "plots" / "a.png") as tmp:
            tmp.write_bytes(b"png")
        raise KeyboardInterrupt
    assert not (tmp_path / "new").exists()
    out.mkdir(parents=True)
    (out / "inputs.npy").write_bytes(b"50 samples")
    (out / "labels.npy").write_bytes(b"50 labels")
    with pytest.raises(KeyboardInterrupt), staged_outputs(out):
        with atomic_path(out / "inputs.npy") as tmp:
            tmp.write_bytes(b"200 samples")
        raise KeyboardInterrupt
    assert _snapshot(out) == {"inputs.npy": b"50 samples", "labels.npy": b"50 labels"}
    with staged_outputs(out):
        for name in ("inputs.npy", "labels.npy", "plots/a.png"):
            with atomic_path(out / name) as tmp:
                tmp.write_bytes(b"new " + name.encode())
        assert {k: v for k, v in _snapshot(out).items() if not k.startswith(".staging-")} == {
            "inputs.npy": b"50 samples",
            "labels.npy": b"50 labels",
        }
    assert _snapshot(out) == {n: b"new " + n.encode() for n in ("inputs.npy", "labels.npy", "plots/a.png")}


@pytest.fixture
def small_fs(tmp_path):
    """A 256 KiB tmpfs (needs root and mount); yields its folder and a function to make it read-only."""
    folder = tmp_path / "fs"
    folder.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield folder, lambda: subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_full_disk_and_read_only_file_system_are_one_line_and_leave_nothing(tmp_path, small_fs, capsys):
    folder, read_only = small_fs
    ckpt = _checkpoint(tmp_path / "model.pt", seed=0)
    (folder / "filler").write_bytes(b"\0" * (256 * 1024 - 24 * 1024))  # what is left is less than an export
    assert main(["export", str(ckpt), "-o", str(folder / "out"), "--format", "netx,nir,onnx", "--calibrate", "0"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert sorted(p.name for p in folder.iterdir()) == ["filler"]
    (folder / "filler").unlink()
    read_only()
    for argv in (
        ["export", str(ckpt), "-o", str(folder / "out"), *EXPORT],
        ["train", "--epochs", "1", "--no-progress", "-o", str(folder / "m.pt")],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Read-only file system" in err and err.count("\n") == 1, err
    assert not list(folder.iterdir())


def test_the_library_writer_refuses_a_folder(tmp_path):
    with pytest.raises(OutputFileError, match="is a directory"), atomic_path(tmp_path):
        pass


COMPARE = ["--samples", "5", "--calibrate", "0", "--no-plots", "--no-progress"]


def test_compare_onto_a_file_is_refused_and_an_interrupted_one_changes_nothing(tmp_path, monkeypatch, capsys):
    ckpt = _checkpoint(tmp_path / "model.pt", seed=0)
    plain = tmp_path / "plain"
    plain.write_text("mine")
    assert main(["compare", str(ckpt), *COMPARE, "-o", str(plain)]) == 2
    assert f"{plain}: is a regular file, not a folder for the outputs" in capsys.readouterr().err
    out = tmp_path / "report"
    assert main(["compare", str(ckpt), *COMPARE, "-o", str(out)]) == 0
    before = _snapshot(out)
    assert {"inputs.npy", "labels.npy", "model.net", "report.json", "report.md"} <= set(before)
    import neurodeploy.report as report
    from neurodeploy.cli import Interrupted

    def cut(report_dict, out_dir):  # the run files are staged by now; the report never comes
        raise Interrupted(2)

    monkeypatch.setattr(report, "write_report", cut)
    assert main(["compare", str(ckpt), *COMPARE[2:], "--samples", "9", "--force", "-o", str(out)]) == 130
    assert _snapshot(out) == before


def test_compare_on_a_full_disk_leaves_nothing(tmp_path, small_fs, capsys):
    folder, _ = small_fs
    ckpt = _checkpoint(tmp_path / "model.pt", seed=0)
    (folder / "filler").write_bytes(b"\0" * (256 * 1024 - 16 * 1024))
    assert main(["compare", str(ckpt), *COMPARE, "-o", str(folder / "report")]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and err.count("\n") == 1, err
    assert sorted(p.name for p in folder.iterdir()) == ["filler"]

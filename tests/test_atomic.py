"""Outputs are all or nothing: an export cut by SIGINT, SIGTERM, a full disk or a failed rename leaves
the previous files byte for byte and nothing partial (no .part file, no staging folder)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import neurodeploy.atomic as atomic
import pytest
import torch
from neurodeploy.atomic import atomic_path, deferred_signals, replace_all
from neurodeploy.cli import main
from neurodeploy.errors import OutputFileError
from neurodeploy.export import export_model
from neurodeploy.models import make_rule, parse_arch, save_checkpoint
from neurodeploy.models.network import SpikingNetwork
from neurodeploy.targets import load_target

FORMATS = "netx,nir,onnx"
WAIT_SECONDS = 120  # for the child to reach its staging folder on a loaded machine
# Test side only: runs `python -m neurodeploy export ...` with the writer of the first format made to
# stop, once its file is staged, until a signal arrives; production code has no such hook.
PAUSED_EXPORT = textwrap.dedent("""
    import runpy, sys, time
    import neurodeploy.export as export
    writer = export._writer
    def paused_writer(fmt):
        write = writer(fmt)
        def paused(q, path):
            write(q, path)
            while True:  # short sleeps: a signal that reaches another thread is handled at the next one
                time.sleep(0.02)
        return paused
    export._writer = paused_writer
    sys.argv = ["neurodeploy", *sys.argv[1:]]
    runpy.run_module("neurodeploy", run_name="__main__")
""")


def _checkpoint(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = SpikingNetwork(parse_arch("64-16-10"), (1, 8, 8), make_rule("tssl"), "current")
    for p in model.parameters():
        torch.nn.init.normal_(p, 0.0, 0.4)
    save_checkpoint(
        path,
        model,
        encoding={"name": "direct"},
        steps=5,
        dataset="digits",
        split={},
        float_test_accuracy=0.0,
        seed=seed,
    )
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def exported(tmp_path):
    """A folder holding a complete export of one model, a different model to export over it, and the
    folder's contents before."""
    out = tmp_path / "out"
    _checkpoint(tmp_path / "model.pt", seed=0)
    assert main(["export", str(tmp_path / "model.pt"), "-o", str(out), "--format", FORMATS, "--calibrate", "0"]) == 0
    before = _snapshot(out)
    assert {"model.net", "model.nir", "model.onnx", "model.input.npz", "export.json"} <= set(before)
    _checkpoint(tmp_path / "model.pt", seed=1)  # a second model under the same name: other bytes
    return out, tmp_path / "model.pt", before


def _export_args(ckpt: Path, out: Path) -> list[str]:
    return ["export", str(ckpt), "-o", str(out), "--format", FORMATS, "--calibrate", "0", "--force"]


def _wait_for_staging(out: Path, child: subprocess.Popen) -> Path:
    """Poll until the child's staging folder holds a staged file; return the folder."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        staged = [p for p in out.glob(".export-*") if any(p.iterdir())]
        if staged:
            return staged[0]
        assert child.poll() is None, child.communicate()
        time.sleep(0.02)
    child.kill()
    pytest.fail("the export never staged a file")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_export_killed_halfway_leaves_the_previous_files(exported, signum):
    out, ckpt, before = exported
    child = subprocess.Popen(
        [sys.executable, "-c", PAUSED_EXPORT, *_export_args(ckpt, out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    staging = _wait_for_staging(out, child)
    child.send_signal(signum)
    _, err = child.communicate(timeout=WAIT_SECONDS)
    assert child.returncode == 128 + signum, err
    assert f"interrupted ({signal.Signals(signum).name})" in err and "Traceback" not in err
    assert not staging.exists()
    assert _snapshot(out) == before


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_real_export_killed_as_soon_as_it_stages(exported, signum):
    """The unmodified command, signalled the moment its staging folder appears: whenever the signal
    lands, the folder holds either the previous export or the new one, complete, and nothing else."""
    out, ckpt, before = exported
    child = subprocess.Popen(
        [sys.executable, "-m", "neurodeploy", *_export_args(ckpt, out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + WAIT_SECONDS
    while not list(out.glob(".export-*")) and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    child.send_signal(signum)
    _, err = child.communicate(timeout=WAIT_SECONDS)
    after = _snapshot(out)
    assert not list(out.glob(".export-*")) and not list(out.glob("*.part")), after.keys()
    if child.returncode == 0:  # finished before the signal was handled
        assert after.keys() == before.keys() and after != before
    else:
        assert child.returncode == 128 + signum, err
        assert after == before


def test_full_disk_while_writing_keeps_the_previous_files(exported, monkeypatch, capsys):
    out, ckpt, before = exported
    import neurodeploy.exporters.onnx as onnx_exporter

    def full_disk(net, path, steps):
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"half an onnx file")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    monkeypatch.setattr(onnx_exporter, "write_onnx", full_disk)
    assert main(_export_args(ckpt, out)) == 2
    err = capsys.readouterr().err
    assert err == (
        f"neurodeploy export: error: {out / 'model.onnx'}: cannot write: No space left on device; "
        "the previous files are kept\n"
    )
    assert _snapshot(out) == before


def test_failed_rename_puts_the_previous_files_back(exported, monkeypatch):
    """The second rename into the output folder fails: the first is undone."""
    out, ckpt, before = exported
    real = os.replace
    into_out = []

    def flaky(src, dst):
        if Path(dst).parent == out:
            into_out.append(dst)
            if len(into_out) == 2:
                raise OSError(errno.EIO, os.strerror(errno.EIO), str(src))
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", flaky)
    with pytest.raises(OutputFileError, match="the previous files are kept"):
        export_model(ckpt, load_target("loihi2"), out, formats=FORMATS.split(","), calibrate=0, force=True)
    monkeypatch.undo()
    assert len(into_out) == 3 and into_out[2] == into_out[0]  # the third: the first file's backup restored
    assert _snapshot(out) == before


def test_atomic_path_keeps_the_old_file_on_error(tmp_path):
    path = tmp_path / "result.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_bytes(b"new but unfinished")
        raise RuntimeError("cut")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["result.bin"]
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"new")
    assert path.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["result.bin"]


def test_signals_wait_for_the_end_of_a_deferred_block():
    reached_end = False
    with pytest.raises(KeyboardInterrupt), deferred_signals():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        reached_end = True
    assert reached_end


def test_replace_all_restores_on_failure(tmp_path):
    staging, out = tmp_path / "staging", tmp_path / "out"
    staging.mkdir()
    out.mkdir()
    (out / "a").write_text("old a")
    (staging / "a").write_text("new a")
    (staging / "b").write_text("new b")
    moves = [(staging / "a", out / "a"), (staging / "b", out / "b"), (staging / "missing", out / "c")]
    with pytest.raises(
        OutputFileError,
        match=r"out/c: cannot put the new files in place: No such file or directory; "
        r"the ones already moved were put back",
    ):
        replace_all(moves, staging)
    assert _snapshot(out) == {"a": b"old a"}


class _DropsAnInterrupt:
    """Sends this process SIGINT from its finalizer, where the exception the handler raises is
    printed and dropped by Python ("Exception ignored in ...")."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)  # the handler runs here, inside the finalizer


class _FailsInFinalizer:
    def __del__(self):
        raise ValueError("not an interrupt")


def test_an_interrupt_dropped_by_a_finalizer_is_sent_again(monkeypatch):
    from neurodeploy.cli import Interrupted, interrupts_raise

    reported = []  # what Python reports as "Exception ignored in ..."
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: reported.append(unraisable.exc_type))
    start, past_the_finalizer = time.monotonic(), False
    with pytest.raises(Interrupted) as caught, interrupts_raise():
        _DropsAnInterrupt()  # made and finalized at once; the interrupt raised in there is lost
        _FailsInFinalizer()
        past_the_finalizer = True
        while time.monotonic() - start < 10:
            time.sleep(0.01)
    assert past_the_finalizer and caught.value.signum == signal.SIGINT
    assert time.monotonic() - start < 5
    assert reported == [ValueError]  # the lost interrupt itself is not reported: it was sent again
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

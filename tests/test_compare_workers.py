"""compare on several processes: 2 local workers, and 2 torchrun processes with gloo, write exactly the
files one process writes (report, per-layer statistics, predictions, inputs, netx file, plots)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from neurodeploy.cli import main

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]
# 100 samples in batches of 16: 7 batches, the last of 4; the workers take 4 and 3 of them
ARGS = ["--samples", "100", "--batch-size", "16", "--calibrate", "32", "--no-progress"]


@pytest.fixture(scope="module")
def spiking(tmp_path_factory) -> Path:
    """A digits model (rate encoding) trained enough that every layer spikes and predictions vary."""
    from neurodeploy.train import TrainConfig, train

    cfg = TrainConfig(rule="tssl", arch="64-32-10", dataset="digits", steps=5, epochs=4, limit=400, progress=False)
    path = tmp_path_factory.mktemp("spiking") / "tiny.pt"
    torch.save(train(cfg, log=lambda _: None).checkpoint, path)
    return path


@pytest.fixture(scope="module")
def one_process(spiking: Path) -> Path:
    out = spiking.parent / "one"
    assert main(["compare", str(spiking), *ARGS, "-o", str(out)]) == 0
    return out


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, the folder's own name replaced (the report names its files)."""
    return {
        str(p.relative_to(folder)): p.read_bytes().replace(str(folder).encode(), b"OUT")
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_the_reference_run_spikes_in_every_layer(one_process):
    report = json.loads((one_process / "report.json").read_text())
    assert all(layer["rate_int"] > 0 and layer["rate_float"] > 0 for layer in report["layers"])
    predicted = np.array(report["accuracy"]["confusion"]["quantized"]).sum(axis=0)
    assert np.count_nonzero(predicted) >= 3  # the output layer decides, not its silence
    assert report["accuracy"]["samples"] == 100


def test_two_workers_write_the_files_of_one_process(spiking, one_process, tmp_path):
    out = tmp_path / "two"
    assert main(["compare", str(spiking), *ARGS, "--workers", "2", "-o", str(out)]) == 0
    one, two = _files(one_process), _files(out)
    assert sorted(one) == sorted(two) and len(one) == 10  # netx, inputs, labels, json, markdown, 5 plots
    assert [name for name in one if one[name] != two[name]] == []


def test_two_torchrun_processes_write_the_files_of_one_process(spiking, one_process, tmp_path):
    out = tmp_path / "ranks"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    run = subprocess.run(
        [*torchrun, "-m", "neurodeploy", "compare", str(spiking), *ARGS, "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("quantized accuracy") == 1  # rank 0 alone reports
    one, ranks = _files(one_process), _files(out)
    assert sorted(one) == sorted(ranks)
    assert [name for name in one if one[name] != ranks[name]] == []


def test_workers_under_torchrun_are_refused(spiking, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["compare", str(spiking), *ARGS, "--workers", "2", "-o", str(tmp_path / "x")]) == 2
    assert "--workers 2 under torchrun: its 2 processes share the batches already" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()

"""``python -m neurodeploy.train``: a short run end to end, and clear errors for bad arguments."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from neurodeploy.train import main

from datafiles import mnist_folder, nmnist_bytes


def test_module_entry_point_trains_and_writes(tmp_path):
    out = tmp_path / "m.pt"
    cmd = [
        sys.executable,
        "-m",
        "neurodeploy.train",
        "--rule",
        "bpsa",
        "--arch",
        "64-16-10bn",
        "--steps",
        "4",
        "--epochs",
        "2",
        "--limit",
        "200",
        "--seed",
        "3",
        "--threads",
        "1",
        "-o",
        str(out),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "epoch   2/2" in run.stdout and "float test accuracy" in run.stdout
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["rule"] == "bpsa" and ckpt["steps"] == 4 and ckpt["seed"] == 3


def test_the_checkpoint_defaults_to_model_pt_in_the_working_folder(tmp_path):
    cmd = [sys.executable, "-m", "neurodeploy", "train", "--arch", "64-8-10", "--steps", "2", "--epochs", "1"]
    run = subprocess.run([*cmd, "--limit", "20", "--no-progress"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "checkpoint written to model.pt" in run.stdout
    assert torch.load(tmp_path / "model.pt", weights_only=True)["steps"] == 2


@pytest.mark.parametrize(
    "args, words",
    [
        (["--arch", "64-12q-10"], "token '12q' is not a layer"),
        (["--arch", "64-128-7"], "ends with 7 neurons but digits has 10 classes"),
        (["--dataset", "mnist", "--data-root", "/nonexistent/mnist"], "'/nonexistent/mnist' does not exist"),
        (["--dataset", "mnist"], "needs a data folder"),
        (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["--rule", "bpsa", "--tau-m", "4"], "integrate-and-fire"),
        (["--rule", "tssl", "--loss", "ce"], "takes kernel or count"),
        (["--rule", "tssl", "--variant", "graded"], "'bpsa' only"),
        (["--encoding", "events"], "'events' is the encoding of nmnist"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(tmp_path, capsys, args, words):
    assert main([*args, "--epochs", "1", "--no-progress", "-o", str(tmp_path / "m.pt")]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()


def test_unknown_rule_is_refused_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--rule", "stdp", "-o", str(tmp_path / "m.pt")])
    assert exit_info.value.code == 2
    assert "invalid choice: 'stdp'" in capsys.readouterr().err


def _fake_nmnist(root, per_class=2):
    rng = np.random.default_rng(1)
    for split in ("Train", "Test"):
        for digit in range(10):
            folder = root / split / str(digit)
            folder.mkdir(parents=True)
            for k in range(per_class):
                n = 200
                ts = np.sort(rng.integers(0, 300_000, n))
                events = zip(rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n), ts)
                (folder / f"{k:05d}.bin").write_bytes(nmnist_bytes(events))


@pytest.mark.parametrize(
    "dataset, arch, extra", [("mnist", "8C5s2-P2-10", ["--encoding", "rate"]), ("nmnist", "2x34x34-4C5s3-P2-10", [])]
)
def test_trains_from_local_files(tmp_path, dataset, arch, extra):
    (mnist_folder if dataset == "mnist" else _fake_nmnist)(tmp_path / "data")
    out = tmp_path / "m.pt"
    args = [
        "--dataset",
        dataset,
        "--data-root",
        str(tmp_path / "data"),
        "--arch",
        arch,
        "--steps",
        "4",
        "--epochs",
        "1",
        "--threads",
        "1",
        "--no-progress",
        "-o",
        str(out),
        *extra,
    ]
    assert main(args) == 0
    ckpt = torch.load(out, weights_only=True)
    assert ckpt["dataset"] == dataset and ckpt["encoding"]["name"] == ("rate" if dataset == "mnist" else "events")


def test_an_existing_checkpoint_is_refused_before_training_without_force(tmp_path, capsys):
    out = tmp_path / "m.pt"
    out.write_bytes(b"earlier")
    args = [
        "--arch",
        "64-8-10",
        "--steps",
        "2",
        "--epochs",
        "1",
        "--limit",
        "20",
        "--threads",
        "1",
        "--no-progress",
        "-o",
        str(out),
    ]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert f"{out} exist(s); pass --force to overwrite" in captured.err and "epoch" not in captured.out
    assert out.read_bytes() == b"earlier"
    assert main([*args, "--force"]) == 0 and torch.load(out, weights_only=True)["steps"] == 2

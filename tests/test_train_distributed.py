"""Training under torchrun: 2 CPU processes with gloo equal one process on the same global batches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from neurodeploy.distributed import World
from neurodeploy.errors import NeurodeployError

REPO = Path(__file__).resolve().parents[1]
# 301 samples in batches of 33: the shards of a batch are 17 and 16 samples, the last batch's 2 and 1,
# so the step is only right if each process's gradient counts by its share of the batch
ARGS = [
    "train",
    "--rule",
    "tssl",
    "--arch",
    "64-32-10",
    "--steps",
    "4",
    "--epochs",
    "2",
    "--limit",
    "301",
    "--batch-size",
    "33",
    "--seed",
    "4",
    "--device",
    "cpu",
    "--threads",
    "1",
    "--no-progress",
]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_two_gloo_processes_match_one_process(tmp_path):
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    two = _run(torchrun + ["-m", "neurodeploy"] + ARGS + ["-o", str(tmp_path / "two.pt")])
    _run([sys.executable, "-m", "neurodeploy"] + ARGS + ["-o", str(tmp_path / "one.pt")])
    assert two.stdout.count("epoch   2/2") == 1 and two.stdout.count("checkpoint written") == 1  # rank 0 only
    a, b = (torch.load(tmp_path / f"{name}.pt", weights_only=True) for name in ("one", "two"))
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert not torch.equal(value, torch.zeros_like(value)), key
        torch.testing.assert_close(b["state_dict"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    for x, y in zip(a["training"]["history"], b["training"]["history"]):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-5) and y["train_accuracy"] == x["train_accuracy"]
        assert y["test_accuracy"] == x["test_accuracy"]


def test_the_sampler_shards_each_batch_and_refuses_an_empty_shard():
    assert World(rank=1, size=3).shard(list(range(8))) == [1, 4, 7]
    World(rank=0, size=2).check_batches(301, 33)
    with pytest.raises(NeurodeployError, match="leaves a batch of 1, fewer than the 2 processes"):
        World(rank=0, size=2).check_batches(298, 33)

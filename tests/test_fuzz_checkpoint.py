"""Checkpoints: random corruptions (of the archive's bytes, or of the dict and its tensors) are
refused with one clean error naming the file, never a crash or an unsafe unpickling."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from neurodeploy.export import load_float_model
from neurodeploy.models import load_checkpoint, make_rule, parse_arch, save_checkpoint
from neurodeploy.models.network import SpikingNetwork

from fuzzing import byte_corrupter, cases, checkpoint_value, corrupt_tree, fuzz

BYTE_CASES = 500
STRUCTURED_CASES = 600


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> bytes:
    """A small conv checkpoint with batch norm (integer buffers too) and the direct encoding."""
    torch.manual_seed(0)
    model = SpikingNetwork(parse_arch("4C3p1bn-P2-10"), (1, 8, 8), make_rule("tssl"), "current")
    path = tmp_path_factory.mktemp("ckpt") / "valid.pt"
    save_checkpoint(
        path,
        model,
        encoding={"name": "direct"},
        steps=4,
        dataset="digits",
        split={},
        float_test_accuracy=0.5,
        seed=0,
        evaluation={"seed": 0, "batch_size": 8},
    )
    load_float_model(path)
    return path.read_bytes()


def _tree_corrupter(valid: bytes):
    base = torch.load(io.BytesIO(valid), weights_only=True)

    def corrupt(rng, path) -> str:
        ckpt = copy.deepcopy(base)
        kinds = [corrupt_tree(ckpt, rng, checkpoint_value) for _ in range(int(rng.choice([1, 1, 2])))]
        torch.save(ckpt, path)
        return "tree " + "; ".join(kinds)

    return corrupt


@pytest.mark.parametrize(
    "kind,corrupter,n,first_seed",
    [
        ("bytes", byte_corrupter, BYTE_CASES, 0),
        ("structured", _tree_corrupter, STRUCTURED_CASES, 1_000_000),
    ],
)
def test_corrupted_checkpoints_are_refused_cleanly(valid, tmp_path, kind, corrupter, n, first_seed):
    tally = fuzz(cases(n), corrupter(valid), load_float_model, tmp_path / "case.pt", tmp_path / "failing", first_seed)
    print(tally.summary(f"checkpoint {kind}"))
    assert not tally.failures, "\n".join(tally.failures[:10])
    assert tally.total == cases(n)
    assert tally.refused > tally.total // 3, "the corruptions should mostly break the file"


def test_valid_checkpoint_loads(valid, tmp_path):
    path = tmp_path / "m.pt"
    path.write_bytes(valid)
    model, ckpt = load_checkpoint(path)
    assert ckpt["arch"] == "4C3p1bn-P2-10" and not model.training

"""Checkpoints: self-describing, loadable with weights_only=True, and round-tripping."""

import numpy as np
import pytest
import torch
from neurodeploy.datasets import load_dataset
from neurodeploy.encoding import encode
from neurodeploy.models import CheckpointError, float_graph, load_checkpoint, predict
from neurodeploy.train import TrainConfig, train

KEYS = {
    "format",
    "version",
    "rule",
    "variant",
    "deployable",
    "arch",
    "input_shape",
    "neuron",
    "encoding",
    "steps",
    "dataset",
    "split",
    "float_test_accuracy",
    "seed",
    "state_dict",
    "evaluation",
    "training",
    "num_classes",
}


@pytest.fixture(
    scope="module",
    params=[
        dict(rule="tssl", arch="4C3p1-P2-D0.1-10", encoding="rate"),
        dict(rule="bpsa", arch="64-16bn-10bn", steps=4),
        dict(rule="bpsa", arch="64-16-10", variant="graded"),
    ],
)
def trained(request, tmp_path_factory):
    cfg = TrainConfig(epochs=1, limit=128, progress=False, threads=1, **request.param)
    result = train(cfg, log=lambda _: None)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    torch.save(result.checkpoint, path)
    return result, path


def test_checkpoint_is_self_describing(trained):
    result, path = trained
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt) >= KEYS
    assert ckpt["format"] == "neurodeploy-checkpoint" and ckpt["version"] == 1
    assert ckpt["dataset"] == "digits" and ckpt["split"]["random_state"] == 0 and ckpt["split"]["train_limit"] == 128
    assert ckpt["input_shape"] == [1, 8, 8] and ckpt["num_classes"] == 10
    assert set(ckpt["neuron"]) >= {"tau_m", "tau_s", "vth", "current_decay", "voltage_decay", "input_scale"}
    assert ckpt["deployable"] == (ckpt["variant"] == "binary")
    assert len(ckpt["training"]["history"]) == 1
    assert ckpt["float_test_accuracy"] == result.history[-1]["test_accuracy"]


def test_round_trip_gives_the_same_spikes(trained):
    result, path = trained
    model, meta = load_checkpoint(path)
    x, _ = load_dataset("digits", split="test")
    inputs = encode(torch.as_tensor(x[:64]), meta["encoding"], meta["steps"], torch.Generator().manual_seed(5))
    with torch.no_grad():
        a, layers_a = result.model.eval()(inputs, record=True)
        b, layers_b = model(inputs, record=True)
    assert torch.equal(a, b) and all(torch.equal(p, q) for p, q in zip(layers_a, layers_b))
    for op_a, op_b in zip(float_graph(result.model), float_graph(model)):
        for key, value in op_a.items():
            assert np.array_equal(value, op_b[key]) if isinstance(value, np.ndarray) else value == op_b[key]


def test_float_accuracy_is_reproducible_from_the_checkpoint(trained):
    _, path = trained
    model, meta = load_checkpoint(path)
    x, y = load_dataset("digits", split="test")
    gen = torch.Generator().manual_seed(meta["evaluation"]["seed"])
    correct, size = 0, meta["evaluation"]["batch_size"]
    with torch.no_grad():
        for i in range(0, len(y), size):
            output = model(encode(torch.as_tensor(x[i : i + size]), meta["encoding"], meta["steps"], gen))
            correct += (predict(output, meta["rule_options"]["readout"]).numpy() == y[i : i + size]).sum()
    assert correct / len(y) == meta["float_test_accuracy"]


def test_bad_checkpoints_raise_clear_errors(tmp_path, trained):
    _, path = trained
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pt: not a checkpoint"):
        load_checkpoint(junk)
    ckpt = torch.load(path, weights_only=True)
    del ckpt["neuron"]
    torch.save(ckpt, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=r"partial\.pt: missing key 'neuron'"):
        load_checkpoint(tmp_path / "partial.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["arch"] = "64-99-10"
    torch.save(ckpt, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"other\.pt"):
        load_checkpoint(tmp_path / "other.pt")

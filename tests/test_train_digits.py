"""Both rules learn the embedded digits; training is deterministic given the seed."""

import pytest
import torch

from neurodeploy.train import TrainConfig, train


def _run(**kw):
    return train(TrainConfig(progress=False, threads=1, **kw), log=lambda _: None)


def test_training_is_deterministic_given_the_seed():
    a = _run(rule="tssl", arch="64-32-10", epochs=2, limit=300, encoding="rate", seed=4)
    b = _run(rule="tssl", arch="64-32-10", epochs=2, limit=300, encoding="rate", seed=4)
    c = _run(rule="tssl", arch="64-32-10", epochs=2, limit=300, encoding="rate", seed=5)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert all(torch.equal(v, b.checkpoint["state_dict"][k]) for k, v in a.checkpoint["state_dict"].items())
    assert [h["loss"] for h in a.history] != [h["loss"] for h in c.history]


@pytest.mark.parametrize("rule, arch, steps", [("tssl", "64-64-10", 5), ("bpsa", "64-64-10bn", 8),
                                               ("bptt-lif", "64-64-10", 5), ("bptt-if", "64-64-10", 5)])
def test_rules_learn_digits_in_a_few_epochs(rule, arch, steps):
    result = _run(rule=rule, arch=arch, steps=steps, epochs=4)
    assert result.history[-1]["test_accuracy"] >= 0.85
    assert result.history[-1]["loss"] < result.history[0]["loss"]

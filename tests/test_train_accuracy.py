"""The digits accuracy claims: each rule's recipe reaches the target on the fixed split.

The recipes are those of docs/training.md and benchmarks/train_speed.py (seed 0,
one CPU thread, so that the run is the same everywhere torch computes the same).
"""

import pytest

from neurodeploy.train import TrainConfig, train

RECIPES = [
    pytest.param(dict(rule="tssl", arch="64-128-10", steps=8), 0.97, id="tssl-mlp"),
    pytest.param(dict(rule="bpsa", arch="64-128-D0.1-10bn", steps=8, loss="mse"), 0.97, id="bpsa-mlp"),
    pytest.param(dict(rule="tssl", arch="16C3p1-P2-32C3p1-P2-D0.2-10", steps=5, loss="count"), 0.98, id="tssl-cnn"),
    pytest.param(dict(rule="bpsa", arch="16C3p1bn-P2-32C3p1bn-P2-D0.2-10bn", steps=8, loss="mse"), 0.98, id="bpsa-cnn"),
]


@pytest.mark.parametrize("recipe, target", RECIPES)
def test_recipe_reaches_target(recipe, target):
    result = train(TrainConfig(epochs=30, seed=0, threads=1, progress=False, **recipe), log=lambda _: None)
    assert result.history[-1]["test_accuracy"] >= target

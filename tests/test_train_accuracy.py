"""The digits accuracy claims: each rule's recipe reaches the target on the fixed split.

The recipes are neurodeploy.train.DIGITS_RECIPES, as in docs/training.md and
benchmarks/train_speed.py (seed 0, one CPU thread, so that the run is the same
everywhere torch computes the same).
"""

import pytest
from neurodeploy.train import DIGITS_RECIPES, TrainConfig, train

TARGETS = {"mlp-tssl": 0.97, "mlp-bpsa": 0.97, "mlp-bpsa-plain": 0.97, "cnn-tssl": 0.98, "cnn-bpsa": 0.98}


@pytest.mark.parametrize("name", list(TARGETS))
def test_recipe_reaches_target(name):
    result = train(
        TrainConfig(epochs=30, seed=0, threads=1, progress=False, **DIGITS_RECIPES[name]), log=lambda _: None
    )
    assert result.history[-1]["test_accuracy"] >= TARGETS[name]

"""Target TOML files: random corruptions (of the text, or of the parsed tables) are refused with one
clean error naming the file and the key, never a crash."""

from __future__ import annotations

import copy
from importlib import resources

import pytest
from neurodeploy.targets import (
    load_target,
    tomllib,  # the standard library's, or tomli on Python 3.10
)

from fuzzing import byte_corrupter, cases, corrupt_tree, fuzz, to_toml, toml_value

BYTE_CASES = 600
STRUCTURED_CASES = 600


@pytest.fixture(scope="module")
def valid() -> bytes:
    return (resources.files("neurodeploy.hw_configs") / "loihi1.toml").read_bytes()


def _tree_corrupter(valid: bytes):
    base = tomllib.loads(valid.decode())

    def corrupt(rng, path) -> str:
        data = copy.deepcopy(base)
        kinds = [corrupt_tree(data, rng, toml_value) for _ in range(int(rng.choice([1, 1, 2])))]
        path.write_text(to_toml(data))
        return "tree " + "; ".join(kinds)

    return corrupt


def test_the_writer_of_corruptions_reproduces_the_file(valid, tmp_path):
    path = tmp_path / "same.toml"
    path.write_text(to_toml(tomllib.loads(valid.decode())))
    assert load_target(path).__dict__ | {"path": ""} == load_target("loihi1").__dict__ | {"path": ""}


@pytest.mark.parametrize(
    "kind,corrupter,n,first_seed",
    [
        ("bytes", byte_corrupter, BYTE_CASES, 0),
        ("structured", _tree_corrupter, STRUCTURED_CASES, 1_000_000),
    ],
)
def test_corrupted_target_files_are_refused_cleanly(valid, tmp_path, kind, corrupter, n, first_seed):
    tally = fuzz(cases(n), corrupter(valid), load_target, tmp_path / "case.toml", tmp_path / "failing", first_seed)
    print(tally.summary(f"target TOML {kind}"))
    assert not tally.failures, "\n".join(tally.failures[:10])
    assert tally.total == cases(n)
    assert tally.refused > tally.total // 3, "the corruptions should mostly break the file"

"""NIR files: random corruptions are refused with one clean error naming the file, never a crash,
by both readers (our netlists, and foreign float graphs for the quantizer)."""

from __future__ import annotations

import itertools

import pytest

pytest.importorskip("nir")

from fuzzing import byte_corrupter, cases, fuzz, hdf5_corrupter, sample_netlist  # noqa: E402
from neurodeploy.export import load_float_model  # noqa: E402
from neurodeploy.exporters.nir import write_nir  # noqa: E402
from neurodeploy.fold import fold  # noqa: E402
from neurodeploy.netio import load_netlist  # noqa: E402

BYTE_CASES = 500
STRUCTURED_CASES = 500


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("nir") / "valid.nir"
    write_nir(sample_netlist(input_layer=False), path)
    _load(path)
    return path.read_bytes()


def _load(path) -> None:
    """What `inspect`/`run` (a netlist) and `export` (a float graph, folded) read from a .nir file."""
    load_netlist(path)
    _float_graph(path)


def _float_graph(path) -> None:
    fold(load_float_model(path, steps=4).graph)


@pytest.mark.parametrize("kind,corrupter,n,first_seed", [
    ("bytes", byte_corrupter, BYTE_CASES, 0),
    ("structured", hdf5_corrupter, STRUCTURED_CASES, 1_000_000),
])
def test_corrupted_nir_files_are_refused_cleanly(valid, tmp_path, kind, corrupter, n, first_seed):
    readers = itertools.cycle([load_netlist, _float_graph])  # each reader on every other case
    tally = fuzz(cases(n), corrupter(valid), lambda path: next(readers)(path), tmp_path / "case.nir",
                 tmp_path / "failing", first_seed)
    print(tally.summary(f"NIR {kind}"))
    assert not tally.failures, "\n".join(tally.failures[:10])
    assert tally.total == cases(n)
    assert tally.refused > tally.total // 3, "the corruptions should mostly break the file"

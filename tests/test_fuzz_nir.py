"""NIR files: random corruptions are refused with one clean error naming the file, never a crash,
by both readers (our netlists, and foreign float graphs for the quantizer)."""

from __future__ import annotations

import pytest

pytest.importorskip("nir")

from neurodeploy.exporters.nir import write_nir
from neurodeploy.netio import load_netlist

from fuzzing import (
    LoaderProcess,
    byte_corrupter,
    cases,
    fuzz,
    hdf5_corrupter,
    load_float_graph,
    sample_netlist,
)

BYTE_CASES = 500
STRUCTURED_CASES = 500


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("nir") / "valid.nir"
    write_nir(sample_netlist(input_layer=False), path)
    load_netlist(path)
    load_float_graph(path)
    return path.read_bytes()


@pytest.mark.parametrize(
    "kind,corrupter,n,first_seed",
    [
        ("bytes", byte_corrupter, BYTE_CASES, 0),
        ("structured", hdf5_corrupter, STRUCTURED_CASES, 1_000_000),
    ],
)
def test_corrupted_nir_files_are_refused_cleanly(valid, tmp_path, kind, corrupter, n, first_seed):
    with LoaderProcess("fuzzing:load_nir_alternately") as load:  # each reader on every other case
        tally = fuzz(cases(n), corrupter(valid), load, tmp_path / "case.nir", tmp_path / "failing", first_seed)
    print(tally.summary(f"NIR {kind}"))
    assert not tally.failures, "\n".join(tally.failures[:10])
    assert tally.total == cases(n)
    assert tally.refused > tally.total // 3, "the corruptions should mostly break the file"

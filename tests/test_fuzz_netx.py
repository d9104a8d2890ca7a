"""netx files: random corruptions are refused with one clean error naming the file, never a crash."""

from __future__ import annotations

import pytest
from neurodeploy.exporters.netx import write_netx
from neurodeploy.netio import load_netlist

from fuzzing import LoaderProcess, byte_corrupter, cases, fuzz, hdf5_corrupter, sample_netlist

BYTE_CASES = 600
STRUCTURED_CASES = 600


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("netx") / "valid.net"
    write_netx(sample_netlist(input_layer=True), path)
    load_netlist(path)
    return path.read_bytes()


@pytest.mark.parametrize(
    "kind,corrupter,n,first_seed",
    [
        ("bytes", byte_corrupter, BYTE_CASES, 0),
        ("structured", hdf5_corrupter, STRUCTURED_CASES, 1_000_000),
    ],
)
def test_corrupted_netx_files_are_refused_cleanly(valid, tmp_path, kind, corrupter, n, first_seed):
    with LoaderProcess("neurodeploy.netio:load_netlist") as load:
        tally = fuzz(cases(n), corrupter(valid), load, tmp_path / "case.net", tmp_path / "failing", first_seed)
    print(tally.summary(f"netx {kind}"))
    assert not tally.failures, "\n".join(tally.failures[:10])
    assert tally.total == cases(n)
    assert tally.refused > tally.total // 3, "the corruptions should mostly break the file"

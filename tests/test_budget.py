"""The memory budget: set by --max-bytes or NEURODEPLOY_MAX_BYTES, named in every refusal with how to raise it."""

from __future__ import annotations

import pytest
from neurodeploy import budget
from neurodeploy.cli import main
from neurodeploy.exporters.netx import write_netx

from fuzzing import sample_netlist


@pytest.mark.parametrize("text, value", [("123", 123), ("4G", 4 << 30), ("512m", 512 << 20), ("2KiB", 2048)])
def test_sizes_parse(text, value):
    assert budget.parse_bytes(text) == value


@pytest.mark.parametrize("text", ["0", "-1", "1.5G", "lots", "1P"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(ValueError):
        budget.parse_bytes(text)


def test_the_budget_comes_from_the_option_then_the_environment(tmp_path, monkeypatch, capsys):
    net = tmp_path / "n.net"
    write_netx(sample_netlist(input_layer=True), net)
    run = ["run", str(net), "--steps", "2000", "-o", str(tmp_path / "o.npz")]  # 2000 * 35 * 9 bytes of records
    assert main(["--max-bytes", "256K", *run]) == 2
    err = capsys.readouterr().err
    assert "more than the memory budget of 256 KiB; raise it with --max-bytes or $NEURODEPLOY_MAX_BYTES" in err
    monkeypatch.setenv(budget.ENV, "256K")
    assert main(run) == 2 and "budget of 256 KiB" in capsys.readouterr().err
    assert main(["--max-bytes", "1G", *run]) == 0
    monkeypatch.delenv(budget.ENV)
    assert budget.limit() == budget.DEFAULT_BYTES and main(run) == 0

"""The demo end to end with one training epoch: every stage's files, and a summary that says where they are."""

from __future__ import annotations

import json

import pytest
from neurodeploy.cli import main

pytest.importorskip("torch")


def test_demo_trains_exports_compares_and_reports(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--epochs", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    report_md = out / "report" / "report.md"
    assert str(report_md) in printed
    for needle in ("float accuracy", "quantized accuracy", "agreement", "cores", "energy"):
        assert needle in printed, needle
    assert (out / "model.pt").exists() and (out / "export" / "model.net").exists()
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["hardware"]["target"] == "loihi2"
    assert report["hardware_reference"]["energy_pj"] > 0
    assert report["accuracy"]["samples"] == 450
    assert set(report["plots"]) == {"accuracy", "layer_rates", "weights", "raster", "core_utilization"}
    assert all((out / "report" / p).exists() for p in report["plots"].values())

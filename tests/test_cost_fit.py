"""Loihi 2's per-operation costs, fitted to lava-dl's PilotNet LIF measurement on the chip."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from neurodeploy import cli
from neurodeploy.cost import assumed_activity, estimate_cost, measured_activity
from neurodeploy.cost_fit import PILOTNET_LIF_LOIHI2, Measurement, fit_costs
from neurodeploy.exporters.netx import read_netx
from neurodeploy.mapping import map_network
from neurodeploy.netlist import CubaNeuron, Dense, Netlist
from neurodeploy.sim import simulate
from neurodeploy.targets import load_target

LOIHI1, LOIHI2 = load_target("loihi1"), load_target("loihi2")
MEASURED_MJ, MEASURED_RATE = 1.661103, 408.91  # lava-dl's notebook: total energy an inference, inferences/s


@pytest.fixture(scope="module")
def pilotnet(conformance_dir):
    """PilotNet LIF's file and netlist, its golden image as input-layer bias in (C, H, W), and its counts
    over the notebook's 16 steps."""
    path = conformance_dir / "gts" / "pilotnet_lif" / "network.net"
    net = read_netx(path)
    image = np.load(path.parent / "image.npy").transpose(2, 1, 0).astype(np.int64)
    return str(path), net, image, measured_activity(simulate(net, PILOTNET_LIF_LOIHI2.steps, bias=image))


def test_the_fit_reproduces_its_measurement_on_a_small_network():
    """Any counts: the fitted figures give back the measured energy and rate, in Loihi 1's ratios."""
    rng = np.random.default_rng(3)
    net = Netlist([Dense(rng.integers(-3, 4, (30, 20)), CubaNeuron(vth=4, du=4095, dv=0))], input_shape=(20,))
    mapping = map_network(net, LOIHI2)
    activity = assumed_activity(mapping, steps=8, rate=0.2)
    measured = Measurement("toy", inferences_per_s=1000.0, dynamic_mj=0.01, static_w=0.1, steps=8, source="by hand")
    energy, timing = fit_costs(mapping, activity, measured, LOIHI1)
    assert energy.neuron_update_pj / energy.synaptic_op_pj == pytest.approx(52 / 23.6)
    assert timing.barrier_sync_ns / timing.synaptic_op_ns == pytest.approx(465 / 3.5)
    fitted = dataclasses.replace(LOIHI2, energy=energy, timing=timing)
    cost = estimate_cost(map_network(net, fitted), activity)
    assert cost.dynamic_pj == pytest.approx(0.01e9) and cost.latency_ns == pytest.approx(1e6)
    assert cost.energy_pj == pytest.approx(0.01e9 + 100.0 * 1e6)  # 100 mW x 1 ms
    with pytest.raises(ValueError, match="covers 8 steps"):
        fit_costs(mapping, activity, dataclasses.replace(measured, steps=16), LOIHI1)


def test_loihi2_file_holds_the_fit_of_pilotnet(pilotnet):
    """The bundled figures are what the fit gives for today's counts (to the 4 digits written)."""
    _, net, _, activity = pilotnet
    energy, timing = fit_costs(map_network(net, LOIHI2), activity, PILOTNET_LIF_LOIHI2, LOIHI1)
    for name in ("synaptic_op_pj", "neuron_update_pj", "static_power_mw"):
        assert getattr(LOIHI2.energy, name) == pytest.approx(getattr(energy, name), rel=1e-3), name
    for name in ("synaptic_op_ns", "neuron_update_ns", "barrier_sync_ns"):
        assert getattr(LOIHI2.timing, name) == pytest.approx(getattr(timing, name), rel=1e-3), name
    assert "fitted to one measurement" in LOIHI2.energy.basis and "fitted to one measurement" in LOIHI2.timing.basis


def test_map_pilotnet_on_loihi2_reproduces_the_measurement(pilotnet, tmp_path, capsys):
    """`neurodeploy map` gives energy and latency an inference, their provenance beside them, within 10%."""
    path, _, image, activity = pilotnet
    np.save(tmp_path / "image.npy", image)
    assert cli.main(["map", path, "--target", "loihi2", "--input-bias", str(tmp_path / "image.npy")]) == 0
    out = capsys.readouterr().out
    events = float(re.search(r"synaptic events +([\d,.]+) x", out).group(1).replace(",", ""))
    assert events == pytest.approx(activity.total("synaptic_events"))  # the same operation counts
    total = re.search(r"^  total .*= +([\d.]+) mJ$", out, re.M)
    rate = re.search(r"\(([\d,.]+) inferences/s\)", out)
    assert float(total.group(1)) == pytest.approx(MEASURED_MJ, rel=0.1)
    assert float(rate.group(1).replace(",", "")) == pytest.approx(MEASURED_RATE, rel=0.1)
    assert "energy per inference (fitted to one measurement: PilotNet LIF on Loihi 2" in out
    assert "latency per inference (fitted to one measurement" in out
    assert "source: fitted to one measurement: lava-dl PilotNet LIF benchmark" in out


def test_cost_reference_loihi1_stays_an_option(pilotnet, tmp_path, capsys):
    path, _, image, _ = pilotnet
    np.save(tmp_path / "image.npy", image)
    assert (
        cli.main(
            [
                "map",
                path,
                "--target",
                "loihi2",
                "--input-bias",
                str(tmp_path / "image.npy"),
                "--cost-reference",
                "loihi1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "with loihi1's figures, on its placement (269 cores, 3 chip(s)):" in out and "x 23.6 pJ" in out

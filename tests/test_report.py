"""The report's figures from plain arrays whose right values are known; no torch."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from neurodeploy.cost import estimate_cost, measured_activity
from neurodeploy.mapping import map_network
from neurodeploy.netlist import CubaNeuron, Dense, Netlist
from neurodeploy.report import (
    LayerActivity,
    accuracy_summary,
    confusion_matrix,
    hardware_summary,
    layer_rows,
    mcnemar_exact_p,
    paired_difference_interval,
    render_markdown,
    wilson_interval,
    write_report,
)
from neurodeploy.sim import simulate
from neurodeploy.targets import load_target


def test_wilson_interval_known_values():
    # 0/10 and 10/10: the bounds are z^2 / (n + z^2) and n / (n + z^2); 5/10 is the textbook 0.2366..0.7634
    z2 = 1.959963984540054**2
    assert wilson_interval(0, 10) == pytest.approx((0.0, z2 / (10 + z2)))
    assert wilson_interval(10, 10) == pytest.approx((10 / (10 + z2), 1.0))
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)


def test_mcnemar_exact_p_known_values():
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact_p(9, 1) == pytest.approx(2 * 11 / 1024)
    assert mcnemar_exact_p(3, 3) == 1.0


def test_paired_interval_known_values():
    z = 1.959963984540054
    # no discordant pair among 450: +-z / 452 around 0
    assert paired_difference_interval(0, 0, 450) == pytest.approx((-z / 452, z / 452))
    # 7 first-only, 2 second-only among 100: centre -5/102, sd sqrt(10 - 25/102) / 102
    sd = math.sqrt(10 - 25 / 102) / 102
    assert paired_difference_interval(7, 2, 100) == pytest.approx((-5 / 102 - z * sd, -5 / 102 + z * sd))
    assert paired_difference_interval(5, 0, 5) == pytest.approx((-1.0, -5 / 7 + z * math.sqrt(6 - 25 / 7) / 7))


def test_paired_interval_is_antisymmetric_and_holds_the_estimate():
    lo, hi = paired_difference_interval(7, 2, 100)
    assert paired_difference_interval(2, 7, 100) == pytest.approx((-hi, -lo))
    assert lo < (2 - 7) / 100 < hi


def test_paired_interval_covers_the_true_difference_about_95_percent():
    rng = np.random.default_rng(0)
    probs = [0.85, 0.04, 0.02, 0.09]  # both right, first only, second only, neither: true gap -0.02
    tables = rng.multinomial(200, probs, size=2000)
    covered = 0
    for _, first, second, _ in tables:
        lo, hi = paired_difference_interval(int(first), int(second), 200)
        covered += lo <= -0.02 <= hi
    assert 0.925 <= covered / len(tables) <= 0.975


def test_confusion_matrix_counts_true_by_predicted():
    m = confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 3)
    assert m.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]


def test_accuracy_summary_of_a_pair_disagreeing_on_one_sample():
    labels = np.arange(20) % 4
    float_pred = labels.copy()
    float_pred[[3, 7]] = 0  # two float errors
    quant_pred = float_pred.copy()
    quant_pred[11] = 1  # label 3: one more error, on the quantized side only
    acc = accuracy_summary(labels, float_pred, quant_pred, classes=4)
    assert acc["agreement"] == pytest.approx(19 / 20)
    assert acc["disagreeing_samples"] == [11]
    assert acc["float"] == pytest.approx(18 / 20) and acc["quantized"] == pytest.approx(17 / 20)
    assert acc["gap"] == pytest.approx(-1 / 20)
    assert acc["pairs"] == {"both_right": 17, "float_only_right": 1, "quantized_only_right": 0, "both_wrong": 2}
    assert acc["mcnemar_exact_p"] == 1.0
    diff = np.array(acc["confusion"]["quantized"]) - np.array(acc["confusion"]["float"])
    assert sorted(diff[diff != 0].tolist()) == [-1, 1]
    assert diff[3, 3] == -1 and diff[3, 1] == 1
    lo, hi = acc["gap_interval"]
    assert lo < -1 / 20 < hi


def test_layer_activity_rates_cosine_mismatch_and_dead_neurons():
    steps, batch, neurons = 12, 3, 4
    f = np.zeros((batch, steps, neurons), bool)
    s = np.zeros_like(f)
    f[:, ::2, 0] = True  # neuron 0: float every 2nd step, integer every 3rd
    s[:, ::3, 0] = True
    f[:, :, 1] = s[:, :, 1] = True  # neuron 1: always, both
    s[0, 5, 2] = True  # neuron 2: one integer spike; neuron 3 never spikes
    act = LayerActivity(neurons)
    act.add(f[:2], s[:2])
    act.add(f[2:], s[2:])
    out = act.summary()
    n_f, n_i = batch * (6 + 12), batch * (4 + 12) + 1
    both = batch * (2 + 12)  # steps 0 and 6 of neuron 0, all of neuron 1
    assert out["rate_float"] == pytest.approx(n_f / (batch * steps * neurons))
    assert out["rate_int"] == pytest.approx(n_i / (batch * steps * neurons))
    assert out["rate_error"] == pytest.approx((n_i - n_f) / (batch * steps * neurons))
    assert out["cosine"] == pytest.approx(both / math.sqrt(n_f * n_i))
    assert out["mismatch"] == pytest.approx((n_f + n_i - 2 * both) / (batch * steps * neurons))
    assert (out["dead_float"], out["dead_int"], out["dead_both"]) == (2, 1, 1)


def test_layer_activity_of_identical_silent_layers():
    act = LayerActivity(3)
    act.add(np.zeros((2, 4, 3)), np.zeros((2, 4, 3)))
    out = act.summary()
    assert out["cosine"] == 1.0 and out["mismatch"] == 0.0 and out["dead_both"] == 3


def test_layer_activity_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        LayerActivity(3).add(np.zeros((2, 4, 3)), np.zeros((2, 5, 3)))


def test_layer_rows_merge_activity_counters_and_quantizer_facts():
    acts = [LayerActivity(2), LayerActivity(1)]
    for a in acts:
        a.add(np.ones((1, 2, a.neurons)), np.ones((1, 2, a.neurons)))
    facts = [
        {"scale": 2.0, "weight_exp": 0, "vth": 5, "weights_clipped": 3, "biases_clipped": 1, "du": 0},
        {"scale": 1.0, "weight_exp": 1, "vth": 7, "weights_clipped": 0, "biases_clipped": 0, "du": 0},
    ]
    rows = layer_rows(acts, ["a", "b"], {"u_wraps": [4, 0], "v_saturations": [0, 9]}, facts)
    assert [r["layer"] for r in rows] == [0, 1]
    assert rows[0]["weights_clipped"] == 3 and rows[0]["biases_clipped"] == 1 and rows[0]["u_wraps"] == 4
    assert rows[1]["v_saturations"] == 9 and rows[1]["vth"] == 7 and "du" not in rows[1]


def _tiny_net() -> Netlist:
    w = np.full((3, 4), 2, np.int64)
    return Netlist(
        [Dense(weight=w, neuron=CubaNeuron(vth=10, du=4095, dv=0))],
        input_shape=(4,),
        reset_interval=5,
        output_window=(1, 5),
    )


def test_hardware_summary_from_a_measured_run():
    net = _tiny_net()
    target = load_target("loihi1")
    rec = simulate(net, 5, spikes=np.ones((2, 5, 4), bool))
    mapping = map_network(net, target)
    cost = estimate_cost(mapping, measured_activity(rec))
    hw = hardware_summary(mapping, cost)
    assert hw["cores"] == 1 and hw["chips"] == 1
    use = mapping.utilization(mapping.layers[0].cores[0])
    assert hw["core_use"] == [{"layer": 0, "core": 0, "neurons_held": 3, "use": use}]
    assert hw["core_use"][0]["use"]["neurons"] == pytest.approx(3 / target.neurons_per_core)
    assert hw["energy_pj"] == pytest.approx(cost.energy_pj) and hw["energy_pj"] > 0
    assert any("synaptic events" in line for line in hw["cost_lines"])


def _report() -> dict:
    labels = np.array([0, 1, 2, 1])
    acc = accuracy_summary(labels, np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2]), classes=3)
    act = LayerActivity(3)
    act.add(np.ones((4, 5, 3)), np.ones((4, 5, 3)))
    net = _tiny_net()
    mapping = map_network(net, load_target("loihi1"))
    cost = estimate_cost(mapping, measured_activity(simulate(net, 5, spikes=np.ones((1, 5, 4), bool))))
    return {
        "source": {
            "model": "/x/m.pt",
            "rule": "tssl",
            "encoding": "direct",
            "dataset": "digits",
            "split": "test",
            "seed": 0,
            "backend": "sim",
        },
        "accuracy": acc,
        "layers": layer_rows(
            [act], ["dense 4->3"], {"u_wraps": [2], "v_saturations": [0]}, [{"weights_clipped": 5, "biases_clipped": 0}]
        ),
        "hardware": hardware_summary(mapping, cost),
        "run": {
            "steps": 4,
            "run_steps": 5,
            "reset_interval": 5,
            "reset_offset": 1,
            "output_window": [1, 5],
            "input": "binary spikes",
        },
        "reproduce": {
            "files": {"labels": "/x/labels.npy"},
            "command": "neurodeploy run /x/m.net --steps 5",
            "decoding": "argmax",
            "python": ["import numpy as np"],
        },
    }


def test_markdown_shows_every_section_and_figure():
    text = render_markdown(_report())
    for needle in (
        "## Accuracy",
        "75.00%",
        "50.00%",
        "-25.00 points",
        "Confusion matrix, float",
        "Confusion matrix, quantized",
        "## Per layer",
        "dense 4->3",
        "| 2 |",
        "## On loihi1",
        "synaptic events",
        "source:",
        "reset interval 5, reset offset 1",
        "steps 1..4",
        "neurodeploy run /x/m.net --steps 5",
        "Agresti-Min",
    ):
        assert needle in text, needle


def test_write_report_writes_json_and_markdown(tmp_path):
    report = _report()
    paths = write_report(report, tmp_path)
    loaded = json.loads(paths["json"].read_text())
    assert loaded["accuracy"]["agreement"] == pytest.approx(0.75)
    assert loaded["layers"][0]["weights_clipped"] == 5
    assert paths["markdown"].read_text() == render_markdown(report)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md"]


def test_markdown_gives_loihi2_costs_with_their_provenance():
    report = _report()
    net = _tiny_net()
    mapping = map_network(net, load_target("loihi2"))
    cost = estimate_cost(mapping, measured_activity(simulate(net, 5, spikes=np.ones((1, 5, 4), bool))))
    report["hardware"] = hardware_summary(mapping, cost)
    text = render_markdown(report)
    line = next(line for line in text.splitlines() if line.startswith("- energy per inference"))
    assert "unknown" not in line and line.count("(fitted to one measurement: PilotNet LIF on Loihi 2") == 2
    assert f"**{cost.energy_pj * 1e-3:.4g} nJ**" in line and f"**{cost.latency_ns:.4g} ns**" in line


def test_markdown_gives_the_count_of_differing_samples_then_their_indices():
    text = render_markdown(_report())
    assert "- samples where the predictions differ: **1**; their indices: 2\n" in text
    many = render_markdown(
        {**_report(), "accuracy": {**_report()["accuracy"], "disagreeing_samples": list(range(100, 137))}}
    )
    assert "differ: **37**; the first 20 of their indices: 100, 101," in many and "119" in many and "120" not in many


def test_markdown_says_how_many_samples_each_backend_ran():
    report = _report()
    assert "quantized side run in the simulator on all 4 samples." in render_markdown(report)
    report["lava"] = {
        "backend": "Lava fixed_pt CPU models",
        "samples": 3,
        "spike_match": 1.0,
        "prediction_match": 3,
        "accuracy": 1.0,
        "sim_accuracy": 1.0,
    }
    assert "in the simulator on all 4 samples, and in Lava on 3 of them" in render_markdown(report)


def test_accuracy_plot_range_zooms_to_the_intervals_within_0_to_100():
    from neurodeploy.plots import accuracy_range

    bottom, top = accuracy_range([(92.2, 89.4, 94.4), (92.7, 89.9, 94.7), (99.3, 98.1, 99.8)])
    assert 85 < bottom < 89.4 and 99.8 < top <= 100
    assert accuracy_range([(1.0, 0.0, 3.0), (2.0, 0.5, 4.0)])[0] == 0.0

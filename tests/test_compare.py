"""compare: the tally of both sides and the report built from it, on netlists whose behaviour is known.

The fixtures are hand-made integer networks: bias-driven input neurons that
fire every k-th step, an output layer that copies its inputs one step later,
dead neurons by construction, and a synapse that wraps u a known number of
times. The float side is given as arrays (the integer spikes, altered where a
test wants a disagreement), so no torch model is needed here.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from neurodeploy.cli import main
from neurodeploy.compare import (
    CompareError,
    Tally,
    aligned_spikes,
    build_report,
    compare_and_report,
    decode_predictions,
    integer_inputs,
    load_test_samples,
    simulate_inputs,
)
from neurodeploy.netlist import CubaNeuron, Dense, Input, Netlist
from neurodeploy.quantize import LayerQuant, Quantized
from neurodeploy.targets import load_target

T = 12  # float steps; the run takes T + 1 (one synaptic layer)
RATES = {1: 1 / 6, 2: 1 / 3, 3: 1 / 2, 6: 1.0}  # input bias -> spikes a step at vth 5 (fires when n * b > 5)


def _facts(k: int, kind: str, vth: int, clipped: int = 0) -> LayerQuant:
    return LayerQuant(k, kind, 1.0, 0, 8, vth, 0, 0, clipped, 0, 1.0, 100.0)


def copy_net() -> Quantized:
    """6 bias-driven input neurons -> 4 outputs; output c copies input c (c < 3), output 3 has no synapse."""
    weight = np.zeros((4, 6), np.int64)
    weight[[0, 1, 2], [0, 1, 2]] = 10
    net = Netlist(
        [
            Input(shape=(6,), neuron=CubaNeuron(vth=5, du=0, dv=0, bias_exp=6), bias=np.zeros(6, np.int64)),
            Dense(weight=weight, neuron=CubaNeuron(vth=5, du=4095, dv=4096)),
        ],
        reset_interval=T + 1,
        reset_offset=0,
        output_window=(1, T + 1),
    )
    return Quantized(
        net,
        [_facts(0, "dense", 5), _facts(1, "dense", 5, clipped=3)],
        T,
        {"kind": "dense", "weight": np.eye(6), "bias": np.zeros(6), "clip": (-4096, 4095)},
    )


def copy_inputs() -> tuple[np.ndarray, np.ndarray]:
    """Input biases for 6 samples (a permutation of 1, 2, 3, 6 on inputs 0..3; inputs 4, 5 off) and labels."""
    rows = [p for p in itertools.permutations((1, 2, 3, 6)) if p.index(6) < 3][:6]
    bias = np.array([[*p, 0, 0] for p in rows], np.int64)
    return bias, bias[:, :4].argmax(axis=1)


def test_bias_driven_inputs_fire_at_their_known_rates():
    q = copy_net()
    bias, _ = copy_inputs()
    rec = simulate_inputs(q.netlist, T + 1, bias, "bias")
    layer0, layer1 = aligned_spikes(rec.s, q.netlist, T)
    assert layer0.shape == (6, T, 6) and layer1.shape == (6, T, 4)
    for sample, row in enumerate(bias):
        for n, b in enumerate(row):
            assert layer0[sample, :, n].mean() == pytest.approx(RATES.get(int(b), 0.0))
    # output c repeats input c one chip step later: aligned, the two are equal
    assert np.array_equal(layer1[:, :, :3], layer0[:, :, :3])
    assert not layer1[:, :, 3].any()


def test_decode_predictions_counts_the_window_and_breaks_ties_low():
    spikes = np.zeros((2, 5, 3), bool)
    spikes[0, 0, 2] = True  # outside the window (1, 5): ignored
    spikes[0, 1:3, 1] = True
    spikes[1, 1, [0, 2]] = True  # a tie: class 0
    assert decode_predictions(spikes, (1, 5)).tolist() == [1, 0]


def _tally(q: Quantized, bias: np.ndarray, flip: int | None = None) -> Tally:
    """Both sides: the float side is the integer network itself, except that sample ``flip`` predicts class 3."""
    rec = simulate_inputs(q.netlist, T + 1, bias, "bias")
    layers = [a.copy() for a in aligned_spikes(rec.s, q.netlist, T)]
    if flip is not None:
        layers[-1][flip, :, :] = False
        layers[-1][flip, :, 3] = True
    tally = Tally(q.netlist, T, T + 1)
    tally.add(layers[-1][:3], [a[:3] for a in layers], simulate_inputs(q.netlist, T + 1, bias[:3], "bias"), bias[:3])
    tally.add(layers[-1][3:], [a[3:] for a in layers], simulate_inputs(q.netlist, T + 1, bias[3:], "bias"), bias[3:])
    return tally


def _report(q: Quantized, tally: Tally, labels: np.ndarray, tmp_path) -> dict:
    files = {"netx": tmp_path / "m.net", "inputs": tmp_path / "inputs.npy", "labels": tmp_path / "labels.npy"}
    return build_report(q, load_target("loihi1"), tally.comparison(labels, "bias"), {"model": "m"}, files)


def test_report_of_a_pair_that_disagrees_on_one_sample(tmp_path):
    q = copy_net()
    bias, labels = copy_inputs()
    report = _report(q, _tally(q, bias, flip=4), labels, tmp_path)
    acc = report["accuracy"]
    assert acc["quantized"] == 1.0 and acc["float"] == pytest.approx(5 / 6)
    assert acc["agreement"] == pytest.approx(5 / 6) and acc["disagreeing_samples"] == [4]
    diff = np.array(acc["confusion"]["quantized"]) - np.array(acc["confusion"]["float"])
    assert np.count_nonzero(diff) == 2
    assert diff[labels[4], labels[4]] == 1 and diff[labels[4], 3] == -1


def test_report_layers_rates_dead_neurons_and_quantizer_facts(tmp_path):
    q = copy_net()
    bias, labels = copy_inputs()
    report = _report(q, _tally(q, bias), labels, tmp_path)
    first, out = report["layers"]
    assert first["rate_float"] == first["rate_int"] == pytest.approx(24 / (6 * T))  # 2 + 4 + 6 + 12 spikes / sample
    assert first["cosine"] == 1.0 and first["mismatch"] == 0.0
    assert (first["dead_float"], first["dead_int"], first["dead_both"]) == (2, 2, 2)  # inputs 4 and 5
    assert (out["dead_float"], out["dead_int"], out["dead_both"]) == (1, 1, 1)  # output 3 has no synapse
    assert out["weights_clipped"] == 3 and out["u_wraps"] == 0 and out["v_saturations"] == 0
    assert report["accuracy"]["agreement"] == 1.0
    hw = report["hardware"]
    assert hw["cores"] == 2 and hw["chips"] == 1 and hw["energy_pj"] > 0
    run = report["run"]
    assert (run["steps"], run["run_steps"], run["reset_interval"], run["reset_offset"]) == (T, T + 1, T + 1, 0)
    assert run["output_window"] == [1, T + 1]
    assert report["reproduce"]["argv"][:4] == ["run", str(tmp_path / "m.net"), "--steps", str(T + 1)]
    assert "--input-bias" in report["reproduce"]["argv"]


def wrap_net() -> Netlist:
    """1 input neuron spiking every step -> 1 neuron whose u grows 255 << 7 << 6 an arrival and never decays.

    u after n arrivals is n * 2,088,960 (wrapped to 24 bits): it wraps on the 5th
    arrival only, within 12 arrivals; v = u stays below the threshold, so no spike.
    """
    return Netlist(
        [
            Input(shape=(1,), neuron=CubaNeuron(vth=5, du=0, dv=0, bias_exp=6), bias=np.array([6])),
            Dense(weight=np.array([[255]]), weight_exp=7, neuron=CubaNeuron(vth=131071, du=-1, dv=4096)),
        ],
        reset_interval=T + 1,
        output_window=(1, T + 1),
    )


def test_tally_counts_known_u_wraps():
    net = wrap_net()
    rec = simulate_inputs(net, T + 1, np.full((3, 1), 6), "bias")
    tally = Tally(net, T, T + 1)
    layers = aligned_spikes(rec.s, net, T)
    tally.add(layers[-1], layers, rec, np.full((3, 1), 6))
    comparison = tally.comparison(np.zeros(3, np.int64), "bias")
    assert comparison.counters == {"u_wraps": [0, 3], "v_saturations": [0, 0]}
    assert comparison.activities[1].summary()["dead_int"] == 1
    assert comparison.recording.batch == 3


def test_integer_inputs_pad_spikes_to_the_run():
    q = Quantized(
        Netlist(
            [Dense(weight=np.ones((2, 3), np.int64), neuron=CubaNeuron(vth=1, du=0, dv=0))],
            input_shape=(3,),
            reset_interval=5,
            reset_offset=1,
            output_window=(1, 5),
        ),
        [],
        4,
    )
    spikes = np.ones((2, 4, 3), bool)
    padded, kind = integer_inputs(q, spikes)
    assert kind == "spikes" and padded.shape == (2, 5, 3)
    assert padded[:, :4].all() and not padded[:, 4].any()


def test_load_test_samples_refuses_no_samples():
    with pytest.raises(CompareError, match="--samples = 0"):
        load_test_samples("digits", None, 0)


# --------------------------------------------------------------------------- the CLI round trip


@pytest.fixture(scope="module", params=["direct", "rate"])
def checkpoint(request, tmp_path_factory):
    """A tiny digits model trained for one epoch on 128 samples, one per encoding."""
    torch = pytest.importorskip("torch")

    from neurodeploy.train import TrainConfig, train

    cfg = TrainConfig(
        rule="tssl",
        arch="64-32-10",
        dataset="digits",
        steps=5,
        epochs=1,
        limit=128,
        encoding=request.param,
        progress=False,
    )
    path = tmp_path_factory.mktemp(request.param) / "tiny.pt"
    torch.save(train(cfg, log=lambda _: None).checkpoint, path)
    return path


def test_compare_then_run_gives_the_same_quantized_accuracy(checkpoint, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert (
        main(
            [
                "compare",
                str(checkpoint),
                "--target",
                "loihi2",
                "--samples",
                "60",
                "--calibrate",
                "32",
                "--no-progress",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert "quantized accuracy" in capsys.readouterr().out
    argv = report["reproduce"]["argv"]
    assert ("--input" in argv) == (report["source"]["encoding"] == "rate")
    assert report["run"]["conventions"] == "loihi2" and argv[argv.index("--conventions") + 1] == "loihi2"
    assert main(argv) == 0
    start, stop = report["run"]["output_window"]
    spikes = np.load(out / "out.npz")[report["reproduce"]["output_key"]]
    pred = decode_predictions(spikes, (start, stop))
    labels = np.load(out / "labels.npy")
    assert float(np.mean(pred == labels)) == report["accuracy"]["quantized"]
    for name in report["plots"].values():
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_with_lava_matches_the_simulator(checkpoint, tmp_path, lava_exe):
    out = tmp_path / "lava"
    assert (
        main(
            [
                "compare",
                str(checkpoint),
                "--samples",
                "6",
                "--calibrate",
                "16",
                "--backend",
                "lava",
                "--lava-samples",
                "3",
                "--no-plots",
                "--no-progress",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    lava = json.loads((out / "report.json").read_text())["lava"]
    assert lava["samples"] == 3 and lava["spike_match"] == 1.0 and lava["prediction_match"] == 3


def test_compare_refuses_a_dataset_of_another_shape(checkpoint, tmp_path):
    from neurodeploy.export import load_float_model, quantize_model

    x, y = load_test_samples("digits", None, 4)
    fm, target = load_float_model(checkpoint), load_target("loihi2")
    q = quantize_model(fm, target, calibrate=0)
    with pytest.raises(CompareError, match=r"takes samples shaped \(1, 8, 8\), dataset digits has \(1, 8, 4\)"):
        compare_and_report(checkpoint, fm, q, target, x[..., :4], y, tmp_path, "digits", plots=False, progress=False)


def test_report_names_the_host_layer_and_the_raster_sample(checkpoint, tmp_path):
    out = tmp_path / "cmp"
    assert (
        main(["compare", str(checkpoint), "--samples", "20", "--calibrate", "16", "--no-progress", "-o", str(out)]) == 0
    )
    report = json.loads((out / "report.json").read_text())
    text = (out / "report.md").read_text()
    host = report["host_layer"]
    if report["source"]["encoding"] == "direct":
        assert host["description"] == "dense 64->32, synapses on the host" and host["host_multiply_adds"] == 64 * 32
        assert (
            report["layers"][0]["description"] == report["hardware"]["layers"][0]["description"] == host["description"]
        )
        assert "input 32" not in text and "not on the chip, and not in the energy or latency figures" in text
    else:
        assert host is None and "synapses on the host" not in text
    sample = report["raster_sample"]
    labels = np.load(out / "labels.npy")
    assert sample["index"] == 0 and sample["label"] == labels[0]
    spikes_run = main(report["reproduce"]["argv"]) == 0 and np.load(out / "out.npz")[report["reproduce"]["output_key"]]
    assert sample["quantized"] == decode_predictions(spikes_run, tuple(report["run"]["output_window"]))[0]


def test_compare_refuses_to_overwrite_a_report_without_force(checkpoint, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = [
        "compare",
        str(checkpoint),
        "--samples",
        "4",
        "--calibrate",
        "0",
        "--no-progress",
        "--no-plots",
        "-o",
        str(out),
    ]
    assert main(args) == 0
    before = (out / "report.md").read_text()
    (out / "report.md").write_text("kept")
    capsys.readouterr()
    assert main(args) == 2
    assert "report.md" in capsys.readouterr().err and (out / "report.md").read_text() == "kept"
    assert main([*args, "--force"]) == 0 and (out / "report.md").read_text() == before

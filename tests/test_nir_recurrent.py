"""Recurrent NIR graphs (a CubaLIF fed by an Affine and by an Affine of its own output) onto dense_rec."""

from __future__ import annotations

import nir
import numpy as np
import pytest
from neurodeploy import budget
from neurodeploy.cli import main
from neurodeploy.errors import InputFileError
from neurodeploy.export import export_model, quantize_model
from neurodeploy.exporters.netx import read_netx
from neurodeploy.exporters.nir import NirExportError, write_nir
from neurodeploy.float_model import float_model_from_nir
from neurodeploy.fold import fold
from neurodeploy.netlist import Dense, RecurrentDense
from neurodeploy.nir_import import float_graph_from_nir, nir_to_float_graph
from neurodeploy.quantize import run_quantized
from neurodeploy.targets import load_target

from snntorch_nir import agreement, chip_spikes

DT = 1e-4  # snnTorch's fixed time step for NIR graphs
HIDDEN, OUT = 38, 7


def _cuba(n: int, tau_syn: float, tau_mem: float) -> nir.CubaLIF:
    """snnTorch's parametrisation: an input x adds x to the current, the current adds itself to v."""
    return nir.CubaLIF(
        tau_syn=np.full(n, tau_syn),
        tau_mem=np.full(n, tau_mem),
        r=np.full(n, tau_mem / DT),
        v_leak=np.zeros(n),
        v_threshold=np.ones(n),
        v_reset=np.zeros(n),
        w_in=np.full(n, tau_syn / DT),
    )


def braille_like(seed: int = 0, bias: float = 0.05) -> nir.NIRGraph:
    """12 inputs -> Affine -> recurrent CubaLIF (38) -> Affine -> CubaLIF (7), named as the NIR paper's Braille RNN."""
    rng = np.random.default_rng(seed)

    def affine(scale: float, shape: tuple[int, int]) -> nir.Affine:
        weight = rng.normal(0, scale, shape).astype(np.float32)
        return nir.Affine(weight=weight, bias=rng.normal(0, bias, shape[0]).astype(np.float32))

    nodes = {
        "input": nir.Input(input_type={"input": np.array([12])}),
        "fc1": affine(1.0, (HIDDEN, 12)),
        "lif1.lif": _cuba(HIDDEN, 2.2222e-4, 1e-3),
        "lif1.w_rec": affine(0.2, (HIDDEN, HIDDEN)),
        "fc2": affine(0.8, (OUT, HIDDEN)),
        "lif2": _cuba(OUT, 2e-4, 2.2222e-4),
        "output": nir.Output(output_type={"output": np.array([OUT])}),
    }
    edges = [
        ("input", "fc1"),
        ("fc1", "lif1.lif"),
        ("lif1.lif", "lif1.w_rec"),
        ("lif1.w_rec", "lif1.lif"),
        ("lif1.lif", "fc2"),
        ("fc2", "lif2"),
        ("lif2", "output"),
    ]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _equations(graph: nir.NIRGraph, x: np.ndarray) -> list[np.ndarray]:
    """The graph's forward-Euler equations with the chip's conventions: v reset to zero in the step it
    spikes, the recurrent input the layer's spikes of the step before, biases into the current."""
    n = graph.nodes
    layers = [
        (n["fc1"].weight, n["fc1"].bias + n["lif1.w_rec"].bias, n["lif1.w_rec"].weight, n["lif1.lif"]),
        (n["fc2"].weight, n["fc2"].bias, None, n["lif2"]),
    ]
    spikes = x.astype(np.float64)
    out = []
    for weight, bias, rec, node in layers:
        alpha, beta = 1 - DT / node.tau_syn[0], 1 - DT / node.tau_mem[0]
        i = v = s = np.zeros((x.shape[0], weight.shape[0]))
        record = []
        for t in range(x.shape[1]):
            i = alpha * i + spikes[:, t] @ weight.T + bias + (0 if rec is None else s @ rec.T)
            v = beta * v + i
            s = (v > 1.0).astype(np.float64)
            v = v * (1 - s)
            record.append(s)
        spikes = np.stack(record, axis=1)
        out.append(spikes > 0)
    return out


def test_the_walk_finds_the_loop_and_the_chain():
    ops = nir_to_float_graph(braille_like(), dt=DT)
    assert [(op["op"], op["name"]) for op in ops] == [
        ("input", "input"),
        ("dense", "fc1"),
        ("neuron", "lif1.lif"),
        ("dense", "fc2"),
        ("neuron", "lif2"),
    ]
    assert ops[2]["recurrent"]["name"] == "lif1.w_rec" and ops[2]["recurrent"]["weight"].shape == (HIDDEN, HIDDEN)
    assert ops[4]["recurrent"] is None


def test_recurrent_graph_exports_to_loihi2_as_dense_rec(tmp_path, capsys):
    graph = braille_like()
    nir.write(tmp_path / "rnn.nir", graph)
    result = export_model(tmp_path / "rnn.nir", load_target("loihi2"), tmp_path / "out", steps=50, dt=DT, copies=1)
    net = read_netx(result.files["netx"])
    first, second = net.layers
    assert isinstance(first, RecurrentDense) and type(second) is Dense
    # one more neuron, always on: its synapses carry the biases into the currents
    assert first.weight.shape == (HIDDEN + 1, 12) and first.weight_rec.shape == (HIDDEN + 1, HIDDEN + 1)
    assert second.weight.shape == (OUT, HIDDEN + 1)
    assert not first.weight[-1].any() and not first.weight_rec[-1].any() and first.bias[-1] > first.neuron.vth
    bias = graph.nodes["fc1"].bias + graph.nodes["lif1.w_rec"].bias
    unit = first.weight_rec[:-1, -1] * 2.0**first.weight_exp / first.neuron.vth  # in thresholds
    np.testing.assert_allclose(unit, bias, atol=2 / first.neuron.vth)
    # what the columns' rounding loses, each neuron's own bias adds: the drive of v once the current
    # has settled equals the float bias's within half a bias step (and the threshold's own rounding)
    for layer, column, float_bias, tau_syn in (
        (first, first.weight_rec[:-1, -1], bias, 2.2222e-4),
        (second, second.weight[:, -1], graph.nodes["fc2"].bias, 2e-4),
    ):
        held = column * 2.0 ** (layer.weight_exp + 6) * 4096 / (layer.neuron.du + 1)
        own = layer.bias[: len(column)] * 2.0**layer.neuron.bias_exp
        vth = layer.neuron.vth * 64
        settled = float_bias * tau_syn / DT
        assert np.abs(held / vth - settled).max() > 1 / layer.neuron.vth  # the columns alone are coarser
        assert np.all(np.abs((held + own) / vth - settled) <= 0.5 / layer.neuron.vth * (1 + np.abs(settled)) + 1e-9)
    # one scale for both matrices: the largest weight fills the 8-bit grid (steps of 2), the other follows
    w, v = (np.abs(graph.nodes[k].weight).max() for k in ("fc1", "lif1.w_rec"))
    assert w > v and np.abs(first.weight).max() == 254
    assert np.abs(first.weight_rec[:-1, :-1]).max() == pytest.approx(254 * v / w, abs=1)
    command = ["export", str(tmp_path / "rnn.nir"), "--steps", "50", "--dt", str(DT), "-o", str(tmp_path / "cli")]
    assert main([*command, "--copies", "2"]) == 0
    assert "dense_rec" in capsys.readouterr().out.split("copies 2")[0].splitlines()[-1]
    first, second = read_netx(tmp_path / "cli" / "rnn.net").layers
    assert first.weight_rec.shape == (2 * (HIDDEN + 1),) * 2 and second.weight.shape == (OUT, 2 * (HIDDEN + 1))


def _copies(q, k: int) -> tuple[RecurrentDense, Dense]:
    """The two layers of a Braille-like network held in ``k`` copies, checked to be copies."""
    first, second = q.netlist.layers
    n = HIDDEN + 1
    assert first.weight.shape == (k * n, 12) and first.weight_rec.shape == (k * n, k * n)
    assert second.weight.shape == (OUT, k * n) and q.layers[0].copies == k
    for rows in (first.weight, first.weight_rec, first.bias):
        blocks = rows.reshape(k, n, -1)
        assert np.array_equal(blocks, np.broadcast_to(blocks[:1], blocks.shape))
    return first, second


def test_copies_of_a_recurrent_layer_hold_the_next_weights_finer(tmp_path):
    """Held in 4 copies (the default), the weights that read the recurrent layer are split across the
    copies' synapses, each on the 8-bit grid: the next layer's weights are held 4 times as finely."""
    graph = braille_like()
    nir.write(tmp_path / "rnn.nir", graph)
    target = load_target("loihi2")
    once, four = (
        quantize_model(float_model_from_nir(tmp_path / "rnn.nir", dt=DT, steps=50, copies=k), target, calibrate=0)
        for k in (1, None)
    )
    _copies(once, 1)
    first, second = _copies(four, 4)
    parts = second.weight.reshape(OUT, 4, HIDDEN + 1)
    assert np.all(parts % 2 == 0) and parts.min() >= -256 and parts.max() <= 254  # each on the mixed 8-bit grid
    assert np.all(parts.max(axis=1) - parts.min(axis=1) <= 2) and np.abs(parts).max() == 254
    recurrent = first.weight_rec[: HIDDEN + 1].reshape(HIDDEN + 1, 4, HIDDEN + 1)
    assert np.all(recurrent.max(axis=1) - recurrent.min(axis=1) <= 2)
    want = fold(float_model_from_nir(tmp_path / "rnn.nir", dt=DT, steps=50).graph)[1].weight
    errors = []
    for q, held in ((once, once.netlist.layers[1].weight), (four, parts.sum(axis=1))):
        unit = 64 * 2.0 ** q.layers[1].weight_exp / q.layers[1].scale  # a mantissa step, in the float weights' units
        assert np.abs(held * unit - want).max() <= unit + 1e-12  # within a step of 2 (mixed sign)
        errors.append(np.abs(held * unit - want).max())
    assert errors[1] < errors[0] / 3
    x = np.random.default_rng(5).random((8, 50, 12)) < 0.5
    spikes = chip_spikes(four, x)[0].reshape(8, 50, 4, HIDDEN + 1)
    assert spikes[..., :HIDDEN].mean() > 0.05
    assert all(np.array_equal(spikes[:, :, c], spikes[:, :, 0]) for c in range(4))


def test_copied_recurrent_export_runs_in_lava_as_in_the_simulator(tmp_path, lava_exe):
    from neurodeploy.backends.lava import run_netx_in_lava

    nir.write(tmp_path / "rnn.nir", braille_like())
    result = export_model(tmp_path / "rnn.nir", load_target("loihi2"), tmp_path / "out", steps=20, dt=DT)
    q, net = result.quantized, read_netx(result.files["netx"])
    steps = net.output_window[1]
    spikes = np.zeros((2, steps, 12), bool)
    spikes[:, :20] = np.random.default_rng(6).random((2, 20, 12)) < 0.5
    conventions = dict(reset_interval=net.reset_interval, reset_offset=net.reset_offset, record=("s", "v"))
    lava = run_netx_in_lava(result.files["netx"], steps, spikes=spikes, **conventions)
    ours = run_quantized(q, spikes[:, :20], record=("s", "v"))
    assert ours.s[0].shape[-1] == 4 * (HIDDEN + 1) and ours.s[0].mean() > 0.05 and ours.s[1].any()
    last = max(lava.s)
    for theirs, i in ((last - 1, 0), (last, 1)):
        np.testing.assert_array_equal(lava.s[theirs], ours.s[i])
        np.testing.assert_array_equal(lava.v[theirs], ours.v[i])


def test_integer_network_runs_the_recurrent_equations(tmp_path):
    graph = braille_like()
    nir.write(tmp_path / "rnn.nir", graph)
    steps = 50
    q = quantize_model(
        float_model_from_nir(tmp_path / "rnn.nir", dt=DT, steps=steps), load_target("loihi2"), calibrate=0
    )
    x = np.random.default_rng(3).random((32, steps, 12)) < 0.5
    ours, expected = chip_spikes(q, x), _equations(graph, x)
    assert ours[0][..., -1].all()  # the always-on neuron
    for got, want in zip(ours, expected):
        assert 0.05 < want.mean() < 0.8
        assert np.mean(got[..., : want.shape[-1]] == want) >= 0.95
    # without its recurrent synapses the hidden layer fires differently: the loop is carried
    graph.nodes["lif1.w_rec"].weight = np.zeros((HIDDEN, HIDDEN), np.float32)
    assert np.mean(_equations(graph, x)[0] != expected[0]) > 0.05


def test_recurrent_graph_agrees_with_snntorch(tmp_path):
    pytest.importorskip("snntorch")
    nir.write(tmp_path / "rnn.nir", braille_like())
    rows = agreement(tmp_path / "rnn.nir", steps=50, dt=DT, rate=0.5, batch=32, reset_now=True)
    for row in rows:
        assert 0.05 < row["snntorch_rate"] < 0.8
        assert row["agree"] >= 0.95, rows


def test_snntorch_recurrent_neurons_reset_a_step_late():
    """The convention docs/nir.md names: snnTorch's RSynaptic zeroes v the step after a spike, so it never
    fires two steps in a row, where the chip (and snnTorch's Synaptic) may."""
    pytest.importorskip("snntorch")
    from snntorch_nir import snntorch_spikes

    graph = braille_like()
    x = (np.random.default_rng(4).random((16, 50, 12)) < 0.5).astype(np.float32)
    late, now = (snntorch_spikes(graph, x, reset_now=flag) for flag in (False, True))
    assert late[0].mean() > 0.05 and not np.any(late[0][:, 1:] & late[0][:, :-1])
    assert np.any(now[0][:, 1:] & now[0][:, :-1]) and np.any(late[1][:, 1:] & late[1][:, :-1])


def test_loops_the_chip_cannot_hold_are_refused_by_name():
    graph = braille_like()
    graph.nodes["lif1.w_rec"] = nir.Linear(weight=np.ones((HIDDEN, 5), np.float32))
    with pytest.raises(InputFileError, match=r"node 'lif1\.lif': its recurrent synapses 'lif1\.w_rec' have shape"):
        float_graph_from_nir(nir_to_float_graph(graph, dt=DT), DT, "rnn.nir")
    graph = braille_like()
    graph.edges.append(("lif1.w_rec", "fc2"))  # the recurrent synapse feeds another node: no loop of its own
    with pytest.raises(InputFileError, match="only chains are supported"):
        nir_to_float_graph(graph, dt=DT)


def test_nir_export_of_a_recurrent_netlist_is_refused(tmp_path):
    nir.write(tmp_path / "rnn.nir", braille_like())
    q = quantize_model(float_model_from_nir(tmp_path / "rnn.nir", dt=DT, steps=8), load_target("loihi2"), calibrate=0)
    with pytest.raises(NirExportError, match=r"layer 0 \(dense_rec\)"):
        write_nir(q.netlist, tmp_path / "back.nir")
    assert not (tmp_path / "back.nir").exists()


def test_percentile_calibration_needs_no_samples(tmp_path):
    """A NIR graph comes without training data; ``--calibration percentile`` still clips the weight range."""
    nir.write(tmp_path / "rnn.nir", braille_like())
    fm = float_model_from_nir(tmp_path / "rnn.nir", dt=DT, steps=50)
    plain, clipped = (quantize_model(fm, load_target("loihi2"), calibrate=0, method=m) for m in ("max", "percentile"))
    assert [f.percentile for f in clipped.layers] == [99.9, 99.9]
    assert all(f.weights_clipped > 0 for f in clipped.layers) and not any(f.weights_clipped for f in plain.layers)
    assert clipped.calibration["samples"] == 0


def test_default_copies_halve_until_the_target_holds_them(tmp_path):
    from neurodeploy.drc import DesignRuleError

    nir.write(tmp_path / "rnn.nir", braille_like())
    small = tmp_path / "small.toml"  # 100 input axons a core: 12 + 4 x 39 inputs do not fit, 12 + 2 x 39 do
    small.write_text('name = "small"\n[system]\ncores_per_chip = 128\n[core]\nneurons = 8192\ninput_axons = 100\n')
    result = export_model(tmp_path / "rnn.nir", load_target(small), tmp_path / "out", steps=20, dt=DT)
    assert [fact.copies for fact in result.quantized.layers] == [2, 1]
    with pytest.raises(DesignRuleError) as err:
        export_model(tmp_path / "rnn.nir", load_target(small), tmp_path / "four", steps=20, dt=DT, copies=4)
    assert "layer 0 (dense_rec 12->156): fan-in 14" in str(err.value)  # 12 inputs: its own synapses count
    assert "layer 1 (dense 156->7): fan-in 156 exceeds 100" in str(err.value)
    assert not list((tmp_path / "four").glob("*"))


def test_copies_stay_within_the_memory_budget(tmp_path, monkeypatch, capsys):
    """4 copies of 39 neurons need 32 bytes x 156 x (156 + 12 + 7) of matrices: 873,600 bytes."""
    nir.write(tmp_path / "rnn.nir", braille_like())
    monkeypatch.setenv(budget.ENV, "600K")
    fm = float_model_from_nir(tmp_path / "rnn.nir", dt=DT, steps=20)
    assert fold(fm.graph)[0].copies == 2  # the default, halved to fit
    with pytest.raises(budget.BudgetError, match=r"node 'lif1\.lif': 4 copies of its 38 neurons .* 853\.1 KiB"):
        float_model_from_nir(tmp_path / "rnn.nir", dt=DT, steps=20, copies=4)
    command = ["export", str(tmp_path / "rnn.nir"), "--steps", "20", "--dt", str(DT), "-o", str(tmp_path / "out")]
    assert main([*command, "--copies", "4"]) == 2
    assert "raise it with --max-bytes" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert main(["--max-bytes", "1M", *command, "--copies", "4"]) == 0

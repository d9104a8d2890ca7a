"""The random-netlist generator (fast, no Lava) and the conformance run against Lava."""

from __future__ import annotations

import numpy as np
import pytest
from neurodeploy import fixed_point as fx
from neurodeploy import sim as sim_module
from neurodeploy.backends.lava import check_lava_limits
from neurodeploy.conformance import compare, describe, generate_cases, run_conformance
from neurodeploy.counters import STEPPED
from neurodeploy.netlist import Conv, CubaNeuron, Dense, Input, Netlist
from neurodeploy.sim import simulate

LAVA_CASES = 200


@pytest.fixture(scope="module")
def cases():
    return generate_cases(150, seed=3)


def _layers(cases, kind):
    return [layer for case in cases for layer in case.net.layers if isinstance(layer, kind)]


def test_same_seed_same_cases():
    a, b = generate_cases(5, seed=11), generate_cases(5, seed=11)
    for x, y in zip(a, b):
        assert x.steps == y.steps and x.net.reset_interval == y.net.reset_interval
        assert np.array_equal(x.spikes, y.spikes)
        for lx, ly in zip(x.net.layers, y.net.layers):
            assert lx.kind == ly.kind
            if hasattr(lx, "weight"):
                assert np.array_equal(lx.weight, ly.weight)
    assert [describe(c.net) for c in a] != [describe(c.net) for c in generate_cases(5, seed=12)]


def test_cases_reach_every_rule(cases):
    dense, conv = _layers(cases, Dense), _layers(cases, Conv)
    assert {fx.sign_mode(layer.weight) for layer in dense} == {"exc", "inh", "mixed"}
    assert {fx.sign_mode(layer.weight) for layer in conv} >= {"exc", "mixed"}
    assert min(layer.weight_exp for layer in dense) <= -8 and max(layer.weight_exp for layer in dense) >= 8
    assert any(np.abs(layer.weight).max() > 255 for layer in dense)  # Lava clips these
    assert {layer.weight_bits for layer in dense} == set(range(1, 10))
    assert any(layer.delay is not None and layer.delay.max() > 8 for layer in dense)
    assert any(layer.weight_exp > 0 for layer in conv)
    assert any(max(layer.stride) > 1 for layer in conv) and any(layer.groups > 1 for layer in conv)
    neurons = [layer.neuron for case in cases for layer in case.net.layers if hasattr(layer, "neuron")]
    assert {-1, 0, 4095} <= {n.du for n in neurons} and {0, 4096} <= {n.dv for n in neurons}
    assert min(n.bias_exp for n in neurons) < -8 and max(n.bias_exp for n in neurons) > 8
    assert any(case.net.reset_interval for case in cases) and any(not case.net.reset_interval for case in cases)
    assert any(isinstance(case.net.layers[0], Input) for case in cases)
    assert any(case.batch() > 1 for case in cases)
    assert max(len(case.net.neuron_layers) for case in cases) >= 4


def test_cases_wrap_u_and_saturate_v(cases):
    wraps = saturations = 0
    for case in cases:
        rec = simulate(case.net, case.steps, spikes=case.spikes, record=())
        wraps += sum(rec.u_wraps.values())
        saturations += sum(rec.v_saturations.values())
    assert wraps > 0 and saturations > 0


def test_cases_stay_within_lavas_ranges(cases):
    for k, case in enumerate(cases):
        check_lava_limits(case, f"case {k}")
        biases = [layer.bias for layer in case.net.layers if getattr(layer, "bias", None) is not None]
        assert all(int(np.abs(bias).max(initial=0)) < 2**15 for bias in biases)


def test_float_path_equals_the_int64_rules(cases, monkeypatch):
    float_runs = [simulate(c.net, c.steps, spikes=c.spikes, record=c.record) for c in cases[:60]]
    monkeypatch.setattr(sim_module._Neurons, "FLOAT_INPUT_LIMIT", 0)
    for k, (case, fast) in enumerate(zip(cases, float_runs)):
        exact = simulate(case.net, case.steps, spikes=case.spikes, record=case.record)
        assert compare(k, case, fast, exact).mismatching == 0
        for counter in STEPPED:
            assert getattr(fast, counter) == getattr(exact, counter)


def test_float_path_takes_huge_graded_sums_exactly(monkeypatch):
    """A sum past 2**53 (summed in int64) that the weight exponent brings back down stays exact.

    255 * spike is 2**16 * k - 1 between 2**55 and 2**56, where float64 would round it
    up to 2**16 * k and the floor of its shift by -16 would come out one too high.
    """
    spike = 141289400107265
    assert 2**55 <= 255 * spike < 2**56 and (255 * spike) % 2**16 == 2**16 - 1
    net = Netlist(
        [Dense(weight=np.array([[255]]), neuron=CubaNeuron(vth=0, du=4095, dv=4096), weight_exp=-16)], input_shape=(1,)
    )
    spikes = np.full((1, 3, 1), spike)
    fast = simulate(net, 3, spikes=spikes, record=("u",))
    monkeypatch.setattr(sim_module._Neurons, "FLOAT_INPUT_LIMIT", 0)
    exact = simulate(net, 3, spikes=spikes, record=("u",))
    assert exact.u[0][0, 1, 0] != 0
    np.testing.assert_array_equal(fast.u[0], exact.u[0])


def test_compare_counts_and_locates_mismatches(cases):
    case = cases[0]
    sim = simulate(case.net, case.steps, spikes=case.spikes, record=case.record)
    ref = simulate(case.net, case.steps, spikes=case.spikes, record=case.record)
    assert compare(0, case, sim, ref).mismatching == 0
    layer = case.net.neuron_layers[-1]
    ref.v[layer][0, 2].flat[0] += 5
    ref.s[layer][0, 1].flat[0] ^= True
    result = compare(0, case, sim, ref)
    assert result.mismatching == 2
    assert [(m.var, m.step, m.layer) for m in result.first] == [("s", 1, layer), ("v", 2, layer)]
    assert result.first[1].lava - result.first[1].sim == 5


def test_run_conformance_with_a_stand_in_reference():
    def reference(cases):
        recs = [simulate(c.net, c.steps, spikes=c.spikes, record=c.record) for c in cases]
        recs[1].u[cases[1].net.neuron_layers[0]][0, 0].flat[0] += 1
        return recs

    report = run_conformance(4, seed=2, reference=reference)
    assert (report.cases, report.mismatching, [r.index for r in report.failed]) == (4, 1, [1])
    assert not report.ok


@pytest.mark.lava
def test_simulator_equals_lava_on_random_netlists(lava_exe):
    report = run_conformance(LAVA_CASES, seed=0)
    details = "\n".join(f"case {r.index} ({r.description}): {r.mismatching}; {r.first[0]}" for r in report.failed[:5])
    assert report.mismatching == 0, details
    assert report.cases == LAVA_CASES


SDNN_LAVA_CASES = 100
RECURRENT_LAVA_CASES = 40
DELAY_LAVA_CASES = 20


@pytest.fixture(scope="module")
def sdnn_cases():
    return generate_cases(120, seed=5, kind="sdnn")


def test_sdnn_cases_reach_every_rule(sdnn_cases):
    from neurodeploy.netlist import DeltaNeuron, SigmaDeltaNeuron, SigmaNeuron

    neurons = [case.net.layers[i].neuron for case in sdnn_cases for i in case.net.neuron_layers]
    sd = [n for n in neurons if isinstance(n, SigmaDeltaNeuron)]
    assert any(isinstance(n, DeltaNeuron) for n in neurons) and any(isinstance(n, SigmaNeuron) for n in neurons)
    assert {n.activation for n in sd} == {"relu", "none"} and {n.cum_error for n in sd} == {True, False}
    assert {n.vth for n in sd} >= {0} and max(n.spike_exp for n in sd) > 8
    assert any(n.vth == fx.INT32_MAX >> (n.spike_exp + fx.STATE_EXP) and n.vth > 0 for n in sd)
    assert {c.net.input_message_bits for c in sdnn_cases} == {0, 16}
    assert any(getattr(layer, "delay", None) is not None for c in sdnn_cases for layer in c.net.layers)
    active = wrapped = 0
    for case in sdnn_cases:
        rec = simulate(case.net, case.steps, spikes=case.spikes, record=("s", "sigma"))
        active += all(np.count_nonzero(s) for s in rec.s.values())
        wrapped += any(np.abs(x).max(initial=0) > 2**30 for x in rec.sigma.values())
    assert active > len(sdnn_cases) // 3 and wrapped > 10


def test_recurrent_cases_feed_back_in_both_kinds_of_network():
    from neurodeploy.netlist import RecurrentDense

    cases = generate_cases(30, seed=2, kind="recurrent")
    graded = {c.net.graded for c in cases}
    assert graded == {True, False}
    sending = changed = 0
    for case in cases:
        index = [i for i, layer in enumerate(case.net.layers) if isinstance(layer, RecurrentDense)]
        assert index and all(case.net.layers[i].delay is None for i in index)
        state = ("s", "sigma") if case.net.graded else ("s", "u")
        ours = simulate(case.net, case.steps, spikes=case.spikes, record=state)
        for i in index:
            case.net.layers[i].weight_rec = np.zeros_like(case.net.layers[i].weight_rec)
        cut = simulate(case.net, case.steps, spikes=case.spikes, record=state)
        if any(np.count_nonzero(ours.s[i][:, :-1]) for i in index):  # messages that come back
            sending += 1
            changed += any(
                not np.array_equal(getattr(ours, v)[i], getattr(cut, v)[i]) for v in state for i in getattr(ours, v)
            )
    assert sending >= 10 and changed > sending // 2  # the rest: recurrent weights truncated or shifted to 0


def test_delay_cases_have_delays_of_every_form():
    dense = _layers(generate_cases(40, seed=1, kind="delay"), Dense)
    assert dense and all(layer.delay is not None for layer in dense)
    forms = {
        (bool(np.ptp(layer.delay, axis=0).any()), bool(np.ptp(layer.delay, axis=1).any()))
        for layer in dense
        if min(layer.delay.shape) > 1
    }
    assert len(forms) >= 3 and max(int(layer.delay.max()) for layer in dense) > 40


@pytest.mark.lava
@pytest.mark.parametrize(
    "kind,n", [("sdnn", SDNN_LAVA_CASES), ("recurrent", RECURRENT_LAVA_CASES), ("delay", DELAY_LAVA_CASES)]
)
def test_simulator_equals_lava_on_random_graded_and_delayed_netlists(lava_exe, kind, n):
    report = run_conformance(n, seed=1, kind=kind)
    details = "\n".join(f"case {r.index} ({r.description}): {r.mismatching}; {r.first[0]}" for r in report.failed[:5])
    assert report.mismatching == 0, details
    assert report.cases == n

"""The simulator's step rules on tiny netlists whose traces are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from neurodeploy.counters import COUNTERS
from neurodeploy.netlist import Conv, CubaNeuron, Dense, Flatten, Input, Netlist
from neurodeploy.sim import conv2d, simulate

BIG = 2**23 - 1  # a threshold no test reaches


def neuron(vth=BIG, du=4095, dv=4096, bias_exp=6) -> CubaNeuron:
    return CubaNeuron(vth=vth, du=du, dv=dv, bias_exp=bias_exp)


def spikes(*rows) -> np.ndarray:
    """(1, steps, n) spikes from one row of 0/1 a step."""
    return np.array(rows, dtype=bool)[None]


def trace(rec, name: str, layer: int) -> list:
    return getattr(rec, name)[layer][0].reshape(rec.steps, -1).astype(int).tolist()


class TestThresholdAndReset:
    def test_strictly_greater_than_vth_shifted_by_6(self):
        net = Netlist([Input((2,), neuron(vth=1, bias_exp=0), bias=np.array([64, 65]))])
        rec = simulate(net, 3, record=("s", "v"))
        assert trace(rec, "s", 0) == [[0, 1]] * 3
        assert trace(rec, "v", 0) == [[64, 0]] * 3  # v of a spiking neuron is 0, not v - vth

    def test_v_resets_to_zero_and_u_is_kept(self):
        net = Netlist(
            [
                Input((1,), neuron(vth=0), bias=np.array([1])),  # spikes every step
                Dense(np.array([[4]]), neuron(vth=5, du=-1, dv=0)),
            ]
        )
        rec = simulate(net, 4, record=("s", "u", "v"))
        assert trace(rec, "u", 1) == [[0], [256], [512], [768]]
        assert trace(rec, "v", 1) == [[0], [256], [0], [0]]  # 256 + 512 = 768 > 320: spike, v = 0
        assert trace(rec, "s", 1) == [[0], [0], [1], [1]]


class TestSynapses:
    def run_dense(self, weight, rows, **kw):
        net = Netlist([Dense(np.array(weight), neuron(), **kw)], input_shape=(len(rows[0]),))
        return trace(simulate(net, len(rows), spikes=spikes(*rows), record=("u",)), "u", 0)

    def test_weight_exponent_shifts_the_sum_with_a_floor(self):
        rows = ([1, 0], [1, 1], [0, 0])
        assert self.run_dense([[3, 3]], rows, weight_exp=-1) == [[0], [64], [192]]  # 3 >> 1, 6 >> 1
        assert self.run_dense([[-3, -3]], rows, weight_exp=-1) == [[0], [-128], [-192]]  # -3 >> 1 = -2
        assert self.run_dense([[3, 3]], rows, weight_exp=2) == [[0], [12 * 64], [24 * 64]]

    def test_mixed_weights_are_truncated_before_the_sum(self):
        rows = ([1, 1, 1, 1], [0, 0, 0, 0])
        assert self.run_dense([[3, -5, 7, 1]], rows) == [[0], [(2 - 6 + 6 + 0) * 64]]

    def test_delays_add_steps(self):
        rows = ([1, 1], [0, 0], [0, 0], [0, 0], [0, 0], [0, 0])
        u = self.run_dense([[1, 2]], rows, delay=np.array([[0, 3]]))
        assert u == [[0], [64], [0], [0], [128], [0]]

    def test_conv_output_wraps_to_24_bits(self):
        def u_after(weights, weight_exp=0):
            w = np.array(weights).reshape(1, 2, 1, 1)
            net = Netlist([Conv(w, neuron(), weight_exp=weight_exp)], input_shape=(2, 1, 1))
            rec = simulate(net, 2, spikes=np.ones((1, 2, 2, 1, 1), bool), record=("u",))
            return trace(rec, "u", 0)[1][0]

        # a_in = 2**23 + 5 wraps to -2**23 + 5; u = a_in << 6 then gains 2**24 once
        assert u_after([2**22, 2**22 + 5]) == (-(2**23) + 5) * 64 + 2**24
        assert u_after([2**21, 2**21], weight_exp=1) == -(2**23) * 64 + 2**24
        assert u_after([2**22, 2**22 - 1]) == (2**23 - 1) * 64 - 2**24  # no conv wrap, u wraps

    def test_one_step_of_latency_per_synaptic_layer(self):
        net = Netlist([Dense(np.array([[1]]), neuron(vth=0)), Dense(np.array([[1]]), neuron(vth=0))], input_shape=(1,))
        rec = simulate(net, 4, spikes=spikes([1], [0], [0], [0]), record=("s",))
        assert trace(rec, "s", 0) == [[0], [1], [0], [0]]
        assert trace(rec, "s", 1) == [[0], [0], [1], [0]]

    def test_spikes_into_an_input_layer_arrive_at_once(self):
        net = Netlist([Input((1,), neuron(vth=0), bias=np.array([0]))])
        rec = simulate(net, 2, spikes=np.array([[[1], [0]]]), record=("s", "u"))
        assert trace(rec, "u", 0) == [[64], [0]]
        assert trace(rec, "s", 0) == [[1], [0]]


class TestPeriodicReset:
    def net(self, reset_offset=0) -> Netlist:
        # neuron layers k = 0, 1, 2 (flatten not counted); each v gains 64 a step, u gains 64 in layer 0
        return Netlist(
            [
                Input((1, 2, 2), neuron(du=-1, dv=0), bias=np.ones((1, 2, 2), int)),
                Flatten(),
                Dense(np.zeros((1, 4), int), neuron(dv=0), bias=np.array([1])),
                Dense(np.zeros((1, 1), int), neuron(dv=0), bias=np.array([1])),
            ],
            reset_interval=3,
            reset_offset=reset_offset,
        )

    def v64(self, rec, layer):
        return [row[0] // 64 for row in trace(rec, "v", layer)]

    def test_layer_k_resets_when_t_mod_n_equals_k(self):
        rec = simulate(self.net(), 6, spikes=np.ones((1, 6, 1, 2, 2), int), record=("u", "v"))
        assert [row[0] // 64 for row in trace(rec, "u", 0)] == [1, 2, 3, 1, 2, 3]
        assert self.v64(rec, 0) == [2, 5, 9, 2, 5, 9]  # v gains u and the bias: 0+1+1, 2+2+1, 5+3+1
        assert self.v64(rec, 2) == [1, 1, 2, 3, 1, 2]
        assert self.v64(rec, 3) == [1, 2, 1, 2, 3, 1]

    def test_offset_shifts_every_layer(self):
        rec = simulate(self.net(reset_offset=1), 5, record=("v",))
        assert self.v64(rec, 0) == [1, 1, 2, 3, 1]

    def test_none_never_resets_and_an_argument_overrides(self):
        rec = simulate(self.net(), 5, record=("v",), reset_interval=None)
        assert self.v64(rec, 0) == [1, 2, 3, 4, 5]
        rec = simulate(self.net(), 5, record=("v",), reset_interval=2)
        assert self.v64(rec, 2) == [1, 1, 2, 1, 2]


class TestEventCounts:
    def test_tiny_net_by_hand(self):
        steps = 5
        net = Netlist(
            [
                Input((1, 2, 2), neuron(vth=0), bias=np.array([[[1, 0], [1, 0]]])),  # neurons 0 and 2 spike
                Flatten(),
                Dense(np.array([[1, 0, 0, 2], [0, 3, 4, 0]]), neuron(vth=0)),  # one synapse from each spiker
                Dense(np.array([[1, 0]]), neuron(vth=0)),
            ]
        )
        rec = simulate(net, steps)
        assert rec.spike_count == {0: 2 * steps, 2: 2 * (steps - 1), 3: steps - 2}
        assert rec.synaptic_events == {0: 0, 2: 2 * steps, 3: steps - 1}
        assert rec.neuron_updates == {0: 4 * steps, 2: 2 * steps, 3: steps}
        assert rec.u_wraps == {0: 0, 2: 0, 3: 0}
        assert rec.v_saturations == {0: 0, 2: 0, 3: 0}
        assert rec.output_counts.tolist() == [[steps - 2]]

    def test_conv_synaptic_events_count_synapses_inside_the_image(self):
        w = np.ones((1, 1, 3, 3), int)
        net = Netlist([Conv(w, neuron(), padding=(1, 1))], input_shape=(1, 3, 3))
        one_corner = np.zeros((1, 1, 1, 3, 3), bool)
        one_corner[0, 0, 0, 0, 0] = True
        assert simulate(net, 1, spikes=one_corner).synaptic_events == {0: 4}  # a corner reaches 2x2 outputs

    def test_grouped_strided_conv_events_equal_a_count_synapse_by_synapse(self):
        rng = np.random.default_rng(5)
        w = rng.integers(-2, 3, (6, 2, 3, 2)) * (rng.random((6, 2, 3, 2)) < 0.5)
        layer = Conv(w, neuron(), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2)
        net = Netlist([layer], input_shape=(4, 5, 6))
        x = rng.random((2, 3, 4, 5, 6)) < 0.4
        (h, wd), (o, cg, kh, kw) = (5, 6), w.shape
        ho, wo = net.layers[0].shape[1:]
        expected = 0
        for out in range(o):
            g = out // (o // 2)
            for i in range(ho):
                for j in range(wo):
                    for ci in range(cg):
                        for a in range(kh):
                            for b in range(kw):
                                y, z = i * 2 - 1 + a, j + 2 * b
                                if w[out, ci, a, b] and 0 <= y < h and 0 <= z < wd:
                                    expected += int(x[:, :, g * cg + ci, y, z].sum())
        assert simulate(net, 3, spikes=x).synaptic_events == {0: expected}

    def test_wraps_and_saturations(self):
        net = Netlist([Input((2,), neuron(dv=0), bias=np.array([2**17, 0]))])  # bias 2**23 > v limit
        rec = simulate(net, 3, spikes=np.array([[[0, 2**17 + 1]] * 3]))  # (2**17 + 1) << 6 > 2**23
        # neuron 0 saturates every step; neuron 1 adds its wrapped u = -2**23 + 64 and saturates from t = 1
        assert rec.v_saturations == {0: 3 + 2}
        assert rec.u_wraps == {0: 3}


class TestBatch:
    def test_samples_run_independently(self):
        net = Netlist([Input((3,), neuron(vth=2, dv=1024), bias=np.zeros(3, int))])
        bias = np.array([[10, 0, 50], [0, 40, 3]])
        both = simulate(net, 6, bias=bias, record=("s", "v"))
        for b in range(2):
            alone = simulate(net, 6, bias=bias[b], record=("s", "v"))
            assert np.array_equal(both.v[0][b], alone.v[0][0])
            assert np.array_equal(both.s[0][b], alone.s[0][0])

    def test_parallel_chunks_equal_one_serial_run(self, monkeypatch):
        """Chunks of uneven size in threads (3 workers, small chunks) give what one serial run gives."""
        import neurodeploy.sim as sim_module
        from neurodeploy.conformance import generate_cases

        rng = np.random.default_rng(3)
        for case in generate_cases(12, seed=11):
            shape = case.spikes.shape[2:]
            drive = rng.integers(-3, 4, (23, case.steps) + shape) if case.spikes.dtype != bool else None
            batch = (
                drive * (rng.random(drive.shape) < 0.3)
                if drive is not None
                else rng.random((23, case.steps) + shape) < 0.3
            )
            monkeypatch.setattr(sim_module._Run, "MIN_PARALLEL_ROWS", 10**9)
            serial = simulate(case.net, case.steps, spikes=batch, record=("s", "u", "v"))
            monkeypatch.setattr(sim_module._Run, "MIN_PARALLEL_ROWS", 2)
            monkeypatch.setattr(sim_module, "_cores", lambda: 3)
            monkeypatch.setattr(sim_module, "CHUNK_BYTES", 1)  # one sample a chunk before the split by cores
            threaded = simulate(case.net, case.steps, spikes=batch, record=("s", "u", "v"))
            monkeypatch.undo()
            for name in ("s", "u", "v"):
                for i, trace_ in getattr(serial, name).items():
                    assert np.array_equal(getattr(threaded, name)[i], trace_), (name, i)
            for counter in COUNTERS:
                assert getattr(threaded, counter) == getattr(serial, counter), counter
            assert np.array_equal(threaded.output_counts, serial.output_counts)


@pytest.mark.parametrize(
    "stride,padding,dilation,groups",
    [
        ((1, 1), (0, 0), (1, 1), 1),
        ((2, 1), (1, 2), (1, 2), 2),
        ((3, 2), (2, 0), (2, 1), 4),
    ],
)
def test_conv2d_is_a_cross_correlation(stride, padding, dilation, groups):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, (2, 4, 9, 8)).astype(np.float64)
    w = rng.integers(-5, 6, (8, 4 // groups, 3, 2)).astype(np.float64)
    got = conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    og, cg = 8 // groups, 4 // groups
    for o in range(8):
        g = o // og
        for i in range(got.shape[2]):
            for j in range(got.shape[3]):
                rows = i * stride[0] + dilation[0] * np.arange(3)
                cols = j * stride[1] + dilation[1] * np.arange(2)
                patch = xp[:, g * cg : (g + 1) * cg][:, :, rows][:, :, :, cols]
                assert np.array_equal(got[:, o, i, j], (patch * w[o]).sum(axis=(1, 2, 3)))


class TestFloat32Path:
    """u = input and v keeps 3/4 a step: |v| <= 4 |input| << 6, and 3 |v| must stay below 2**24."""

    LIMIT = 21845  # the largest input bound with 3 * 4 * (bound << 6) < 2**24

    def test_chosen_exactly_up_to_the_bound(self):
        from neurodeploy.sim import _Bias, _Neurons

        n, no_bias = CubaNeuron(vth=10, du=4095, dv=1024), _Bias(None, (1,), 0)
        assert _Neurons(n, no_bias, self.LIMIT).dtype == np.float32
        assert _Neurons(n, no_bias, self.LIMIT + 1).dtype == np.float64
        assert _Neurons(CubaNeuron(vth=10, du=4095, dv=0), no_bias, 1).dtype == np.float64  # v never decays

    def test_values_at_the_bound_equal_the_int64_rules(self, monkeypatch):
        import neurodeploy.sim as sim_module

        rng = np.random.default_rng(2)
        weight = rng.choice([-255, 255], (7, 85))
        weight[0] = 255  # the all-positive row drives v to its largest value
        net = Netlist([Dense(weight, CubaNeuron(vth=2**17 - 1, du=4095, dv=1024))], input_shape=(85,))
        spikes = np.ones((3, 40, 85), bool)
        spikes[1:] = rng.random((2, 40, 85)) < 0.6
        chosen = []
        original = sim_module._Neurons._fits_float32
        monkeypatch.setattr(
            sim_module._Neurons, "_fits_float32", lambda self: chosen.append(original(self)) or chosen[-1]
        )
        fast = simulate(net, 40, spikes=spikes, record=("s", "u", "v"))
        assert chosen == [True]
        monkeypatch.setattr(sim_module._Neurons, "FLOAT_INPUT_LIMIT", 0)
        exact = simulate(net, 40, spikes=spikes, record=("s", "u", "v"))
        assert fast.v[0].max() > 5_000_000  # near 4 * 255 * 85 << 6 = 5,548,800
        for name in ("s", "u", "v"):
            np.testing.assert_array_equal(getattr(fast, name)[0], getattr(exact, name)[0])


def test_output_v_is_the_last_layers_v_after_the_last_step():
    rng = np.random.default_rng(3)
    net = Netlist(
        [Dense(weight=2 * rng.integers(-30, 31, (5, 12)), neuron=CubaNeuron(vth=2**17 - 1, du=4095, dv=0))],
        input_shape=(12,),
    )
    spikes = rng.random((9, 7, 12)) < 0.4
    rec = simulate(net, 7, spikes=spikes, record=("s", "v"))
    assert rec.output_counts.sum() == 0 and np.abs(rec.output_v).max() > 0
    np.testing.assert_array_equal(rec.output_v, rec.v[0][:, -1])
    expected = (spikes[:, :6].astype(np.int64) @ net.layers[0].weight.T.astype(np.int64)).sum(axis=1) << 6
    np.testing.assert_array_equal(rec.output_v, expected)  # one step of latency, v integrates every input


@pytest.mark.parametrize("exp,aliased", [(0, True), (12, False)])
def test_u_that_keeps_nothing_is_the_input_and_equals_the_int64_rules(monkeypatch, exp, aliased):
    """du = 4095: u is the input of the step. Where the input cannot wrap, u is that very array
    (read, never changed); where it can, u is a copy that wraps. Spikes reset v either way."""
    import neurodeploy.sim as sim_module

    rng = np.random.default_rng(4)
    weight = rng.integers(-60, 90, (6, 40))
    neuron_ = CubaNeuron(vth=2000, du=4095, dv=1024)
    net = Netlist([Dense(weight, neuron_, weight_exp=exp)], input_shape=(40,))
    spikes = rng.random((5, 30, 40)) < 0.5
    decided = []
    original = sim_module._Neurons.__init__
    monkeypatch.setattr(
        sim_module._Neurons, "__init__", lambda self, *a: original(self, *a) or decided.append(self.alias_input)
    )
    fast = simulate(net, 30, spikes=spikes, record=("s", "u", "v"))
    assert decided == [aliased]
    monkeypatch.setattr(sim_module._Neurons, "FLOAT_INPUT_LIMIT", 0)
    exact = simulate(net, 30, spikes=spikes, record=("s", "u", "v"))
    assert 0 < exact.s[0].mean() < 1
    assert (exact.u_wraps[0] > 0) == (not aliased)
    for name in ("s", "u", "v"):
        np.testing.assert_array_equal(getattr(fast, name)[0], getattr(exact, name)[0])
    assert fast.u_wraps == exact.u_wraps and fast.v_saturations == exact.v_saturations


def test_event_counts_do_not_depend_on_the_rows_counted_at_a_time(monkeypatch):
    import neurodeploy.sim as sim_module

    rng = np.random.default_rng(6)
    net = Netlist(
        [
            Dense(
                2 * rng.integers(-9, 12, (30, 20)) * (rng.random((30, 20)) < 0.7), CubaNeuron(vth=3, du=4095, dv=1024)
            ),
            Dense(rng.integers(-9, 12, (4, 30)), CubaNeuron(vth=3, du=4095, dv=1024)),
        ],
        input_shape=(20,),
    )
    spikes = rng.random((7, 9, 20)) < 0.4
    whole = simulate(net, 9, spikes=spikes)
    monkeypatch.setattr(sim_module, "COUNT_ROWS", 5)  # 9 steps x 7 samples: 13 blocks, the last one short
    blocks = simulate(net, 9, spikes=spikes)
    assert whole.spike_count[0] > 0 and whole.synaptic_events[1] > 0
    assert blocks.synaptic_events == whole.synaptic_events
    fan_out = (net.layers[0].weight != 0).sum(axis=0)  # even weights: all kept at 8 bits
    assert whole.synaptic_events[0] == int((spikes.sum(axis=(0, 1)) * fan_out).sum())

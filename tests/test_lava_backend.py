"""The Lava backend: exchange format and limits (no Lava), hand-built networks against Lava."""

from __future__ import annotations

import numpy as np
import pytest
from neurodeploy.backends import lava as backend
from neurodeploy.backends.lava import NO_LAVA, check_lava_limits, run_lava, run_lava_cases
from neurodeploy.backends.lava_exchange import (
    LavaCase,
    LavaError,
    decode_netlist,
    encode_netlist,
    read_recordings,
    write_recordings,
)
from neurodeploy.netlist import Conv, CubaNeuron, Dense, Flatten, Input, Netlist
from neurodeploy.sim import simulate


def _dense_net(rng) -> Netlist:
    return Netlist(
        [
            Dense(
                weight=rng.integers(-300, 300, (9, 14)),
                neuron=CubaNeuron(vth=30, du=-1, dv=700, bias_exp=5),
                bias=rng.integers(-90, 90, 9),
                weight_exp=-3,
                weight_bits=6,
            ),
            Dense(weight=-rng.integers(0, 255, (4, 9)), neuron=CubaNeuron(vth=5, du=4095, dv=0), weight_exp=7),
        ],
        input_shape=(14,),
        reset_interval=5,
        reset_offset=2,
    )


def _conv_net(rng) -> Netlist:
    """Non-square maps and kernels, stride, padding, dilation and groups: catches any axis swap."""
    return Netlist(
        [
            Conv(
                weight=rng.integers(-120, 120, (4, 1, 3, 2)),
                neuron=CubaNeuron(vth=20, du=400, dv=300),
                stride=(2, 1),
                padding=(1, 0),
                dilation=(1, 2),
                groups=2,
                weight_exp=2,
                bias=rng.integers(-500, 500, 4),
            ),
            Conv(
                weight=rng.integers(0, 90, (2, 4, 2, 3)),
                neuron=CubaNeuron(vth=40, du=0, dv=100, bias_exp=-2),
                padding=(0, 1),
            ),
            Flatten(),
            Dense(
                weight=rng.integers(-60, 60, (5, 18)),
                neuron=CubaNeuron(vth=10, du=1000, dv=1000),
                delay=rng.integers(0, 4, (5, 18)),
            ),
        ],
        input_shape=(2, 7, 5),
    )


def _input_net(rng) -> Netlist:
    return Netlist(
        [
            Input(
                shape=(2, 3, 4), neuron=CubaNeuron(vth=100, du=200, dv=50, bias_exp=9), bias=np.zeros((2, 3, 4), int)
            ),
            Dense(weight=rng.integers(0, 200, (6, 24)), neuron=CubaNeuron(vth=300, du=3000, dv=4096), weight_exp=10),
        ],
        reset_interval=4,
    )


@pytest.fixture(scope="module")
def hand_built():
    rng = np.random.default_rng(7)
    steps = 18
    return [
        LavaCase(_dense_net(rng), steps, spikes=rng.random((2, steps, 14)) < 0.4, record=("s", "u", "v")),
        LavaCase(_conv_net(rng), steps, spikes=rng.random((1, steps, 2, 7, 5)) < 0.5, record=("s", "u", "v")),
        LavaCase(
            _input_net(rng),
            steps,
            spikes=rng.integers(-(2**19), 2**19, (2, steps, 2, 3, 4)) * (rng.random((2, steps, 2, 3, 4)) < 0.3),
            bias=rng.integers(-3000, 3000, (2, 2, 3, 4)),
            record=("s", "u", "v"),
        ),
    ]


def test_netlist_survives_the_exchange_format(hand_built):
    for case in hand_built:
        arrays: dict = {}
        back = decode_netlist(encode_netlist(case.net, "n", arrays), arrays)
        assert (back.input_shape, back.reset_interval, back.reset_offset) == (
            case.net.input_shape,
            case.net.reset_interval,
            case.net.reset_offset,
        )
        for a, b in zip(case.net.layers, back.layers):
            assert type(a) is type(b) and a.shape == b.shape
            for name in ("weight", "bias", "delay"):
                x, y = getattr(a, name, None), getattr(b, name, None)
                assert (x is None and y is None) or np.array_equal(x, y)
            if hasattr(a, "neuron"):
                assert a.neuron == b.neuron


def test_recordings_survive_the_exchange_format(tmp_path, hand_built):
    case = hand_built[1]
    rec = simulate(case.net, case.steps, spikes=case.spikes, record=("s", "u", "v"))
    write_recordings(tmp_path / "r.npz", [rec])
    (back,) = read_recordings(tmp_path / "r.npz")
    assert back.spike_count == rec.spike_count and np.array_equal(back.output_counts, rec.output_counts)
    for name in ("s", "u", "v"):
        for i in rec.s:
            assert np.array_equal(getattr(back, name)[i], getattr(rec, name)[i])


def test_limits_name_the_layer_and_the_range():
    weight = np.ones((2, 3))
    neuron = CubaNeuron(vth=1, du=0, dv=0)
    wide_bias = Netlist([Dense(weight=weight, neuron=neuron, bias=np.array([0, 40000]))], input_shape=(3,))
    with pytest.raises(
        LavaError, match=r"layer 0 \(dense\): bias mantissa 40000 is outside Lava's range \[-32768, 32767\]"
    ):
        check_lava_limits(LavaCase(wide_bias, 3))
    conv = Netlist([Conv(weight=np.ones((1, 1, 2, 2), int), neuron=neuron, weight_exp=-1)], input_shape=(1, 3, 3))
    with pytest.raises(LavaError, match="layer 0 \\(conv\\): weight_exp = -1"):
        check_lava_limits(LavaCase(conv, 3))
    plain = Netlist([Dense(weight=weight, neuron=CubaNeuron(vth=1, du=0, dv=0))], input_shape=(3,))
    with pytest.raises(LavaError, match="binary spikes"):
        check_lava_limits(LavaCase(plain, 2, spikes=np.full((1, 2, 3), 2)))
    with pytest.raises(LavaError, match="cannot record"):
        check_lava_limits(LavaCase(plain, 2, record=("w",)))


def test_missing_lava_environment_says_how_to_get_one(monkeypatch):
    monkeypatch.setattr(backend, "lava_in_process", lambda: False)
    monkeypatch.setattr(backend, "lava_python", lambda: None)
    net = Netlist([Dense(weight=np.ones((2, 3)), neuron=CubaNeuron(vth=1, du=0, dv=0))], input_shape=(3,))
    with pytest.raises(LavaError) as err:
        run_lava(net, 2)
    assert str(err.value) == NO_LAVA


@pytest.mark.lava
def test_hand_built_networks_equal_the_simulator(lava_exe, hand_built):
    recs = run_lava_cases(hand_built)
    for case, lava in zip(hand_built, recs):
        sim = simulate(case.net, case.steps, spikes=case.spikes, bias=case.bias, record=case.record)
        assert lava.batch == sim.batch and lava.steps == sim.steps
        for name in ("s", "u", "v"):
            for i in sim.s:
                np.testing.assert_array_equal(
                    getattr(lava, name)[i], getattr(sim, name)[i], err_msg=f"layer {i} {name}"
                )
        assert lava.spike_count == sim.spike_count and sum(sim.spike_count.values()) > 0
        np.testing.assert_array_equal(lava.output_counts, sim.output_counts)
    wrapped = simulate(hand_built[2].net, hand_built[2].steps, spikes=hand_built[2].spikes, bias=hand_built[2].bias)
    assert sum(wrapped.u_wraps.values()) > 0 and sum(wrapped.v_saturations.values()) > 0


@pytest.mark.lava
def test_run_lava_records_only_what_was_asked(lava_exe):
    rng = np.random.default_rng(1)
    net = _dense_net(rng)
    spikes = rng.random((1, 6, 14)) < 0.5
    rec = run_lava(net, 6, spikes=spikes, reset_interval=None)
    sim = simulate(net, 6, spikes=spikes, reset_interval=None)
    assert set(rec.s) == {0, 1} and not rec.u and not rec.v
    np.testing.assert_array_equal(rec.s[1], sim.s[1])


@pytest.mark.lava
def test_lava_runs_report_their_stages_and_cases_in_a_log(lava_exe, capsys):
    rng = np.random.default_rng(8)
    net = _dense_net(rng)
    cases = [LavaCase(net, 12, spikes=rng.random((2, 12, 14)) < 0.5) for _ in range(3)]
    run_lava_cases(cases)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("lava: starting ") and lines[1].startswith("lava: Lava imported (")
    assert "lava: 3/3 cases, 72/72 steps" in lines and lines[-1].startswith("lava: done (")

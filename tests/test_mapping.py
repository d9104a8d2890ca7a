"""Mapping onto cores and the cost per inference, on fixtures with answers worked out by hand."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from neurodeploy import cli
from neurodeploy.cost import assumed_activity, estimate_cost, measured_activity
from neurodeploy.errors import InputFileError, NeurodeployError
from neurodeploy.exporters.netx import read_netx
from neurodeploy.mapping import MappingError, layer_wiring, map_network, packing_order
from neurodeploy.netlist import Conv, CubaNeuron, Dense, Flatten, Input, Netlist, RecurrentDense
from neurodeploy.sim import conv2d, simulate
from neurodeploy.targets import Energy, Timing, load_target, with_chips

LOIHI1 = load_target("loihi1")
NEURON = CubaNeuron(vth=2, du=4095, dv=0)
BARE = dataclasses.replace(  # only the limits a test sets
    LOIHI1,
    input_axons_per_core=None,
    output_axons_per_core=None,
    synapse_memory_bits=None,
    energy=Energy(),
    timing=Timing(),
)


def dense(weight, **kwargs) -> Netlist:
    weight = np.asarray(weight)
    return Netlist([Dense(weight, NEURON, **kwargs)], input_shape=(weight.shape[1],))


def core_sizes(mapping, layer: int = 0) -> list[int]:
    return [c.neurons for c in mapping.layers[layer].cores]


@pytest.mark.parametrize("n, sizes", [(1024, [1024]), (1025, [1024, 1]), (2500, [1024, 1024, 452])])
def test_a_layer_of_n_neurons_takes_ceil_n_over_limit_cores(n, sizes):
    mapping = map_network(dense(np.ones((n, 1), int)), LOIHI1)
    assert core_sizes(mapping) == sizes and mapping.cores == len(sizes) == -(-n // 1024)


def test_input_axons_limit_a_core():
    """Ten neurons with disjoint fan-ins of 30: 100 input axons hold three of them."""
    weight = np.kron(np.eye(10, dtype=int), np.ones((1, 30), int))
    mapping = map_network(dense(weight), dataclasses.replace(BARE, input_axons_per_core=100))
    assert core_sizes(mapping) == [3, 3, 3, 1]
    assert [c.input_axons for c in mapping.layers[0].cores] == [90, 90, 90, 30]
    shared = map_network(dense(np.ones((10, 30), int)), dataclasses.replace(BARE, input_axons_per_core=100))
    assert core_sizes(shared) == [10] and shared.layers[0].cores[0].input_axons == 30


def test_synapse_memory_limits_a_core():
    """Fan-in 20 at 8 weight + 2 index bits = 200 bits a neuron: 1000 bits hold five."""
    target = dataclasses.replace(BARE, synapse_memory_bits=1000, synapse_index_bits=2, synapse_delay_bits=6)
    mapping = map_network(dense(np.ones((50, 20), int)), target)
    assert core_sizes(mapping) == [5] * 10
    assert mapping.layers[0].cores[0].synapse_bits == 1000 and mapping.synapses == 1000
    delayed = map_network(dense(np.ones((50, 20), int), delay=np.ones((50, 20), int)), target)
    assert core_sizes(delayed) == [3] * 16 + [2]  # 16 bits a synapse, 320 a neuron


def test_output_axons_limit_a_core():
    """Each input neuron reaches all three cores of the next layer: three output axons each."""
    net = Netlist([Input((4,), NEURON, np.zeros(4, int)), Dense(np.ones((6, 4), int), NEURON)])
    mapping = map_network(net, dataclasses.replace(BARE, neurons_per_core=2, output_axons_per_core=3))
    assert core_sizes(mapping, 1) == [2, 2, 2]
    assert core_sizes(mapping, 0) == [1, 1, 1, 1]
    assert [c.output_axons for c in mapping.layers[0].cores] == [3, 3, 3, 3]


def test_weights_truncated_to_zero_are_not_stored():
    mapping = map_network(dense([[1, 2, 5, 0]], weight_bits=6), LOIHI1)  # k = 2 bits dropped: 1 and 2 vanish
    assert mapping.synapses == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"stride": (2, 1), "padding": (1, 2)},
        {"dilation": (2, 1), "padding": (2, 0)},
        {"groups": 2},
    ],
)
def test_conv_wiring_matches_the_convolution(kwargs):
    """The expanded synapses are exactly the nonzero entries of the conv's dense equivalent."""
    rng = np.random.default_rng(1)
    c_in, groups = 4, kwargs.get("groups", 1)
    weight = rng.integers(-2, 3, (6, c_in // groups, 3, 3))
    layer = Conv(weight, NEURON, **kwargs)
    Netlist([Input((c_in, 7, 8), NEURON, np.zeros((c_in, 7, 8), int)), layer])  # validation sets in_shape
    eye = np.eye(c_in * 56).reshape(-1, c_in, 7, 8)
    matrix = conv2d(
        eye, weight.astype(float), stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=groups
    )
    matrix = matrix.reshape(c_in * 56, -1).T  # (outputs, inputs)
    wiring = layer_wiring(layer)
    for row in range(matrix.shape[0]):
        expected = np.flatnonzero(matrix[row])
        got = np.sort(wiring.indices[wiring.indptr[row] : wiring.indptr[row + 1]])
        assert np.array_equal(got, expected), row


def test_spatial_layers_fill_cores_position_by_position():
    assert packing_order((4, 2, 2))[:4].tolist() == [0, 4, 8, 12]
    net = Netlist([Input((4, 2, 2), NEURON, np.zeros((4, 2, 2), int)), Conv(np.ones((4, 4, 1, 1), int), NEURON)])
    mapping = map_network(net, dataclasses.replace(LOIHI1, neurons_per_core=4))
    assert [c.input_axons for c in mapping.layers[1].cores] == [4, 4, 4, 4]  # one position, all channels
    assert [c.output_axons for c in mapping.layers[0].cores] == [4, 4, 4, 4]


def test_a_neuron_that_fits_no_core_names_layer_and_limit():
    net = Netlist([Dense(np.ones((4, 8), int), NEURON), Dense(np.ones((2, 4), int), NEURON)], input_shape=(8,))
    with pytest.raises(MappingError, match=r"layer 0 \(dense 8->4\): neuron 0 alone .* fan-in 8 exceeds 5") as info:
        map_network(net, dataclasses.replace(BARE, input_axons_per_core=5))
    assert (info.value.layer, info.value.quantity, info.value.value, info.value.limit) == (0, "fan-in", 8, 5)


def test_a_layer_needing_several_cores_without_split():
    with pytest.raises(MappingError, match="needs 3 cores"):
        map_network(dense(np.ones((5, 1), int)), dataclasses.replace(BARE, neurons_per_core=2, allow_split=False))


def test_chips_needed():
    net = Netlist(
        [Dense(np.ones((5, 1), int), NEURON), Flatten(), Dense(np.ones((3, 5), int), NEURON)], input_shape=(1,)
    )
    mapping = map_network(net, dataclasses.replace(BARE, neurons_per_core=1, cores_per_chip=3))
    assert [p.index for p in mapping.layers] == [0, 2]
    assert mapping.cores == 8 and mapping.chips == 3 and mapping.chips_needed() == {"cores": 3}
    per_chip = dataclasses.replace(mapping.target, neurons_per_chip=2, synapses_per_chip=100)
    assert dataclasses.replace(mapping, target=per_chip).chips_needed() == {"cores": 3, "neurons": 4, "synapses": 1}
    assert mapping.utilization(mapping.layers[0].cores[0]) == {
        "neurons": 1.0,
        "input_axons": None,
        "output_axons": None,
        "synapse_memory": None,
    }


def test_energy_is_counted_events_times_picojoules():
    """Synaptic events counted by hand from the recorded spikes, times the target's figures."""
    rng = np.random.default_rng(2)
    weight = 2 * rng.integers(-2, 3, (12, 20))  # even: mixed-sign truncation keeps every weight
    weight[:, 0] = 6
    net = Netlist([Dense(weight, NEURON), Dense(rng.integers(0, 4, (5, 12)), NEURON)], input_shape=(20,))
    spikes = rng.random((3, 10, 20)) < 0.3
    rec = simulate(net, 10, spikes=spikes)
    energy = Energy(synaptic_op_pj=2.0, neuron_update_pj=3.0, neuron_update_active_pj=5.0, spike_pj=7.0)
    cost = estimate_cost(map_network(net, dataclasses.replace(BARE, energy=energy)), measured_activity(rec))

    fan_out = [(w != 0).sum(axis=0) for w in (weight, net.layers[1].weight)]
    events = (spikes.sum(axis=(0, 1)) @ fan_out[0] + rec.s[0].sum(axis=(0, 1)) @ fan_out[1]) / 3
    spiked = (rec.s[0].sum() + rec.s[1].sum()) / 3
    updates = (12 + 5) * 10
    assert spiked > 0
    expected = events * 2.0 + (updates - spiked) * 3.0 + spiked * 5.0 + spiked * 7.0
    assert cost.energy_pj == pytest.approx(expected) and cost.dynamic_pj == pytest.approx(expected)
    assert cost.latency_ns is None and cost.static_term is None
    text = "\n".join(cost.lines())
    assert "x 2 pJ" in text and "[energy.synaptic_op_pj]" in text and "latency per inference: unknown" in text


def test_assumed_activity_latency_and_static_energy_by_hand():
    """One core, rate 0.5, 4 steps: step = events x 1 ns + neurons x 2 ns + 10 ns barrier."""
    target = dataclasses.replace(
        BARE,
        energy=Energy(synaptic_op_pj=1.0, neuron_update_pj=1.0, static_power_mw=100.0),
        timing=Timing(synaptic_op_ns=1.0, neuron_update_ns=2.0, barrier_sync_ns=10.0),
    )
    mapping = map_network(dense(np.ones((6, 8), int)), target)
    activity = assumed_activity(mapping, steps=4, rate=0.5)
    assert activity.synaptic_events == {0: 48 * 0.5 * 4} and activity.neuron_updates == {0: 24.0}
    cost = estimate_cost(mapping, activity)
    step = 48 * 0.5 * 1.0 + 6 * 2.0 + 10.0
    assert cost.latency_ns == pytest.approx(4 * step)
    assert cost.static_term.value == pytest.approx(100.0 * 4 * step)  # mW x ns = pJ
    assert cost.energy_pj == pytest.approx(96 + 24 + 100.0 * 4 * step)
    assert any("probability 0.5" in line for line in cost.lines())


def test_unknown_energy_on_a_target_without_figures():
    mapping = map_network(dense(np.ones((3, 4), int)), BARE)
    cost = estimate_cost(mapping, assumed_activity(mapping, 8, 0.1))
    assert cost.energy_pj is None and cost.latency_ns is None
    assert any("publishes no energy" in n for n in cost.notes)
    assert "energy per inference:" in cost.lines()  # no provenance beside an unknown


def test_cores_fill_chips_in_order_within_every_chip_limit():
    """Input (4) -> dense (6), 2 neurons a core, 3 cores a chip: cores 0-2 on chip 0, 3-4 on chip 1."""
    net = Netlist([Input((4,), NEURON, np.zeros(4, int)), Dense(np.ones((6, 4), int), NEURON)])
    mapping = map_network(net, dataclasses.replace(BARE, neurons_per_core=2, cores_per_chip=3))
    assert [[c.chip for c in p.cores] for p in mapping.layers] == [[0, 0], [0, 1, 1]]
    assert mapping.chips == 2
    assert mapping.remote_edges[0].tolist() == [2, 2, 2, 2]  # each input reaches two cores of chip 1
    by_neurons = map_network(net, dataclasses.replace(BARE, neurons_per_core=2, neurons_per_chip=4))
    assert [[c.chip for c in p.cores] for p in by_neurons.layers] == [[0, 0], [1, 1, 2]]
    assert by_neurons.remote_edges[0].tolist() == [3, 3, 3, 3]


def test_a_recurrent_layers_own_synapses_take_inputs_memory_outputs_and_crossings():
    """Input (4) -> recurrent dense (6), each neuron fed by all inputs and by its next neighbour on a ring,
    2 neurons a core and 2 cores a chip: the input fills chip 0, the ring's cores 0-1 chip 1, core 2 chip 2."""
    ring = np.roll(np.eye(6, dtype=int), 1, axis=1)  # neuron r hears neuron r + 1 (mod 6)
    layer = RecurrentDense(np.ones((6, 4), int), NEURON, weight_rec=ring)
    net = Netlist([Input((4,), NEURON, np.zeros(4, int)), layer])
    mapping = map_network(net, dataclasses.replace(BARE, neurons_per_core=2, cores_per_chip=2))
    cores = mapping.layers[1].cores
    assert [c.neurons for c in cores] == [2, 2, 2] and mapping.layers[1].synapses == 6 * 4 + 6
    assert [(c.input_axons, c.synapses, c.output_axons) for c in cores] == [(6, 10, 2)] * 3
    assert [c.chip for c in cores] == [1, 1, 2]
    # neuron 0 (chip 1) feeds neuron 5 (chip 2), neuron 4 (chip 2) feeds neuron 3 (chip 1)
    assert mapping.remote_edges[1].tolist() == [1, 0, 0, 0, 1, 0]
    sparse_layer = dataclasses.replace(layer, weight=np.eye(6, 4, dtype=int))
    sparse = Netlist([Input((4,), NEURON, np.zeros(4, int)), sparse_layer])
    one_out = map_network(sparse, dataclasses.replace(BARE, neurons_per_core=2, output_axons_per_core=1))
    assert [c.neurons for c in one_out.layers[1].cores] == [1] * 6  # two ring neurons would reach two cores


def test_spikes_crossing_chips_are_counted_and_priced_by_hand():
    """Rate 0.5 over 4 steps: each of 4 inputs spikes twice, and each spike reaches 2 remote cores."""
    net = Netlist([Input((4,), NEURON, np.zeros(4, int)), Dense(np.ones((6, 4), int), NEURON)])
    target = dataclasses.replace(BARE, neurons_per_core=2, cores_per_chip=3)
    mapping = map_network(net, target)
    cost = estimate_cost(mapping, assumed_activity(mapping, steps=4, rate=0.5))
    assert cost.crossing_term.count == pytest.approx(4 * 2 * 2) and cost.crossing_term.value is None
    assert any("no energy for a spike between chips" in n for n in cost.notes)
    energy = Energy(synaptic_op_pj=1.0, neuron_update_pj=1.0, chip_crossing_pj=3.0)
    priced = estimate_cost(
        map_network(net, dataclasses.replace(target, energy=energy)), assumed_activity(mapping, steps=4, rate=0.5)
    )
    assert priced.energy_pj == pytest.approx(priced.dynamic_pj + 16 * 3.0)
    one_chip = estimate_cost(map_network(net, BARE), assumed_activity(mapping, steps=4, rate=0.5))
    assert one_chip.crossing_term is None


def test_measured_crossings_follow_each_neurons_spikes():
    """Only input neuron 0 is driven: crossings = its spikes x its remote cores."""
    net = Netlist([Input((4,), NEURON, np.zeros(4, int)), Dense(np.eye(6, 4, dtype=int), NEURON)])
    mapping = map_network(net, dataclasses.replace(BARE, neurons_per_core=2, cores_per_chip=3))
    rec = simulate(net, 10, bias=np.array([100, 0, 0, 0]))
    spikes = rec.s[0][0].sum(axis=0)
    assert spikes[0] > 0 and spikes[1:].sum() == 0
    cost = estimate_cost(mapping, measured_activity(rec))
    assert mapping.remote_edges[0].tolist() == [0, 0, 1, 1]  # neurons 2, 3 feed dense neurons on chip 1
    assert cost.crossing_term.count == 0
    rec = simulate(net, 10, bias=np.array([0, 0, 100, 0]))
    assert estimate_cost(mapping, measured_activity(rec)).crossing_term.count == rec.s[0][0].sum()


def test_pilotnet_needs_three_loihi_chips(conformance_dir, capsys):
    path = conformance_dir / "gts" / "pilotnet_lif" / "network.net"
    mapping = map_network(read_netx(path), LOIHI1)
    assert mapping.chips == 3 and mapping.chips_needed() == {"cores": 3}
    per_chip = np.bincount([c.chip for p in mapping.layers for c in p.cores])
    assert per_chip.tolist() == [128, 128, mapping.cores - 256]
    assert sum(int(r.sum()) for r in mapping.remote_edges.values()) > 0
    assert cli.main(["map", str(path), "--target", "loihi1", "--chips", "3"]) == 0
    out = capsys.readouterr().out
    assert "chips needed: 3" in out and "chip 2: layers" in out and "spikes cross chips a step" in out
    assert cli.main(["map", str(path), "--target", "loihi1", "--chips", "2"]) == 2
    assert "3 chips would hold it" in capsys.readouterr().err


def test_a_kapoho_point_board_holds_what_one_loihi2_chip_cannot():
    """1,000,001 neurons: 123 cores fit a chip, the neurons do not; the last core goes to chip 1."""
    weight = np.zeros((2, 1_000_001), np.int64)
    weight[:, [0, 999_999, 1_000_000]] = 1
    net = Netlist([Dense(np.ones((1_000_001, 1), np.int64), NEURON), Dense(weight, NEURON)], input_shape=(1,))
    mapping = map_network(net, with_chips(load_target("loihi2"), 8))
    assert mapping.chips == 2 and mapping.chips_needed() == {"cores": 1, "neurons": 2, "synapses": 1}
    chips = [c.chip for c in mapping.layers[0].cores]
    assert len(chips) == 123 and chips.count(1) == 1 and chips[-1] == 1 and mapping.layers[1].cores[0].chip == 1
    assert np.flatnonzero(mapping.remote_edges[0]).tolist() == [0]  # neuron 0 is on chip 0, the others on chip 1
    cost = estimate_cost(mapping, assumed_activity(mapping, steps=10, rate=0.5))
    assert cost.crossing_term.count == pytest.approx(5.0)  # neuron 0's 5 spikes, one remote core each


def test_systems_up_to_the_largest_built(tmp_path, capsys):
    loihi2 = load_target("loihi2")
    assert with_chips(loihi2, 1152).cores == 1152 * 128
    with pytest.raises(NeurodeployError, match=r"--chips 1153 exceeds system\.max_chips = 1,152"):
        with_chips(loihi2, 1153)
    path = tmp_path / "big.toml"
    path.write_text('name = "big"\n[system]\ncores_per_chip = 2\nchips = 9\nmax_chips = 8\n[core]\nneurons = 4\n')
    with pytest.raises(InputFileError, match=r"big.toml: system.chips = 9 exceeds system.max_chips = 8"):
        load_target(path)


def test_map_command_on_pilotnet(conformance_dir, capsys):
    """PilotNet on Loihi: cores used and energy per inference with the arithmetic shown."""
    net = str(conformance_dir / "gts" / "pilotnet_lif" / "network.net")
    assert cli.main(["map", net, "--target", "loihi1", "--chips", "8"]) == 0
    out = capsys.readouterr().out
    cores = int(out.split("cores used: ")[1].split()[0])
    rows = [line.split() for line in out.splitlines() if line[:1].isdigit()]
    neurons = [int(row[next(i for i, tok in enumerate(row) if "%" in tok) - 3].replace(",", "")) for row in rows]
    assert cores >= sum(-(-n // 1024) for n in neurons) and len(neurons) == 10
    assert "x 23.6 pJ" in out and "total" in out and "source: Davies" in out
    assert "energy per inference (published per-operation figures, pre-silicon):" in out
    assert cli.main(["map", net, "--target", "loihi1", "--chips", "1"]) == 2
    assert "more than 128 cores a chip x 1 chip(s)" in capsys.readouterr().err


def test_map_command_with_measured_spikes(tmp_path, capsys):
    from neurodeploy.exporters.netx import write_netx

    net = dense(np.ones((4, 6), int))
    write_netx(net, tmp_path / "net.net")
    np.save(tmp_path / "spikes.npy", np.ones((5, 6), bool))
    assert (
        cli.main(["map", str(tmp_path / "net.net"), "--target", "loihi1", "--input", str(tmp_path / "spikes.npy")]) == 0
    )
    out = capsys.readouterr().out
    assert "measured: simulated 1 sample(s) x 5 steps" in out
    assert "120.0 x 23.6 pJ" in out  # 6 inputs x 4 synapses x 5 steps


def test_map_command_refuses_steps_beyond_the_spikes(tmp_path, capsys):
    from neurodeploy.exporters.netx import write_netx

    net = dense(np.ones((4, 6), int))
    write_netx(net, tmp_path / "net.net")
    spikes = tmp_path / "spikes.npy"
    np.save(spikes, np.ones((5, 6), bool))
    argv = ["map", str(tmp_path / "net.net"), "--target", "loihi1", "--input", str(spikes), "--steps", "9"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{spikes}: covers 5 steps, --steps 9 were asked for" in err and "Traceback" not in err

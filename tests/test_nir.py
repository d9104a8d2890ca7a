"""NIR files: exact round trips of our netlists, a float peer (snnTorch) running them, foreign graphs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from neurodeploy.conformance import random_case  # noqa: E402
from neurodeploy.errors import InputFileError  # noqa: E402
from neurodeploy.exporters.nir import NirExportError, read_nir, write_nir  # noqa: E402
from neurodeploy.netlist import Conv, CubaNeuron, Dense, Flatten, Netlist  # noqa: E402
from neurodeploy.nir_import import nir_to_float_graph  # noqa: E402
from neurodeploy.sim import simulate  # noqa: E402


def assert_same(a, b, where: str = "netlist") -> None:
    """Equal field by field: arrays equal in shape and value, containers of the same type."""
    assert type(a) is type(b) or not (isinstance(a, (tuple, list, dict)) or dataclasses.is_dataclass(a)), where
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.shape == b.shape and np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{k}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _square_able(net: Netlist) -> bool:
    """NIR's shape inference needs kernels that zero taps can make square (sides of equal parity)."""
    return all(np.subtract(*layer.weight.shape[2:]) % 2 == 0 for layer in net.layers if isinstance(layer, Conv))


def test_random_netlists_round_trip_exactly(tmp_path):
    """Random nets of every kind (input layers, grouped and dilated convs, delays, biases per
    channel or neuron, resets) come back equal in every field, through NIR's own type-checked reader."""
    rng = np.random.default_rng(3)
    written = convs = 0
    for k in range(24):
        net = random_case(rng).net
        net.output_window = (1, 9)
        net.meta = {"source": "test", "scale": (0.5, 2), "hist": np.arange(4.0), "nested": {"ok": True, "n": None}}
        net.layers[-1].name = "readout"
        path = tmp_path / f"net{k}.nir"
        if not _square_able(net):
            with pytest.raises(NirExportError, match="kernel cannot be written"):
                write_nir(net, path)
            continue
        write_nir(net, path)
        assert_same(net, read_nir(path))  # through nir.read, whose type checks are on
        written += 1
        convs += any(isinstance(layer, Conv) for layer in net.layers)
    assert written >= 12 and convs >= 3


def test_pilotnet_round_trips(conformance_dir, tmp_path):
    read_netx = pytest.importorskip("neurodeploy.exporters.netx").read_netx
    net = read_netx(conformance_dir / "gts" / "pilotnet_lif" / "network.net")
    write_nir(net, tmp_path / "pilotnet.nir")
    assert_same(net, read_nir(tmp_path / "pilotnet.nir"))


def test_float_parameters_describe_the_chip():
    """Euler with step dt: I += (dt/tau_syn)(w_in x - I), v += (dt/tau_mem)(v_leak - v + r I)."""
    from neurodeploy.exporters.nir import netlist_to_nir

    layer = Dense(
        weight=np.array([[3, -5], [7, 1]]),
        neuron=CubaNeuron(vth=90, du=1023, dv=512, bias_exp=6),
        bias=np.array([2, -1]),
        weight_exp=-1,
        weight_bits=8,
    )
    graph = netlist_to_nir(Netlist([layer], input_shape=(2,)), dt=1e-3)
    linear, cuba = graph.nodes["l0_dense"], graph.nodes["l0_neurons"]
    np.testing.assert_array_equal(linear.weight, [[1.0, -3.0], [3.0, 0.0]])  # [2, -6, 6, 0] as the core holds them, / 2
    np.testing.assert_allclose(1e-3 / cuba.tau_syn, 1024 / 4096)
    np.testing.assert_allclose(1e-3 / cuba.tau_mem, 512 / 4096)
    np.testing.assert_allclose(cuba.w_in * 1e-3 / cuba.tau_syn, 1.0)
    np.testing.assert_allclose(cuba.r * 1e-3 / cuba.tau_mem, 1.0)
    np.testing.assert_allclose(cuba.v_leak * 1e-3 / cuba.tau_mem, [2.0, -1.0])  # (bias << 6) / 2**6 a step
    np.testing.assert_array_equal(cuba.v_threshold, [90.0, 90.0])
    np.testing.assert_array_equal(linear.metadata["weight"], layer.weight)
    assert (cuba.metadata["neuron_du"], cuba.metadata["neuron_dv"], cuba.metadata["neuron_vth"]) == (1023, 512, 90)
    assert graph.metadata["dt"] == 1e-3


def _snntorch_run(path, x: np.ndarray, probe: str | None = None):
    """Import our file with snnTorch and run it step by step; spikes (B, T, n) and, if asked,
    the probed layer's membrane before its reset (B, T, n)."""
    torch = pytest.importorskip("torch")
    import_from_nir = pytest.importorskip("snntorch.import_nir").import_from_nir
    module = import_from_nir(nir.read(path))
    lif = getattr(module, probe) if probe else None
    spikes, before, state, mem = [], [], None, 0.0
    with torch.no_grad():
        for t in range(x.shape[1]):
            out, state = module(torch.tensor(x[:, t], dtype=torch.float32), state)
            spikes.append(out.numpy())
            if lif is not None:
                before.append((lif.beta * mem + lif.syn).numpy())
                mem = lif.mem.clone()
    return np.stack(spikes, 1), (np.stack(before, 1) if before else None)


def test_snntorch_runs_our_file_integrate_and_fire(tmp_path):
    """A dense IF net (du = 4095: the current is the input; dv = 0: no leak; no bias) is where the
    float peer and the chip compute the same thing: integer sums, no truncation, values far
    below float32's 2**24. The one difference is latency: each dense layer delivers one step
    later on the chip, so our last layer lags snnTorch's by the two layers' two steps."""
    rng = np.random.default_rng(0)
    neuron = CubaNeuron(vth=40, du=4095, dv=0)
    net = Netlist(
        [
            Dense(weight=rng.integers(-20, 40, (30, 20)), neuron=neuron),
            Dense(weight=rng.integers(-20, 40, (10, 30)), neuron=neuron),
        ],
        input_shape=(20,),
    )
    write_nir(net, tmp_path / "if.nir")
    x = rng.random((4, 30, 20)) < 0.3
    peer, _ = _snntorch_run(tmp_path / "if.nir", x)
    assert peer.shape == (4, 30, 10)
    ours = simulate(net, 30, spikes=x).s[1]
    np.testing.assert_array_equal(peer[:, :-2], ours[:, 2:])
    assert ours.sum() > 100


def test_snntorch_agrees_with_a_leaky_layer_away_from_threshold(tmp_path):
    """With decays (du, dv > 0) the chip truncates u and v toward zero each step while snnTorch
    multiplies in float, so the membranes drift apart by at most
    (1/64)/(1 - alpha) for u and (1/64 + that)/(1 - beta) for v, in threshold units (1.1 here).
    Spikes must agree (one step of latency apart) at every step before the peer's membrane
    first comes within 2 of the threshold; after that the two may part ways."""
    rng = np.random.default_rng(1)
    net = Netlist(
        [Dense(weight=rng.integers(-30, 60, (40, 20)), neuron=CubaNeuron(vth=100, du=511, dv=512))], input_shape=(20,)
    )
    write_nir(net, tmp_path / "lif.nir")
    x = rng.random((8, 40, 20)) < 0.3
    peer, membrane = _snntorch_run(tmp_path / "lif.nir", x, probe="l0_neurons")
    ours = simulate(net, 40, spikes=x).s[0][:, 1:]
    peer, membrane = peer[:, :-1], membrane[:, :-1]
    near = np.abs(membrane - 100) < 2.0
    first_near = np.where(near.any(axis=1), near.argmax(axis=1), near.shape[1])
    trusted = np.arange(near.shape[1])[None, :, None] < first_near[:, None, :]
    np.testing.assert_array_equal(peer[trusted], ours[trusted])
    assert trusted.mean() > 0.5 and ours[trusted].sum() > 100


def test_snntorch_runs_a_conv_graph(tmp_path):
    """Shapes only: NIR shapes carry no batch axis (snnTorch maps our Flatten to
    torch.nn.Flatten(0, -1)), so the peer runs one unbatched sample a step."""
    torch = pytest.importorskip("torch")
    import_from_nir = pytest.importorskip("snntorch.import_nir").import_from_nir
    rng = np.random.default_rng(2)
    net = Netlist(
        [
            Conv(weight=rng.integers(-5, 6, (4, 2, 3, 3)), neuron=CubaNeuron(vth=10, du=100, dv=10), stride=(2, 1)),
            Flatten(),
            Dense(weight=rng.integers(-50, 50, (7, 4 * 3 * 4)), neuron=CubaNeuron(vth=5, du=4095, dv=300)),
        ],
        input_shape=(2, 8, 6),
    )
    write_nir(net, tmp_path / "conv.nir")
    module, state = import_from_nir(nir.read(tmp_path / "conv.nir")), None
    with torch.no_grad():
        for frame in rng.random((5, 2, 8, 6)) < 0.5:
            out, state = module(torch.tensor(frame, dtype=torch.float32), state)
            assert tuple(out.shape) == (7,)


def test_float_graph_of_an_snntorch_export(tmp_path):
    """snnTorch writes Affine + CubaLIF/LIF (per-neuron parameters, unbatched sample shape)."""
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    export_to_nir = pytest.importorskip("snntorch.export_nir").export_to_nir

    def full(n, value):
        return torch.full((n,), value)

    model = torch.nn.Sequential(
        torch.nn.Linear(12, 8),
        snn.Synaptic(alpha=full(8, 0.8), beta=full(8, 0.9), threshold=full(8, 1.0), init_hidden=True),
        torch.nn.Linear(8, 3),
        snn.Leaky(beta=full(3, 0.75), threshold=full(3, 0.5), init_hidden=True, output=True),
    )
    nir.write(tmp_path / "snn.nir", export_to_nir(model, torch.zeros(12)))
    ops = nir_to_float_graph(tmp_path / "snn.nir", dt=1e-4)
    assert [op["op"] for op in ops] == ["input", "dense", "neuron", "dense", "neuron"]
    assert [op["shape"] for op in ops] == [(12,), (8,), (8,), (3,), (3,)]
    np.testing.assert_allclose(ops[1]["weight"], model[0].weight.detach().numpy())
    np.testing.assert_allclose(ops[1]["bias"], model[0].bias.detach().numpy())
    cuba, lif = ops[2], ops[4]
    assert cuba["model"] == "cuba" and lif["model"] == "lif" and cuba["dt"] == 1e-4
    np.testing.assert_allclose(1 - 1e-4 / cuba["tau_syn"], 0.8, rtol=1e-6)
    np.testing.assert_allclose(1 - 1e-4 / lif["tau_mem"], 0.75, rtol=1e-6)
    np.testing.assert_allclose(lif["v_threshold"], 0.5)


def test_float_graph_of_hand_built_graphs(tmp_path):
    conv = nir.Conv2d(
        input_shape=(6, 6),
        weight=np.ones((4, 2, 3, 3)),
        stride=1,
        padding="same",
        dilation=1,
        groups=1,
        bias=np.zeros(4),
    )
    pool = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    graph = nir.NIRGraph.from_list(
        conv,
        nir.IF(r=np.ones((4, 6, 6)), v_threshold=np.ones((4, 6, 6))),
        pool,
        nir.Flatten(input_type={"input": np.array([4, 3, 3])}, start_dim=0),
        nir.Affine(weight=np.ones((5, 36)), bias=np.arange(5.0)),
        nir.LIF(tau=np.full(5, 0.01), r=np.ones(5), v_leak=np.zeros(5), v_threshold=np.ones(5)),
    )
    graph.metadata = {"dt": 0.001}
    ops = nir_to_float_graph(graph)
    assert [(op["op"], op.get("model")) for op in ops] == [
        ("input", None),
        ("conv", None),
        ("neuron", "if"),
        ("sumpool", None),
        ("flatten", None),
        ("dense", None),
        ("neuron", "lif"),
    ]
    assert ops[1]["padding"] == (1, 1) and ops[3]["kernel"] == (2, 2) and ops[3]["shape"] == (4, 3, 3)
    assert ops[6]["dt"] == 0.001 and ops[5]["bias"].tolist() == [0, 1, 2, 3, 4]


def test_float_graph_of_our_own_file(tmp_path):
    net = Netlist(
        [Dense(weight=np.array([[4, -2]]), neuron=CubaNeuron(vth=7, du=4095, dv=0), weight_exp=2)], input_shape=(2,)
    )
    write_nir(net, tmp_path / "net.nir")
    ops = nir_to_float_graph(tmp_path / "net.nir")
    assert [op["op"] for op in ops] == ["input", "dense", "neuron"]
    np.testing.assert_array_equal(ops[1]["weight"], [[16.0, -8.0]])
    assert ops[2]["dt"] == pytest.approx(1e-4)


def test_unsupported_graphs_are_refused_by_name(tmp_path):
    li = nir.NIRGraph.from_list(
        nir.Linear(weight=np.ones((3, 2))), nir.LI(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3))
    )
    with pytest.raises(InputFileError, match="node 'li' is a LI"):
        nir_to_float_graph(li)
    fork = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2])}),
            "a": nir.Linear(weight=np.ones((2, 2))),
            "b": nir.Linear(weight=np.ones((2, 2))),
            "output": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[("input", "a"), ("input", "b"), ("a", "output"), ("b", "output")],
    )
    with pytest.raises(InputFileError, match="node 'input' feeds 2 nodes"):
        nir_to_float_graph(fork)


def test_read_nir_refuses_foreign_and_broken_files(tmp_path):
    nir.write(tmp_path / "foreign.nir", nir.NIRGraph.from_list(nir.Linear(weight=np.ones((3, 2)))))
    with pytest.raises(InputFileError, match="nir_to_float_graph"):
        read_nir(tmp_path / "foreign.nir")
    (tmp_path / "junk.nir").write_bytes(b"not hdf5")
    with pytest.raises(InputFileError, match=r"junk\.nir: not a readable NIR graph"):
        read_nir(tmp_path / "junk.nir")
    with pytest.raises(InputFileError, match="no such file"):
        read_nir(tmp_path / "missing.nir")

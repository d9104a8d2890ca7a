"""``neurodeploy inspect`` and ``neurodeploy run`` do what they say."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from neurodeploy.cli import main
from neurodeploy.commands.inspect import synapse_count
from neurodeploy.counters import COUNTERS
from neurodeploy.exporters.netx import read_netx, write_netx
from neurodeploy.netlist import Conv, CubaNeuron, Dense, Flatten, Netlist
from neurodeploy.sim import conv2d, simulate


@pytest.fixture
def dense_file(tmp_path):
    rng = np.random.default_rng(0)
    net = Netlist(
        [
            Dense(rng.integers(-60, 61, (8, 6)), CubaNeuron(3, 100, 200, 6)),
            Dense(rng.integers(0, 90, (2, 8)), CubaNeuron(2, 0, 0, 6)),
        ],
        input_shape=(6,),
        reset_interval=9,
    )
    path = tmp_path / "dense.net"
    write_netx(net, path)
    return path


@pytest.fixture
def tiny_bias(conformance_dir, tmp_path):
    path = tmp_path / "bias.npy"
    np.save(path, np.load(conformance_dir / "gts/tinynet/input_bias.npy").transpose(2, 1, 0).astype(np.int32))
    return path


def test_inspect_prints_the_layer_table(conformance_dir, capsys):
    path = conformance_dir / "tiny.net"
    assert main(["inspect", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["#", "type", "shape"])
    rows = [line.split() for line in lines[header + 1 :]]
    net = read_netx(path)
    assert rows[1] == [
        "1",
        "conv",
        "24x6x6",
        "5x5",
        "2x2",
        "0x0",
        "-",
        "0",
        "cuba",
        "25",
        "4095",
        "1024",
        "-",
        "864",
        str(synapse_count(net.layers[1])),
    ]
    assert rows[0][:3] == ["0", "input", "3x16x16"]
    assert rows[-1] == ["total", str(768 + 864 + 36), str(synapse_count(net.layers[1]) + synapse_count(net.layers[2]))]


@pytest.mark.parametrize("stride,padding,dilation,groups", [((1, 1), (0, 0), (1, 1), 1), ((2, 1), (1, 2), (2, 1), 2)])
def test_conv_synapse_count_by_brute_force(stride, padding, dilation, groups):
    rng = np.random.default_rng(1)
    weight = rng.integers(-2, 3, (4, 4 // groups, 3, 2))
    layer = Conv(weight, CubaNeuron(1, 0, 0), stride=stride, padding=padding, dilation=dilation, groups=groups)
    Netlist([layer], input_shape=(4, 7, 6))
    connected = 0
    for n in range(4 * 7 * 6):  # each input neuron alone: which outputs does it reach?
        x = np.zeros((1, 4 * 7 * 6))
        x[0, n] = 1
        out = conv2d(
            x.reshape(1, 4, 7, 6),
            weight.astype(float),
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
        )
        connected += int(np.count_nonzero(out))
    assert synapse_count(layer) == connected


def test_run_saves_what_simulate_computes(conformance_dir, tiny_bias, tmp_path):
    out = tmp_path / "out.npz"
    assert (
        main(
            [
                "run",
                str(conformance_dir / "tiny.net"),
                "--steps",
                "20",
                "--input-bias",
                str(tiny_bias),
                "--reset-interval",
                "17",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    rec = simulate(
        read_netx(conformance_dir / "tiny.net"), 20, bias=np.load(tiny_bias), record=("s", "u", "v"), reset_interval=17
    )
    with np.load(out) as saved:
        expected = {f"{n}{i}" for n in "suv" for i in range(3)} | set(COUNTERS)
        expected |= {"layers", "output_counts", "conventions"}
        assert set(saved.files) == expected
        for name in "suv":
            for i in range(3):
                want = getattr(rec, name)[i]
                assert (
                    saved[f"{name}{i}"].shape
                    == want.shape
                    == (1, 20) + read_netx(conformance_dir / "tiny.net").layers[i].shape
                )
                assert np.array_equal(saved[f"{name}{i}"], want)
        assert saved["layers"].tolist() == [0, 1, 2]
        for counter in COUNTERS:
            assert saved[counter].tolist() == [getattr(rec, counter)[i] for i in range(3)]
        assert np.array_equal(saved["output_counts"], rec.output_counts)


def test_run_with_spikes_and_defaults(dense_file, tmp_path):
    spikes = np.random.default_rng(2).integers(0, 2, (15, 6)).astype(np.int8)  # no batch axis
    np.save(tmp_path / "in.npy", spikes)
    out = tmp_path / "out.npz"
    assert (
        main(
            [
                "run",
                str(dense_file),
                "--steps",
                "12",
                "--input",
                str(tmp_path / "in.npy"),
                "--record",
                "s",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    rec = simulate(read_netx(dense_file), 12, spikes=spikes[None, :12].astype(bool))  # the file's reset interval
    with np.load(out) as saved:
        assert {f for f in saved.files if f[0] in "suv" and f[1:].isdigit()} == {"s0", "s1"}
        assert np.array_equal(saved["s1"], rec.s[1])
        assert saved["spike_count"].tolist() == [rec.spike_count[0], rec.spike_count[1]]


def test_reset_interval_zero_means_never(dense_file, tmp_path):
    np.save(tmp_path / "in.npy", np.ones((1, 20, 6), bool))
    out = tmp_path / "out.npz"
    assert (
        main(
            [
                "run",
                str(dense_file),
                "--steps",
                "20",
                "--input",
                str(tmp_path / "in.npy"),
                "--record",
                "v",
                "--reset-interval",
                "0",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    rec = simulate(read_netx(dense_file), 20, spikes=np.ones((1, 20, 6), bool), record=("v",), reset_interval=None)
    with np.load(out) as saved:
        assert np.array_equal(saved["v1"], rec.v[1])


@pytest.mark.parametrize(
    "array,message",
    [
        (np.ones((1, 10, 5)), "expected shape (batch, steps, 6)"),
        (np.ones((1, 3, 6)), "covers 3 steps, 10 were asked for"),
        (np.full((1, 10, 6), np.nan), "non-finite"),
        (np.full((1, 10, 6), 0.5), "fractional"),
        (np.full((1, 10, 6), 2), "must be 0 or 1"),
        (np.array([[{"a": 1}]], dtype=object), "not a readable .npy array"),
    ],
)
def test_bad_input_arrays_are_refused(dense_file, tmp_path, capsys, array, message):
    np.save(tmp_path / "in.npy", array, allow_pickle=True)
    out = tmp_path / "out.npz"
    assert main(["run", str(dense_file), "--steps", "10", "--input", str(tmp_path / "in.npy"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'in.npy'}: " in err and message in err, err
    assert not out.exists()


def test_input_bias_needs_an_input_layer(dense_file, tmp_path, capsys):
    np.save(tmp_path / "b.npy", np.ones(6, int))
    assert (
        main(
            [
                "run",
                str(dense_file),
                "--steps",
                "3",
                "--input-bias",
                str(tmp_path / "b.npy"),
                "-o",
                str(tmp_path / "o.npz"),
            ]
        )
        == 2
    )
    assert "needs an input layer" in capsys.readouterr().err


def test_bias_shape_is_checked(conformance_dir, tmp_path, capsys):
    np.save(tmp_path / "b.npy", np.ones((16, 16, 3), int))  # Lava's (x, y, f), not (C, H, W)
    assert (
        main(
            [
                "run",
                str(conformance_dir / "tiny.net"),
                "--steps",
                "3",
                "--input-bias",
                str(tmp_path / "b.npy"),
                "-o",
                str(tmp_path / "o.npz"),
            ]
        )
        == 2
    )
    assert "expected shape ([batch,] 3, 16, 16)" in capsys.readouterr().err


@pytest.mark.parametrize("name,message", [("net.onnx2", "unknown netlist format"), ("missing.net", "no such file")])
def test_unreadable_netlists(tmp_path, capsys, name, message):
    assert main(["inspect", str(tmp_path / name)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.lava
def test_run_in_lava_gives_the_simulators_arrays(dense_file, tmp_path, lava_exe):
    np.save(tmp_path / "in.npy", np.random.default_rng(3).integers(0, 2, (1, 10, 6)))
    for backend in ("sim", "lava"):
        assert (
            main(
                [
                    "run",
                    str(dense_file),
                    "--steps",
                    "10",
                    "--input",
                    str(tmp_path / "in.npy"),
                    "--backend",
                    backend,
                    "-o",
                    str(tmp_path / f"{backend}.npz"),
                ]
            )
            == 0
        )
    with np.load(tmp_path / "sim.npz") as sim, np.load(tmp_path / "lava.npz") as lava:
        for key in ("s0", "u0", "v0", "s1", "u1", "v1", "spike_count"):
            assert np.array_equal(sim[key], lava[key]), key
        assert "synaptic_events" not in lava.files  # Lava does not count them


PILOTNET = "gts/pilotnet_lif"


def test_run_conventions_loihi2_gives_the_chip_trace_past_the_reset(conformance_dir, tmp_path):
    image = np.load(conformance_dir / PILOTNET / "image.npy").transpose(2, 1, 0)
    np.save(tmp_path / "image.npy", image.astype(np.int32))
    golden = np.load(conformance_dir / PILOTNET / "conv-1-v.npy").transpose(3, 2, 1, 0)  # (x, y, f, t) -> t, C, H, W
    for conventions, mismatches in (("loihi2", 0), ("lava", None)):
        out = tmp_path / f"{conventions}.npz"
        assert (
            main(
                [
                    "run",
                    str(conformance_dir / PILOTNET / "network.net"),
                    "--steps",
                    "24",
                    "--input-bias",
                    str(tmp_path / "image.npy"),
                    "--reset-interval",
                    "16",
                    "--record",
                    "v",
                    "--conventions",
                    conventions,
                    "-o",
                    str(out),
                ]
            )
            == 0
        )
        with np.load(out) as saved:
            assert str(saved["conventions"]) == conventions
            wrong = int(np.count_nonzero(saved["v2"][0] != golden))
        assert wrong == 0 if mismatches == 0 else wrong > 0


def test_run_refuses_loihi2_conventions_on_the_lava_backend(dense_file, tmp_path, capsys):
    spikes = np.zeros((4, 6), np.int8)
    np.save(tmp_path / "in.npy", spikes)
    code = main(
        [
            "run",
            str(dense_file),
            "--steps",
            "4",
            "--input",
            str(tmp_path / "in.npy"),
            "--backend",
            "lava",
            "--conventions",
            "loihi2",
            "-o",
            str(tmp_path / "out.npz"),
        ]
    )
    assert code == 2
    assert "conventions" in capsys.readouterr().err
    assert not (tmp_path / "out.npz").exists()


@pytest.fixture
def shapeless_conv(tmp_path):
    """A conv -> flatten -> dense netx file laid out as SLAYER's export_hdf5 writes it: no input layer, no shape."""
    rng = np.random.default_rng(3)
    net = Netlist(
        [
            Conv(
                rng.integers(-90, 91, (4, 2, 3, 3)),
                CubaNeuron(3, 100, 200, 6),
                in_shape=(2, 7, 9),
                stride=(2, 2),
                padding=(1, 1),
            ),
            Flatten((4, 4, 5)),
            Dense(rng.integers(-90, 91, (3, 80)), CubaNeuron(3, 100, 200, 6)),
        ],
        input_shape=(2, 7, 9),
    )
    write_netx(net, tmp_path / "full.net")
    path = tmp_path / "slayer.net"
    with h5py.File(tmp_path / "full.net", "r") as src, h5py.File(path, "w") as dst:
        assert src["layer/0/type"][0] == b"input"
        for i in range(1, len(src["layer"])):
            src.copy(src[f"layer/{i}"], dst.require_group("layer"), name=str(i - 1))
    return net, path


def test_a_netx_file_without_input_shape_takes_it_from_the_input_or_the_option(shapeless_conv, tmp_path, capsys):
    net, path = shapeless_conv
    spikes = np.random.default_rng(4).random((2, 12, 2, 7, 9)) < 0.4
    np.save(tmp_path / "in.npy", spikes.astype(np.int8))
    assert (
        main(["run", str(path), "--steps", "12", "--input", str(tmp_path / "in.npy"), "-o", str(tmp_path / "a.npz")])
        == 0
    )
    expected = simulate(net, 12, spikes=spikes)
    with np.load(tmp_path / "a.npz") as saved:
        assert expected.s[2].any()
        assert np.array_equal(saved["s2"], expected.s[2])
    assert main(["inspect", str(path), "--input-shape", "2,7,9"]) == 0
    assert "input shape 2x7x9" in capsys.readouterr().out
    assert (
        main(["map", str(path), "--target", "loihi1", "--input-shape", "2,7,9", "--steps", "12"]) == 0
    )  # odd mixed weights: 9 bits
    assert read_netx(path, input_shape=(2, 7, 9)).layers[0].shape == (4, 4, 5)


def test_a_netx_file_without_input_shape_says_what_to_give(shapeless_conv, capsys):
    _, path = shapeless_conv
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "--input-shape C,H,W" in err and "/layer/0" in err


def test_run_numbers_layers_alike_in_every_line(shapeless_conv, tmp_path, capsys):
    """Past a flatten, the fault lines name a layer by its index in the netlist, as the spike counts,
    the saved arrays and ``inspect`` do."""
    net, _ = shapeless_conv
    write_netx(net, tmp_path / "net.net")
    np.save(tmp_path / "in.npy", (np.random.default_rng(5).random((1, 12, 2, 7, 9)) < 0.4).astype(np.int8))
    args = ["run", str(tmp_path / "net.net"), "--steps", "12", "--input", str(tmp_path / "in.npy")]
    assert main([*args, "-o", str(tmp_path / "out.npz")]) == 0
    out = capsys.readouterr().out
    assert "spikes by layer 0: " in out and ", 2: " in out
    assert "  layer 2 (dense 80->3): u wraps" in out and "layer 1 (dense" not in out
    with np.load(tmp_path / "out.npz") as saved:
        assert "s2" in saved.files and "s1" not in saved.files

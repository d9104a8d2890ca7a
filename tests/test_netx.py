"""netx HDF5: lava-dl's files load, read-write-read is the identity, bad files are refused."""

from __future__ import annotations

import dataclasses
import shutil

import h5py
import numpy as np
import pytest
from neurodeploy.errors import InputFileError
from neurodeploy.exporters.netx import NetxExportError, netx_weight_encoding, read_netx, write_netx
from neurodeploy.netlist import Conv, CubaNeuron, Dense, Flatten, Input, Netlist
from neurodeploy.sim import simulate


def same_netlist(a: Netlist, b: Netlist) -> bool:
    """Field-by-field equality, arrays compared by value."""

    def same(x, y) -> bool:
        if dataclasses.is_dataclass(x):
            return type(x) is type(y) and all(
                same(getattr(x, f.name), getattr(y, f.name)) for f in dataclasses.fields(x)
            )
        if isinstance(x, (list, tuple)):
            return isinstance(y, (list, tuple)) and len(x) == len(y) and all(same(p, q) for p, q in zip(x, y))
        if isinstance(x, dict):
            return isinstance(y, dict) and x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            return x is not None and y is not None and np.array_equal(x, y)
        return x == y

    return same(a, b)


def roundtrip(net: Netlist, tmp_path, name: str = "net.net") -> Netlist:
    write_netx(net, tmp_path / name)
    return read_netx(tmp_path / name)


def neuron(rng) -> CubaNeuron:
    return CubaNeuron(
        vth=int(rng.integers(1, 120)),
        du=int(rng.integers(-1, 4096)),
        dv=int(rng.choice([0, 1024, 4096, int(rng.integers(0, 4097))])),
        bias_exp=6,
    )


def random_netlists(seed: int) -> list[Netlist]:
    """Small netlists covering conv geometry, groups, flatten, delays, biases and every sign mode.

    The first holds most of it (it is the one run in Lava); the others add an input
    layer with biases and a dense-first network.
    """
    rng = np.random.default_rng(seed)
    ints = rng.integers
    inhibitory = np.minimum(ints(-98, 40, (5, 12)), 0)
    inhibitory[0, 0] = -99  # netx loses an inhibitory minimum of minus a power of two
    conv_net = Netlist(
        [
            Conv(
                ints(-8, 9, (6, 2, 3, 2)),
                neuron(rng),
                stride=(2, 1),
                padding=(1, 0),
                dilation=(1, 2),
                groups=2,
                bias=ints(-30, 40, 6),
            ),
            Conv(ints(-6, 7, (4, 6, 2, 2)), neuron(rng), bias=ints(-30, 40, (4, 4, 5)), weight_exp=1),  # (6, 5, 6) in
            Flatten(),
            Dense(ints(-40, 41, (10, 80)), neuron(rng), bias=ints(-20, 30, 10), delay=ints(0, 6, (10, 80))),
            Dense(ints(-90, 91, (12, 10)), neuron(rng), weight_bits=6, weight_exp=-2, bias=ints(-9, 9, 12)),
            Dense(inhibitory, neuron(rng), bias=ints(0, 30, 5)),
            Dense(ints(0, 120, (3, 5)), neuron(rng), weight_exp=1, name="out"),
        ],
        input_shape=(4, 9, 8),
        reset_interval=7,
        output_window=(2, 9),
        meta={"simulation": {"Ts": 1, "tSample": 9}},
    )
    input_net = Netlist(
        [
            Input((2, 5, 5), neuron(rng), bias=ints(0, 40, (2, 5, 5))),
            Conv(ints(-5, 6, (3, 2, 3, 3)), neuron(rng), padding=(1, 1)),
            Flatten(),
            Dense(ints(-90, 91, (4, 75)), neuron(rng)),
        ],
        reset_interval=5,
        reset_offset=2,
    )
    dense_net = Netlist(
        [
            Dense(ints(1, 200, (7, 12)), neuron(rng), delay=ints(0, 3, (7, 12))),
            Dense(ints(-250, 250, (2, 7)), neuron(rng)),
        ],
        input_shape=(12,),
    )
    return [conv_net, input_net, dense_net]


def same_run(a: Netlist, b: Netlist, seed: int = 0, steps: int = 12) -> bool:
    rng = np.random.default_rng(seed)
    spikes = None if isinstance(a.layers[0], Input) else rng.random((2, steps) + a.input_shape) < 0.3
    ra = simulate(a, steps, spikes=spikes, record=("s", "u", "v"))
    rb = simulate(b, steps, spikes=spikes, record=("s", "u", "v"))
    pairs = list(zip(a.neuron_layers, b.neuron_layers))  # flatten layers may differ in number
    return len(a.neuron_layers) == len(b.neuron_layers) and all(
        np.array_equal(getattr(ra, n)[i], getattr(rb, n)[j]) for n in "suv" for i, j in pairs
    )


# ---------------------------------------------------------------------------- lava-dl's files


def test_tinynet_loads(conformance_dir):
    net = read_netx(conformance_dir / "tiny.net")
    assert [layer.kind for layer in net.layers] == ["input", "conv", "conv"]
    assert [layer.shape for layer in net.layers] == [(3, 16, 16), (24, 6, 6), (36, 1, 1)]
    assert net.layers[0].neuron == CubaNeuron(vth=25, du=4095, dv=1024, bias_exp=6)
    assert not net.layers[0].bias.any()  # netx ignores the file's scalar input transform
    assert net.layers[1].stride == (2, 2) and net.layers[1].bias.shape == (24,)
    assert net.meta == {"simulation": {"Ts": 1, "tSample": 64}}


def test_pilotnet_loads_with_netx_dense_encoding(conformance_dir):
    net = read_netx(conformance_dir / "gts/pilotnet_lif/network.net")
    assert [layer.kind for layer in net.layers] == ["input"] + ["conv"] * 5 + ["flatten"] + ["dense"] * 4
    assert net.layers[4].stride == (2, 1) and net.layers[4].padding == (1, 0)
    dense = net.layers[7:]
    # even weights in [-6, 6]: scale min(127/6, 128/6) -> 2**4, one more bit for the sign, so exp -5;
    # one trailing zero bit, less the sign: 8 - 5 - 0 = 3 bits
    assert [(d.weight_bits, d.weight_exp) for d in dense] == [(3, -5), (4, -4), (5, -3), (6, -2)]
    with h5py.File(conformance_dir / "gts/pilotnet_lif/network.net") as f:
        assert np.array_equal(dense[0].weight, f["layer/7/weight"][()].astype(int) << 5)
    assert dense[3].weight.shape == (1, 10)  # stored 1-D
    assert dense[3].neuron == CubaNeuron(vth=131071, du=4095, dv=0, bias_exp=6)


@pytest.mark.parametrize("name", ["tiny.net", "gts/pilotnet_lif/network.net"])
def test_golden_files_read_write_read(conformance_dir, tmp_path, name):
    net = read_netx(conformance_dir / name)
    assert same_netlist(roundtrip(net, tmp_path), net)


# ---------------------------------------------------------------------------- weight encoding


@pytest.mark.parametrize(
    "weights,mantissas,bits,exp",
    [
        ([3, -5, 7, 1], [96, -160, 224, 32], 4, -5),  # mixed: scale min(127/7, 128/5) -> 2**4, plus the sign bit
        ([1], [128], 1, -7),  # excitatory: 255 / 1 -> 2**7
        ([255, 1], [255, 1], 8, 0),
        ([200, -3], [200, -3], 9, 0),  # mixed, no room to scale, odd: sign and 8 bits
        ([-1, -3], [-64, -192], 2, -6),  # inhibitory: -256 / -3 -> 2**6
        ([0, -4], [0, -256], 1, -6),  # netx calls a maximum of 0 mixed: 128 / 4 -> 2**5, plus one; 8 - 6 - (2 - 1)
    ],
)
def test_netx_weight_encoding(weights, mantissas, bits, exp):
    m, b, e = netx_weight_encoding(np.array(weights))
    assert (m.tolist(), b, e) == (mantissas, bits, exp)


@pytest.mark.parametrize("weights", [[0, 0], [300, 1], [-300, -1]])
def test_netx_weight_encoding_refuses_what_netx_breaks(weights):
    with pytest.raises(ValueError):
        netx_weight_encoding(np.array(weights))


def test_reader_keeps_what_lava_holds_after_truncation(tmp_path):
    """Inhibitory weights [-1, -2]: netx scales -2 to -256, Lava clips it to -255 and truncates to 1 bit."""
    path = tmp_path / "inh.net"
    with h5py.File(path, "w") as f:
        layer = f.create_group("layer/0")
        layer["type"] = np.array([b"dense"])
        layer["shape"] = np.array([1, 1, 1])
        layer["weight"] = np.array([[-1, -2]])
    with pytest.warns(UserWarning, match="clip or truncate"):
        net = read_netx(path)
    got = net.layers[0]
    assert (got.weight.tolist(), got.weight_bits, got.weight_exp) == ([[-128, -128]], 1, -7)
    assert net.input_shape == (2,) and got.neuron.vth == 1 << 17  # netx's neuron for a dense layer without one
    with pytest.raises(NetxExportError, match="layer 0"):
        write_netx(net, tmp_path / "again.net")


# ---------------------------------------------------------------------------- random netlists


@pytest.mark.parametrize("seed", [0, 1])
def test_random_netlists_read_write_read(tmp_path, seed):
    for k, net in enumerate(random_netlists(seed)):
        once = roundtrip(net, tmp_path, f"a{k}.net")
        assert same_run(net, once, seed), f"netlist {k} computes differently after writing"
        assert same_netlist(roundtrip(once, tmp_path, f"b{k}.net"), once), f"netlist {k}"


def test_conventions_and_extras_survive(tmp_path):
    conv_net, input_net, _ = random_netlists(3)
    once = roundtrip(conv_net, tmp_path)
    assert (once.input_shape, once.reset_interval, once.output_window) == ((4, 9, 8), 7, (2, 9))
    assert once.meta == {"simulation": {"Ts": 1, "tSample": 9}}
    assert once.layers[-1].name == "out"
    assert once.layers[1].weight_exp == 0 and np.array_equal(once.layers[1].weight, conv_net.layers[1].weight * 2)
    assert np.array_equal(once.layers[1].bias, conv_net.layers[1].bias)  # per neuron, through Lava's (W, H, C)
    again = roundtrip(input_net, tmp_path)
    assert again.reset_offset == 2 and np.array_equal(again.layers[0].bias, input_net.layers[0].bias)


def test_numbers_are_stored_as_integers(tmp_path):
    path = tmp_path / "ints.net"
    write_netx(random_netlists(8)[0], path)
    kinds = []
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: kinds.append((name, obj.dtype.kind)) if isinstance(obj, h5py.Dataset) else None)
    assert kinds and all(kind in "iuS" for _, kind in kinds), kinds


def test_implied_flatten_is_written(tmp_path):
    rng = np.random.default_rng(4)
    net = Netlist(
        [Conv(rng.integers(-3, 4, (2, 1, 2, 2)), neuron(rng)), Dense(rng.integers(-9, 9, (3, 18)), neuron(rng))],
        input_shape=(1, 4, 4),
    )
    once = roundtrip(net, tmp_path)
    assert [layer.kind for layer in once.layers] == ["conv", "flatten", "dense"]
    assert same_run(net, once)


def test_bias_exponent_folds_into_netx_mantissas(tmp_path):
    rng = np.random.default_rng(5)
    net = Netlist(
        [Dense(rng.integers(1, 9, (3, 4)), CubaNeuron(vth=20, du=100, dv=200, bias_exp=8), bias=np.array([1, -2, 3]))],
        input_shape=(4,),
    )
    once = roundtrip(net, tmp_path)
    assert once.layers[0].neuron.bias_exp == 6 and once.layers[0].bias.tolist() == [4, -8, 12]
    assert same_run(net, once)


# ---------------------------------------------------------------------------- what netx cannot carry


def one_layer(layer, shape) -> Netlist:
    return Netlist([layer], input_shape=shape)


@pytest.mark.parametrize(
    "net,match",
    [
        (
            one_layer(Conv(np.ones((1, 1, 1, 1), int), CubaNeuron(5, 0, 0), weight_exp=-1), (1, 2, 2)),
            "no weight exponent",
        ),
        (one_layer(Dense(np.array([[3, 5]]), CubaNeuron(5, 0, 0), weight_exp=-1), (2,)), "multiples of 2"),
        (one_layer(Dense(np.array([[-1, -2]]), CubaNeuron(5, 0, 0)), (2,)), "power of two"),
        (one_layer(Dense(np.zeros((1, 2), int), CubaNeuron(5, 0, 0)), (2,)), "all-zero"),
        (one_layer(Dense(np.array([[3, 5]]), CubaNeuron(5, 0, 0, bias_exp=3), bias=np.array([4])), (2,)), "bias_exp"),
        (Netlist([Dense(np.ones((2, 2), int), CubaNeuron(5, 0, 0)), Flatten()], input_shape=(2,)), "flatten"),
    ],
)
def test_writer_refuses_naming_the_layer(tmp_path, net, match):
    with pytest.raises(NetxExportError, match=match) as err:
        write_netx(net, tmp_path / "bad.net")
    assert "layer " in str(err.value)
    assert not (tmp_path / "bad.net").exists()


# ---------------------------------------------------------------------------- malformed files


@pytest.fixture
def good_file(tmp_path):
    path = tmp_path / "good.net"
    write_netx(random_netlists(6)[0], path)
    return path


def mutate(path, edit) -> None:
    with h5py.File(path, "a") as f:
        edit(f)


def replace(key, value):
    def edit(f):
        del f[key]
        f[key] = value

    return edit


def huge_bias(f) -> None:
    del f["layer/1/bias"]
    f["layer/1"].create_dataset("bias", shape=(2**30,), dtype="i1")  # declared, never written


@pytest.mark.parametrize(
    "edit,where,message",
    [
        (replace("layer/1/weight", np.ones((6, 2))), "/layer/1/weight", "expected 4 or 5 dimensions, got 2"),
        (replace("layer/1/weight", np.full((6, 2, 3, 2), np.nan)), "/layer/1/weight", "non-finite"),
        (replace("layer/1/weight", np.full((6, 2, 3, 2), b"abc")), "/layer/1/weight", "expected numbers"),
        (replace("layer/2/shape", np.array([4, 4, 4])), "/layer/2/shape", "declares (4, 4, 4)"),
        (replace("layer/4/weight", np.ones((10, 79))), "/layer/4/weight", "expected shape (10, 80)"),
        (replace("layer/5/bias", np.ones(11)), "/layer/5/bias", "expected (12,)"),
        (replace("layer/1/type", np.array([b"pool"])), "/layer/1/type", "'pool' is not supported"),
        (replace("layer/1/type", np.array([b"dense_comp"])), "/layer/1/type", "'dense_comp' is not supported"),
        (replace("layer/1/neuron/type", np.array([b"RF"])), "/layer/1/neuron/type", "'RF'"),
        (replace("layer/1/neuron/iDecay", np.array(5000)), "/layer/1/neuron/iDecay", "outside [0, 4096]"),
        (replace("layer/1/stride", np.array([1, 2, 3])), "/layer/1/stride", "expected 1 or 2 values"),
        (replace("layer/4/delay", np.ones(7)), "/layer/4/delay", "fit neither"),
        (lambda f: f.move("layer/2", "layer/9"), "/layer", "expected layers named 0..n-1"),
        (lambda f: f.__delitem__("layer/1/neuron/vThMant"), "/layer/1/neuron/vThMant", "missing"),
        (lambda f: f.__delitem__("layer"), "/layer", "missing group"),
        (huge_bias, "/layer/1/bias", "more than the limit"),
    ],
)
def test_malformed_files_name_the_file_and_the_path(good_file, edit, where, message):
    mutate(good_file, edit)
    with pytest.raises(InputFileError) as err:
        read_netx(good_file)
    text = str(err.value)
    assert text.startswith(f"{good_file}: {where}"), text
    assert message in text, text


def test_external_links_are_refused(good_file, tmp_path):
    shutil.copy(good_file, tmp_path / "other.net")
    mutate(good_file, lambda f: f.__delitem__("layer/1/weight"))
    mutate(good_file, lambda f: f.__setitem__("layer/1/weight", h5py.ExternalLink("other.net", "layer/1/weight")))
    with pytest.raises(InputFileError, match="/layer/1/weight: is an external link"):
        read_netx(good_file)


def test_not_hdf5(tmp_path):
    path = tmp_path / "text.net"
    path.write_text("not a netx file")
    with pytest.raises(InputFileError, match="cannot open as HDF5"):
        read_netx(path)


def test_conv_first_needs_an_input_shape(good_file):
    mutate(good_file, lambda f: f.__delitem__("layer/0/shape"))
    with pytest.raises(InputFileError, match="input_shape"):
        read_netx(good_file)
    assert read_netx(good_file, input_shape=(4, 9, 8)).input_shape == (4, 9, 8)


# ---------------------------------------------------------------------------- in Lava


@pytest.mark.lava
def test_written_file_runs_in_lava_as_in_our_simulator(tmp_path, lava_exe):
    from neurodeploy.backends.lava import run_netx_in_lava

    net = random_netlists(7)[0]
    path = tmp_path / "lava.net"
    write_netx(net, path)
    steps = 12
    spikes = np.random.default_rng(7).random((1, steps) + net.input_shape) < 0.3
    lava = run_netx_in_lava(path, steps, spikes=spikes, reset_interval=net.reset_interval, record=("s", "u", "v"))
    read = read_netx(path)
    ours = simulate(read, steps, spikes=spikes, record=("s", "u", "v"))
    assert len(lava.s) == len(read.neuron_layers)
    assert sum(int(s.sum()) for s in ours.s.values()) > 0
    for lava_index, i in zip(sorted(lava.s), read.neuron_layers):  # lava keys are the file's layer indices
        for name in "suv":
            assert np.array_equal(getattr(lava, name)[lava_index], getattr(ours, name)[i]), f"layer {i} {name}"


def test_the_lava_dl_call_is_read_back_as_literals_only():
    from neurodeploy.errors import NeurodeployError
    from neurodeploy.exporters.netx import lava_dl_call, lava_dl_call_arguments

    net = Netlist(
        [Dense(np.ones((2, 3), np.int64), CubaNeuron(1, 0, 0, 6))], input_shape=(3,), reset_interval=7, reset_offset=2
    )
    call = lava_dl_call("out/m.net", net)
    assert call == "netx.hdf5.Network(net_config='out/m.net', reset_interval=7, reset_offset=2)"
    assert lava_dl_call_arguments(call) == {"net_config": "out/m.net", "reset_interval": 7, "reset_offset": 2}
    for bad in ("netx.hdf5.Network(net_config=open('x'))", "os.system('x')", "netx.hdf5.Network('m.net')", "("):
        with pytest.raises(NeurodeployError, match=r"not a netx\.hdf5\.Network"):
            lava_dl_call_arguments(bad)

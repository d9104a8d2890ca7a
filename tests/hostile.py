"""Hostile but well-formed inputs: small files (and options) that declare huge or degenerate things.

Each generator writes its files into a folder and returns :class:`Case` s: the command line to
run, the environment it adds, and the outcome expected (``refuse``: exit 2 with these words in
the message; ``run``: exit 0). Nothing is stored; every file is made here, from its parameters.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from fuzzing import npy_bytes, sample_netlist

NEURON = {"type": b"CUBA", "vThMant": 100, "iDecay": 1024, "vDecay": 512}


@dataclass
class Case:
    name: str
    argv: list[str]
    refuse: str | None = None  # words the error must hold; None: the command must succeed
    env: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- netx


def _netx(path: Path, layers: list[dict]) -> Path:
    with h5py.File(path, "w") as h5:
        for i, layer in enumerate(layers):
            group = h5.create_group(f"layer/{i}")
            for key, value in layer.items():
                if isinstance(value, dict):
                    for k, v in value.items():
                        group.create_dataset(f"{key}/{k}", data=np.array([v]) if isinstance(v, bytes) else v)
                elif isinstance(value, tuple):  # (data, chunked and compressed)
                    group.create_dataset(key, data=value[0], chunks=True, compression="gzip")
                else:
                    group.create_dataset(key, data=np.array([value]) if isinstance(value, bytes) else value)
    return path


def _conv(channels: int, size: int, padding: int) -> dict:
    side = size + 2 * padding - 2
    return {
        "type": b"conv",
        "shape": [channels, side, side],
        "weight": np.ones((channels, channels, 3, 3), np.int8),
        "stride": [1, 1],
        "padding": [padding, padding],
        "dilation": [1, 1],
        "groups": 1,
        "neuron": NEURON,
    }


def conv_padding(folder: Path) -> list[Case]:
    """A conv layer padded to 32 M neurons (refused), one of 8 M (runs), ten growing ones (refused)."""
    huge = _netx(folder / "pad-huge.net", [{"type": b"input", "shape": [1, 4, 4]}, _conv(1, 4, 4000)])
    fits = _netx(folder / "pad-fits.net", [{"type": b"input", "shape": [1, 4, 4]}, _conv(1, 4, 1200)])
    layers, size = [{"type": b"input", "shape": [1, 4, 4]}], 4
    for _ in range(10):
        layers.append(_conv(1, size, 400))
        size += 798
    ten = _netx(folder / "pad-ten.net", layers)
    over = "more than the memory budget"
    return [
        Case(
            "netx conv padded to 32M neurons: run --steps 2",
            ["run", str(huge), "--steps", "2", "-o", str(folder / "o.npz")],
            over,
        ),
        Case("netx conv padded to 32M neurons: map", ["map", str(huge), "--target", "loihi2"], over),
        Case("netx conv padded to 32M neurons: inspect", ["inspect", str(huge)], over),
        Case("netx ten padded conv layers: run", ["run", str(ten), "--steps", "2", "-o", str(folder / "o.npz")], over),
        Case(
            "netx conv padded to 2.9M neurons: run --steps 2",
            ["run", str(fits), "--steps", "2", "--record", "s", "-o", str(folder / "fits.npz")],
        ),
    ]


def wide_weights(folder: Path) -> list[Case]:
    """Twelve 4096x4096 dense layers of compressed int8 weights (1.5 GiB once read as int64)."""
    w = np.zeros((4096, 4096), np.int8)
    w[0, 0] = 1
    layers = [{"type": b"input", "shape": [4096, 1, 1]}]
    layers += [{"type": b"dense", "shape": [4096, 1, 1], "weight": (w, True), "neuron": NEURON} for _ in range(12)]
    path = _netx(folder / "int8.net", layers)
    return [Case("netx int8 weights read as int64: inspect", ["inspect", str(path)], "numbers counted as read")]


def many_layers(folder: Path) -> list[Case]:
    layers = [{"type": b"input", "shape": [4]}] + [{"type": b"flatten"} for _ in range(10_000)]
    path = _netx(folder / "layers.net", layers)
    return [Case("netx with 10,000 layers: inspect", ["inspect", str(path)], "at most 256")]


def escaped_strings(folder: Path) -> list[Case]:
    """A layer type and a layer name holding escape codes and a carriage return."""
    net = _netx(folder / "escape.net", [{"type": b"input", "shape": [4]}, {"type": b"po\x1b[2Jol\rX"}])
    return [Case("netx layer type with escape codes", ["inspect", str(net)], "'po\\x1b[2Jol\\rX'")]


# --------------------------------------------------------------------------- run's inputs and steps


def run_inputs(folder: Path) -> list[Case]:
    from neurodeploy.exporters.netx import write_netx

    spiking = sample_netlist(input_layer=False)
    net = folder / "small.net"
    write_netx(spiking, net)
    sparse = folder / "sparse.npy"
    header = npy_bytes(np.zeros((0, 9, 2, 4, 4), bool)).replace(b"(0, 9,", b"(12000000000, 9,")
    with open(sparse, "wb") as fh:  # a 12 GB sparse file whose header declares what it holds
        fh.write(header)
        fh.truncate(len(header) + 12_000_000_000 * 9 * 32)
    empty = folder / "empty.npy"
    empty.write_bytes(npy_bytes(np.zeros((0, 9, 2, 4, 4), bool)))
    out = str(folder / "o.npz")
    return [
        Case(
            "run --steps 1000000000",
            ["run", str(net), "--steps", "1000000000", "-o", out],
            "more than the memory budget",
        ),
        Case(
            "run with a 12 GB sparse .npy",
            ["run", str(net), "--steps", "9", "--input", str(sparse), "-o", out],
            "more than the memory budget",
        ),
        Case("run with an empty batch", ["run", str(net), "--steps", "9", "--input", str(empty), "-o", out], "batch 0"),
    ]


# --------------------------------------------------------------------------- NIR


def _own_nir(folder: Path, name: str, edit: Callable) -> Path:
    import nir
    from neurodeploy.exporters.nir import netlist_to_nir

    graph = netlist_to_nir(sample_netlist(input_layer=False))
    edit(graph)
    path = folder / f"{name}.nir"
    nir.write(path, graph)
    return path


def nir_metadata(folder: Path) -> list[Case]:
    def meta(node: str, key: str, value):
        return lambda g: g.nodes[node].metadata.__setitem__(key, value)

    def conventions(key: str, value):
        def edit(g):
            data = json.loads(g.metadata["netlist"])
            data["dict"][key] = value
            g.metadata["netlist"] = json.dumps(data)

        return edit

    cases = {
        "input shape 2x10**6x10**6": (conventions("input_shape", {"tuple": [2, 10**6, 10**6]}), "memory budget"),
        "padding 10**6": (meta("l0_conv", "padding", np.array([10**6, 10**6])), "memory budget"),
        "weight exponent 2**62": (meta("l1_dense", "weight_exp", np.int64(2**62)), "weight_exp"),
        "conv weight exponent 2**62": (meta("l0_conv", "weight_exp", np.int64(2**62)), "weight_exp"),
        "netlist metadata a list": (lambda g: g.metadata.__setitem__("netlist", json.dumps([1, 2])), "netlist"),
        "meta a list": (conventions("meta", [1]), "meta"),
        "layer kind a number": (meta("l1_neurons", "kind", np.int64(7)), "unknown kind '7'"),
    }
    out = []
    for name, (edit, words) in cases.items():
        path = _own_nir(folder, name.replace(" ", "_").replace("*", ""), edit)
        out.append(Case(f"NIR metadata {name}: inspect", ["inspect", str(path)], words))
    path = _own_nir(folder, "node_list", lambda g: None)
    with h5py.File(path, "r+") as h5:  # a node's metadata a list of numbers where nir writes a group
        del h5["node/nodes/l1_neurons/metadata"]
        h5["node/nodes/l1_neurons/metadata"] = [1, 2]
    out.append(Case("NIR node metadata a list: inspect", ["inspect", str(path)], ""))
    return out


def foreign_nir(folder: Path) -> list[Case]:
    """Float graphs from another tool whose conversion overflows, or with a stride of 0."""
    import nir

    def graph(synapse, tau=1e-3, r=1.0, threshold=1.0) -> nir.NIRGraph:
        n = synapse.weight.shape[0]
        lif = nir.LIF(
            tau=np.full(n, tau),
            r=np.full(n, r),
            v_leak=np.zeros(n),
            v_threshold=np.full(n, threshold),
            v_reset=np.zeros(n),
        )
        shape = np.array(synapse.weight.shape[1:2]) if isinstance(synapse, nir.Linear) else np.array([1, 4, 4])
        if not isinstance(synapse, nir.Linear):  # a conv: its neurons (2, 2, 2), flattened to the output
            lif = nir.LIF(
                tau=np.full((2, 2, 2), tau),
                r=np.ones((2, 2, 2)),
                v_leak=np.zeros((2, 2, 2)),
                v_threshold=np.ones((2, 2, 2)),
                v_reset=np.zeros((2, 2, 2)),
            )
        nodes = {
            "input": nir.Input(input_type={"input": shape}),
            "syn": synapse,
            "lif": lif,
            "output": nir.Output(output_type={"output": np.array(lif.tau.shape)}),
        }
        return nir.NIRGraph(nodes=nodes, edges=[("input", "syn"), ("syn", "lif"), ("lif", "output")])

    cases = {
        "weights near float32's maximum": graph(nir.Linear(weight=np.full((4, 4), 3e38, np.float32))),
        "tau of 1e-300": graph(nir.Linear(weight=np.ones((4, 4), np.float32)), tau=1e-300),
        "weights below float32's smallest": graph(nir.Linear(weight=np.full((4, 4), 1e-45, np.float32))),
        "r of 1e308": graph(nir.Linear(weight=np.ones((4, 4), np.float32)), r=1e308),
        "threshold of 1e-308 under weights of 1e38": graph(
            nir.Linear(weight=np.full((4, 4), 1e38, np.float32)), threshold=1e-308
        ),
        "mixed thresholds 1e-300 and 1e300": graph(
            nir.Linear(weight=np.ones((4, 4), np.float32)), threshold=np.array([1e-300, 1e300, 1, 1])
        ),
    }
    out = []
    for name, g in cases.items():
        path = folder / f"foreign-{len(out)}.nir"
        nir.write(path, g)
        out.append(
            Case(
                f"foreign NIR {name}: export",
                [
                    "export",
                    str(path),
                    "--steps",
                    "5",
                    "--dt",
                    "1e-4",
                    "--calibrate",
                    "0",
                    "-o",
                    str(folder / f"exp{len(out)}"),
                ],
                "",
            )
        )
    conv = nir.Conv2d(
        input_shape=(4, 4),
        weight=np.ones((2, 1, 3, 3), np.float32),
        stride=(1, 1),
        padding=(0, 0),
        dilation=(1, 1),
        groups=1,
        bias=np.zeros(2, np.float32),
    )
    path = folder / "stride0.nir"
    nir.write(path, graph(conv))
    with h5py.File(path, "r+") as h5:
        h5["node/nodes/syn/stride"][...] = 0
    out.append(
        Case(
            "foreign NIR conv stride 0: export",
            ["export", str(path), "--steps", "5", "--dt", "1e-4", "--calibrate", "0", "-o", str(folder / "stride0")],
            "stride",
        )
    )
    return out


# --------------------------------------------------------------------------- checkpoints


def checkpoints(folder: Path) -> list[Case]:
    import torch
    from neurodeploy.models import make_rule, parse_arch, save_checkpoint
    from neurodeploy.models.network import SpikingNetwork

    model = SpikingNetwork(parse_arch("64-16-10"), (1, 8, 8), make_rule("tssl"), "current")
    base = save_checkpoint(
        None, model, encoding={"name": "direct"}, steps=4, dataset="digits", split={}, float_test_accuracy=0.5, seed=0
    )

    def variant(name: str, **changes) -> Path:
        path = folder / f"{name}.pt"
        torch.save({**base, **changes}, path)
        return path

    big = {
        "blocks.1.synapse.weight": torch.zeros(1).expand(100_000_000, 64),
        "blocks.1.synapse.bias": torch.zeros(1).expand(100_000_000),
        "blocks.2.synapse.weight": torch.zeros(1).expand(10, 100_000_000),
        "blocks.2.synapse.bias": torch.zeros(10),
    }
    small = dict(base["state_dict"], **{"blocks.1.synapse.weight": torch.zeros(1).expand(16, 64)})
    sparse = dict(base["state_dict"], **{"blocks.1.synapse.weight": torch.zeros(16, 64).to_sparse()})
    nested: list = []
    for _ in range(5000):
        nested = [nested]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    try:
        deep = variant("deep", arch=nested)
    finally:
        sys.setrecursionlimit(limit)
    export = ["--calibrate", "0", "-o", str(folder / "never")]
    return [
        Case(
            "checkpoint of expanded tensors, 6.4e9 parameters",
            ["export", str(variant("expanded-big", arch="64-100000000-10", state_dict=big)), *export],
            "more than the memory budget",
        ),
        Case(
            "checkpoint of an expanded tensor",
            ["export", str(variant("expanded", state_dict=small)), *export],
            "is a view",
        ),
        Case("checkpoint of a sparse tensor", ["export", str(variant("sparse", state_dict=sparse)), *export], "sparse"),
        Case("checkpoint nested 5000 deep", ["export", str(deep), *export], "arch = "),
    ]


# --------------------------------------------------------------------------- datasets


def _idx(shape: tuple[int, ...], body: bytes = b"") -> bytes:
    return bytes([0, 0, 8, len(shape)]) + b"".join(int(s).to_bytes(4, "big") for s in shape) + body


def mnist(folder: Path) -> list[Case]:
    def root(name: str, images: bytes, gz: bool = False) -> Path:
        raw = folder / name / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for prefix in ("train", "t10k"):
            (raw / f"{prefix}-images-idx3-ubyte{'.gz' if gz else ''}").write_bytes(images)
            (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(_idx((1,), b"\0"))
        return folder / name

    bomb = io.BytesIO()
    with gzip.GzipFile(fileobj=bomb, mode="wb", compresslevel=9) as gz:
        header, chunk = _idx((400_000, 28, 28)), bytes(1 << 20)
        gz.write(header)
        for _ in range(300):
            gz.write(chunk)
    train = ["train", "--dataset", "mnist", "--epochs", "1", "--no-progress", "-o", str(folder / "m.pt"), "--data-root"]
    budget = {"NEURODEPLOY_MAX_BYTES": "512M"}
    return [
        Case(
            "MNIST gzip decompressing to 300 MB (budget 512M)",
            [*train, str(root("bomb", bomb.getvalue(), gz=True))],
            "more than the memory budget",
            budget,
        ),
        Case(
            "IDX header overflowing int64", [*train, str(root("overflow", _idx((2**32 - 1,) * 3)))], "header says shape"
        ),
        Case(
            "IDX header of 0 images of 2**31-1 squared",
            [*train, str(root("zero", _idx((0, 2**31 - 1, 2**31 - 1))))],
            "header says shape",
        ),
    ]


class _Reduce:
    """Pickles as ``func(*args)``."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def cifar(folder: Path) -> list[Case]:
    inner = [0] * 1000
    shared = [inner] * 1000
    batches = {
        "huge shape": {"data": _Reduce(np.ndarray, (10**12,), "u1"), "labels": [0]},
        "stride-0 buffer": {"data": _Reduce(np.ndarray, (10**9, 3072), "u1", b"\0", 0, (0, 0)), "labels": [0]},
        "shared nested lists": {"data": [shared] * 1000, "labels": [shared] * 1000},
        "shared nested labels": {"data": np.zeros((2, 3072), np.uint8), "labels": [shared, shared]},
    }
    cases = []
    for k, (name, batch) in enumerate(batches.items()):
        root = folder / f"cifar{k}" / "cifar-10-batches-py"
        root.mkdir(parents=True)
        data = pickle.dumps(batch, protocol=2)
        for part in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            (root / part).write_bytes(data)
        cases.append(
            Case(
                f"CIFAR-10 pickle with {name} ({len(data)} bytes)",
                [
                    "train",
                    "--dataset",
                    "cifar10",
                    "--data-root",
                    str(root.parent),
                    "--epochs",
                    "1",
                    "--no-progress",
                    "-o",
                    str(folder / "c.pt"),
                ],
                "not a CIFAR-10 python batch" if k < 2 else "expected",
            )
        )
    return cases


# --------------------------------------------------------------------------- targets


def targets(folder: Path) -> list[Case]:
    import neurodeploy

    text = (Path(neurodeploy.__file__).parent / "hw_configs" / "loihi2.toml").read_text()
    cases = []
    for section, key, value in (
        ("synapse", "weight_exp", "[-9007199254740992, 9007199254740992]"),
        ("neuron", "bias_exp", "[0, 4611686018427387904]"),
    ):
        lines = [line for line in text.splitlines() if line.split("=")[0].strip() != key]
        lines.insert(lines.index(f"[{section}]") + 1, f"{key} = {value}")
        path = folder / f"{key}.toml"
        path.write_text("\n".join(lines) + "\n")
        cases.append(
            Case(
                f"target with {key} = {value}", ["map", str(folder / "small.net"), "--target", str(path)], "within +-64"
            )
        )
    return cases


GENERATORS = (
    conv_padding,
    wide_weights,
    many_layers,
    escaped_strings,
    run_inputs,
    nir_metadata,
    foreign_nir,
    checkpoints,
    mnist,
    cifar,
    targets,
)

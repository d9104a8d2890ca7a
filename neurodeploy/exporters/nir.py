"""NIR files: the integer netlist as a NIR graph, and foreign NIR graphs as float ops.

:func:`write_nir` writes a chain ``Input -> [Linear|Conv2d|Flatten] -> CubaLIF ...
-> Output`` whose float parameters describe what the chip computes, read as
NIR's ODEs integrated by forward Euler with step ``dt`` (as snnTorch and Norse
do). Voltages and currents are in the chip's units divided by 2**6, so a layer's
``v_threshold`` is its ``vth`` mantissa:

* synapse weight = ``W * 2**weight_exp`` (dense weights as the core holds them);
* ``dt / tau_syn = (du + 1) / 4096`` and ``dt / tau_mem = dv / 4096`` (a decay of
  zero, ``du = -1`` or ``dv = 0``, becomes ``tau = 2**40 dt``);
* ``w_in = tau_syn / dt`` and ``r = tau_mem / dt``: an input x adds x to the
  current and the current adds itself to v, each step, as on the chip;
* ``v_leak = b * tau_mem / dt`` with ``b = (bias << bias_exp) / 2**6``, the
  constant the chip adds to v each step; ``v_reset = 0``.

The floats leave out what a float peer does not model: decays truncated toward
zero, the floor shift of the weighted sum for a negative ``weight_exp``, u's
24-bit wrap, v's saturation, per-synapse delays, the periodic reset, and the
one step of latency every dense or conv layer adds on the chip (a peer passes
input through all layers in the same step, so the chip's spikes of the k-th
synaptic layer lag the peer's by k steps). All of it is kept exactly in the
nodes' metadata (the integer fields of each layer) and the graph's metadata
(the netlist's run conventions), from which :func:`read_nir` rebuilds the very
same netlist. Metadata needs nir >= 1.0.2.

Graphs written by other frameworks are imported by :mod:`neurodeploy.nir_import`,
which reads them with :func:`read_graph` and walks them with :func:`chain`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from types import ModuleType
from typing import Any

import numpy as np

from neurodeploy import fixed_point as fx
from neurodeploy.atomic import atomic_path
from neurodeploy.errors import InputFileError, NeurodeployError
from neurodeploy.h5check import H5_ERRORS, h5py_module, open_hdf5
from neurodeploy.netlist import (
    MAX_LAYERS,
    Conv,
    CubaNeuron,
    Dense,
    Flatten,
    Input,
    Netlist,
    NetlistError,
    bias_per_neuron,
)

DEFAULT_DT = 1e-4  # seconds a step; snnTorch's fixed NIR convention
NO_DECAY_STEPS = 2.0**40  # tau, in steps, that stands for "no decay"
FORMAT_KEY = "neurodeploy_netlist"  # graph metadata key: format version of our own files
FORMAT_VERSION = 1
LATENCY_NOTE = (
    "on the chip every dense or conv layer delivers its input one step after the spikes "
    "that caused it (plus per-synapse delays); this graph's float semantics have no such latency"
)
# what nir.read raises for a graph it cannot build: HDF5 errors, its asserts and type checks
NIR_READ_ERRORS = (
    *H5_ERRORS,
    ValueError,
    TypeError,
    AssertionError,
    AttributeError,
    IndexError,
    OverflowError,
    ZeroDivisionError,
    RecursionError,
)  # the last three: shape inference on degenerate parameters
LAYER_CLASSES = {cls.kind: cls for cls in (Input, Dense, Conv, Flatten)}
MAX_NODES = 4 * MAX_LAYERS + 2  # a layer is at most reshape, synapse and neurons; plus input and output
NEURON_SIDE = ("neuron", "bias")  # layer fields kept on the CubaLIF node; the rest on the synapse node


class NirExportError(NeurodeployError):
    """A netlist NIR cannot hold: a meta value JSON cannot store, or a kernel NIR's shape check refuses."""


def nir_module() -> ModuleType:
    """The nir package; h5py, which it imports, is imported first as :func:`h5py_module` does it."""
    h5py_module()
    import nir

    return nir


def write_nir(net: Netlist, path: str | os.PathLike, dt: float = DEFAULT_DT) -> None:
    """Write ``net`` to ``path`` as a NIR graph (HDF5) that :func:`read_nir` reads back exactly."""
    nir = nir_module()
    graph = netlist_to_nir(net, dt)
    with atomic_path(path) as tmp:
        nir.write(tmp, graph)


def netlist_to_nir(net: Netlist, dt: float = DEFAULT_DT) -> Any:
    """The NIR graph of ``net``: a chain from ``input`` to ``output`` with metadata on every node."""
    nir = nir_module()
    if net.graded:
        i = net.neuron_layers[0]
        raise NirExportError(
            f"layer {i} ({net.layers[i].kind}): NIR has no node for sigma-delta neurons (graded spikes)"
        )
    if net.recurrent:
        i = next(i for i, layer in enumerate(net.layers) if layer.kind == "dense_rec")
        raise NirExportError(
            f"layer {i} (dense_rec): writing recurrent layers to NIR is not supported "
            "(netx carries them: --format netx)"
        )
    shape = net.external_shape
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(shape)})}
    for i, layer in enumerate(net.layers):
        for key, node in _layer_nodes(i, layer, shape, dt):
            nodes[key] = node
        shape = tuple(layer.shape)
    nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    names = list(nodes)
    metadata = {FORMAT_KEY: FORMAT_VERSION, "dt": float(dt), "latency": LATENCY_NOTE, "netlist": _netlist_json(net)}
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(names)), metadata=metadata)


def _layer_nodes(i: int, layer, in_shape: tuple[int, ...], dt: float) -> list[tuple[str, Any]]:
    """The NIR nodes of layer ``i``, in order, keyed ``l<i>_<part>``."""
    nir = nir_module()
    synapse_md = {"layer": i, "kind": layer.kind, **_fields_metadata(layer, neuron_side=False)}
    if isinstance(layer, Flatten):
        return [(f"l{i}_flatten", _flatten_node(in_shape, synapse_md))]
    neuron_md = {"layer": i, "kind": layer.kind, **_fields_metadata(layer, neuron_side=True)}
    if isinstance(layer, Input):
        return [(f"l{i}_neurons", nir.CubaLIF(**_cuba_params(layer, dt), metadata={**synapse_md, **neuron_md}))]
    nodes = []
    if isinstance(layer, Dense) and len(in_shape) > 1:  # the chip flattens implicitly; NIR needs it said
        nodes.append((f"l{i}_reshape", _flatten_node(in_shape, {})))
    nodes.append((f"l{i}_{layer.kind}", _synapse_node(layer, synapse_md)))
    nodes.append((f"l{i}_neurons", nir.CubaLIF(**_cuba_params(layer, dt), metadata=neuron_md)))
    return nodes


def _flatten_node(in_shape: tuple[int, ...], metadata: dict) -> Any:
    nir = nir_module()
    return nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0, end_dim=-1, metadata=metadata)


def _synapse_node(layer: Dense | Conv, metadata: dict) -> Any:
    nir = nir_module()
    if isinstance(layer, Dense):
        weight = fx.dense_weights(layer.weight, layer.weight_bits) * 2.0**layer.weight_exp
        return nir.Linear(weight=weight.astype(np.float32), metadata=metadata)
    weight, padding = _square_kernel(_ungrouped(layer), layer, f"layer {metadata['layer']} (conv)")
    return nir.Conv2d(
        input_shape=tuple(layer.in_shape[1:]),
        weight=(weight * 2.0**layer.weight_exp).astype(np.float32),
        stride=tuple(layer.stride),
        padding=padding,
        dilation=tuple(layer.dilation),
        groups=1,
        bias=np.zeros(layer.weight.shape[0], np.float32),
        metadata=metadata,
    )


def _square_kernel(weight: np.ndarray, layer: Conv, label: str) -> tuple[np.ndarray, tuple[int, int]]:
    """A kH x kW kernel grown to a square with zero taps on both sides, the padding grown to
    match, so the output is unchanged: NIR's shape inference takes kH for both sides."""
    side = max(weight.shape[2:])
    grow = [side - k for k in weight.shape[2:]]
    if any(g % 2 for g in grow):
        raise NirExportError(
            f"{label}: a {weight.shape[2]}x{weight.shape[3]} kernel cannot be written to NIR: its shape inference "
            "(nir 1.0.8) takes the kernel as square, and sides of odd and even size cannot be padded to a square"
        )
    pads = [(0, 0), (0, 0)] + [(g // 2, g // 2) for g in grow]
    rows, cols = (int(p + d * g // 2) for p, d, g in zip(layer.padding, layer.dilation, grow))
    return np.pad(weight, pads), (rows, cols)


def _ungrouped(layer: Conv) -> np.ndarray:
    """The (out, in, kH, kW) weights of a grouped conv, zero across groups: NIR's type check
    takes weight.shape[1] for the input channels, whatever ``groups`` says."""
    out, per_group = layer.weight.shape[:2]
    full = np.zeros((out, per_group * layer.groups) + layer.weight.shape[2:], layer.weight.dtype)
    step = out // layer.groups
    for g in range(layer.groups):
        full[g * step : (g + 1) * step, g * per_group : (g + 1) * per_group] = layer.weight[g * step : (g + 1) * step]
    return full


def _cuba_params(layer, dt: float) -> dict[str, np.ndarray]:
    """Float CubaLIF parameters of a neuron layer (see the module docstring)."""
    neuron, shape = layer.neuron, tuple(layer.shape)
    syn_steps = fx.DECAY_UNITY / (neuron.du + 1) if neuron.du >= 0 else NO_DECAY_STEPS
    mem_steps = fx.DECAY_UNITY / neuron.dv if neuron.dv > 0 else NO_DECAY_STEPS
    bias = np.zeros(shape) if layer.bias is None else bias_per_neuron(np.asarray(layer.bias), shape)
    bias = fx.effective_bias(bias, neuron.bias_exp) / 2.0**fx.ACT_SHIFT
    full = np.ones(shape)
    return {
        "tau_syn": full * syn_steps * dt,
        "tau_mem": full * mem_steps * dt,
        "r": full * mem_steps,
        "v_leak": bias * mem_steps,
        "v_threshold": full * float(neuron.vth),
        "v_reset": np.zeros(shape),
        "w_in": full * syn_steps,
    }


# --- exact integer content as metadata -------------------------------------------------


def _fields_metadata(layer, neuron_side: bool) -> dict[str, Any]:
    """The layer's dataclass fields on one side (neuron or synapse) as HDF5-storable values."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(layer):
        value = getattr(layer, f.name)
        if (f.name in NEURON_SIDE) != neuron_side or value is None:
            continue
        if isinstance(value, CubaNeuron):
            out.update({f"neuron_{k}": np.int64(v) for k, v in dataclasses.asdict(value).items()})
        elif isinstance(value, str):
            out[f.name] = value
        elif np.ndim(value) == 0:  # nir.write compresses arrays, which scalars refuse
            out[f.name] = np.int64(value)
        else:
            out[f.name] = np.asarray(value, dtype=np.int64)
    return out


def _layer_from_metadata(md: dict[str, Any], where: str):
    """Rebuild one layer from the merged metadata of its nodes."""
    kind = _text(md["kind"])
    if kind not in LAYER_CLASSES:
        raise InputFileError(f"{where}: unknown kind {kind!r}")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(LAYER_CLASSES[kind]):
        if f.name == "neuron":
            kwargs["neuron"] = CubaNeuron(
                **{
                    n.name: _meta_int(md[f"neuron_{n.name}"], where, f"neuron_{n.name}")
                    for n in dataclasses.fields(CubaNeuron)
                }
            )
        elif f.name in md:
            value = md[f.name]
            if f.name == "name":
                kwargs[f.name] = _text(value)
            elif "tuple" in str(f.type):
                kwargs[f.name] = tuple(int(x) for x in _meta_ints(value, where, f.name).reshape(-1))
            elif np.ndim(value) == 0 and "ndarray" not in str(f.type):
                kwargs[f.name] = _meta_int(value, where, f.name)
            else:
                kwargs[f.name] = _meta_ints(value, where, f.name)
    return LAYER_CLASSES[kind](**kwargs)


def _meta_ints(value, where: str, name: str) -> np.ndarray:
    """An int64 array from metadata holding integers (whole finite floats allowed); anything else refused."""
    arr = np.asarray(value)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        if arr.size and np.abs(arr).max() >= 2.0**63:
            raise InputFileError(f"{where}: {name} holds values beyond 64 bits")
    elif arr.dtype.kind not in "biu" or (arr.dtype.kind == "u" and arr.size and arr.max() >= 2**63):
        raise InputFileError(f"{where}: {name} must hold integers, got {arr.dtype} {np.ravel(arr)[:4].tolist()}")
    return arr.astype(np.int64)


def _meta_int(value, where: str, name: str) -> int:
    arr = _meta_ints(value, where, name)
    if arr.size != 1:
        raise InputFileError(f"{where}: {name} must be one integer, got shape {arr.shape}")
    return int(arr.reshape(()))


def _text(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _netlist_json(net: Netlist) -> str:
    """The netlist's run conventions and meta (all fields but the layers) as JSON."""
    fields = {f.name: getattr(net, f.name) for f in dataclasses.fields(net) if f.name != "layers"}
    try:
        return json.dumps(_encode(fields, "netlist"))
    except TypeError as err:
        raise NirExportError(f"netlist: cannot store in NIR metadata: {err}") from None


def _encode(value, where: str):
    """JSON-ready form of ``value`` that keeps tuples, arrays and numpy scalars apart."""
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{where} has a key {bad[0]!r} that is not a string")
        return {"dict": {k: _encode(v, f"{where}.{k}") for k, v in value.items()}}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, where) for v in value]}
    if isinstance(value, list):
        return [_encode(v, where) for v in value]
    if isinstance(value, np.ndarray):
        return {"ndarray": value.tolist(), "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{where} holds a {type(value).__name__}, which is not storable")


def _decode(value):
    """The value :func:`_encode` stored; arrays of numbers only (ValueError, TypeError or KeyError if damaged)."""
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "dict" in value:
        return {k: _decode(v) for k, v in value["dict"].items()}
    if "tuple" in value:
        return tuple(_decode(v) for v in value["tuple"])
    dtype = np.dtype(value["dtype"])
    if dtype.kind not in "biuf" or dtype.itemsize > 8:
        raise ValueError(f"array dtype {dtype} is not a number type")
    return np.array(value["ndarray"], dtype=dtype).reshape(value["shape"])


def _conventions(text, source: str) -> dict[str, Any]:
    """The netlist's run conventions from the graph's ``netlist`` metadata, with their types checked."""
    conventions = _decode(json.loads(_text(text)))
    names = {f.name for f in dataclasses.fields(Netlist)} - {"layers"}
    if not isinstance(conventions, dict) or not set(conventions) <= names:
        raise InputFileError(
            f"{source}: metadata 'netlist' must map some of {sorted(names)}, got {str(conventions)[:80]}"
        )
    checks = {
        "input_shape": lambda v: v is None or (isinstance(v, tuple) and all(_is_int(x) for x in v)),
        "reset_interval": lambda v: v is None or _is_int(v),
        "reset_offset": _is_int,
        "output_window": lambda v: (
            v is None or (isinstance(v, tuple) and len(v) == 2 and all(_is_int(x) for x in v) and 0 <= v[0] <= v[1])
        ),
        "meta": lambda v: isinstance(v, dict),
        "input_message_bits": lambda v: _is_int(v) and v == 0,  # NIR carries binary-spike networks only
    }
    for name, value in conventions.items():
        if not checks[name](value):
            raise InputFileError(f"{source}: metadata 'netlist': {name} = {str(value)[:80]} is not valid")
    return conventions


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


# --- reading ----------------------------------------------------------------------------


def read_nir(path: str | os.PathLike) -> Netlist:
    """Read a netlist that :func:`write_nir` wrote; foreign NIR graphs need ``nir_import.nir_to_float_graph``."""
    graph = read_graph(path)
    source = str(path)
    if FORMAT_KEY not in (graph.metadata or {}):
        raise InputFileError(
            f"{source}: the NIR graph carries no {FORMAT_KEY!r} metadata, so it holds a float network "
            "written by another tool; import it with neurodeploy.nir_import.nir_to_float_graph and quantize it"
        )
    try:
        return _netlist_from_graph(graph, source)
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError, NetlistError) as err:
        raise InputFileError(f"{source}: the neurodeploy metadata is damaged: {type(err).__name__}: {err}") from None


def _netlist_from_graph(graph, source: str) -> Netlist:
    version = _meta_int(graph.metadata[FORMAT_KEY], source, FORMAT_KEY)
    if version > FORMAT_VERSION:
        raise InputFileError(f"{source}: format version {version} is newer than the {FORMAT_VERSION} this reader knows")
    per_layer: dict[int, dict] = {}
    for key in chain(graph, source):
        md = graph.nodes[key].metadata or {}
        if "layer" in md:
            per_layer.setdefault(_meta_int(md["layer"], f"{source}: node {key!r}", "layer"), {}).update(md)
    if sorted(per_layer) != list(range(len(per_layer))) or not per_layer:
        raise InputFileError(f"{source}: layer numbers {sorted(per_layer)[:12]} are not 0..n-1")
    layers = [_layer_from_metadata(per_layer[i], f"{source}: layer {i}") for i in range(len(per_layer))]
    return Netlist(layers=layers, **_conventions(graph.metadata["netlist"], source))


def read_graph(path: str | os.PathLike):
    """The NIR graph in ``path``, its HDF5 structure checked before nir reads it."""
    h5py = h5py_module()
    nir = nir_module()
    if not os.path.isfile(path):
        raise InputFileError(f"{path}: no such file")
    with open_hdf5(path, "NIR graph") as h5:
        if not isinstance(h5.get("node"), h5py.Group):
            raise InputFileError(f"{path}: not a NIR file: it has no /node group")
        nodes = len(h5["node"])
        if nodes > MAX_NODES:
            raise InputFileError(
                f"{path}: /node: {nodes} nodes, more than the limit of {MAX_NODES} "
                f"(at most {MAX_LAYERS} layers of a few nodes each)"
            )
    try:
        with np.errstate(all="ignore"):  # nir's shape inference divides by a stride of 0: refused below
            return nir.read(path)
    except NIR_READ_ERRORS as err:
        raise InputFileError(f"{path}: not a readable NIR graph ({type(err).__name__}: {err})") from None


def chain(graph, source: str) -> list[str]:
    """Node keys from the single Input to the single Output; anything but a chain is refused."""
    nir = nir_module()
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise InputFileError(
            f"{source}: the graph has {len(inputs)} Input nodes; only chains with one input are supported"
        )
    succ: dict[str, list[str]] = {}
    preds: dict[str, int] = {}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
        preds[b] = preds.get(b, 0) + 1
    order = [inputs[0]]
    while succ.get(order[-1]):
        after = succ[order[-1]]
        if len(after) > 1:
            raise InputFileError(
                f"{source}: node {order[-1]!r} feeds {len(after)} nodes {after}; only chains are supported"
            )
        key = after[0]
        if key in order or preds[key] > 1:
            raise InputFileError(
                f"{source}: node {key!r} has {preds[key]} inputs (or closes a loop); only chains are supported"
            )
        order.append(key)
    if not isinstance(graph.nodes[order[-1]], nir.Output):
        raise InputFileError(f"{source}: the chain ends at {order[-1]!r}, not at an Output node")
    stray = sorted(set(graph.nodes) - set(order))
    if stray:
        raise InputFileError(f"{source}: nodes {stray} are not on the chain from input to output")
    return order

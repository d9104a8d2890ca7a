r"""NIR graphs from other frameworks: read, walked, and discretised into the float graph the quantizer folds.

:func:`nir_to_float_graph` lists a graph's nodes as plain numpy ops, in order from
its input to its output: a chain, in which a ``LIF`` or ``CubaLIF`` node may also
take its own output back through an ``Affine`` or ``Linear`` node that has no other
edge (a recurrent layer, as snnTorch's ``RLeaky`` and ``RSynaptic`` write it).
:func:`float_graph_from_nir` turns those ops into the quantizer's float graph; a
recurrent layer becomes netx's ``dense_rec``: its feed-forward and recurrent
inputs add, and the recurrent one carries the spikes of the step before.
docs/nir.md names each convention in which NIR, snnTorch and the chip differ.

NIR's neurons are continuous-time; with time step ``dt`` (forward Euler, as the
NIR reference simulators do) they become CUBA neurons with reset to zero:

* ``LIF``: :math:`v \leftarrow (1 - dt/\tau) v + (dt/\tau) (v_{leak} + R I)`, ``I`` the
  weighted input of the step: current cleared each step (``current_decay = 1``).
* ``CubaLIF``: :math:`I \leftarrow (1 - dt/\tau_{syn}) I + (dt/\tau_{syn}) w_{in} x`,
  :math:`v \leftarrow (1 - dt/\tau_{mem}) v + (dt/\tau_{mem}) (v_{leak} + R I)`.
  An affine bias enters ``I`` in NIR; the chip adds biases to ``v``, so it is
  applied at its steady-state value (exact after the first ~tau_syn steps). A
  recurrent layer that another layer follows gets one more neuron instead, which
  fires every step: its recurrent and feed-forward synapses carry the biases of
  its own layer and of the next into their currents from the first step, and
  what their weights' rounding loses the quantizer gives the neurons' own biases.
* ``IF``: :math:`v \leftarrow v + dt\,R I`.

Per-neuron ``R``, ``w_in`` and thresholds fold into the rows of the weights
(a neuron's v is scaled so that every threshold becomes the layer's one),
the recurrent weights' rows among them; a recurrent Affine's bias adds to the
feed-forward one. Decays must be uniform within a layer, and ``v_reset`` must be 0.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

from neurodeploy import budget
from neurodeploy.errors import InputFileError
from neurodeploy.exporters.nir import chain, read_graph
from neurodeploy.netlist import pair

RECURRENT_NEURONS = ("LIF", "CubaLIF")  # node types a recurrent loop may close on
RECURRENT_SYNAPSES = ("Affine", "Linear")
BIAS_UNIT_DRIVE = 2.0  # an always-on neuron's bias, in thresholds
RECURRENT_COPIES = 4  # copies of a recurrent layer the chip holds by default: 4x finer weights (docs/nir.md)
COPY_ENTRY_BYTES = 32  # what one entry of a copied layer's integer matrices may cost while they are built


def _uniform(values: np.ndarray, what: str, where: str) -> float:
    values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if not np.all(np.isfinite(values)) or np.ptp(values) > 1e-9 * max(1.0, float(np.abs(values).max())):
        raise InputFileError(
            f"{where}: {what} must be one finite value for the whole layer, got {np.unique(values)[:4]}"
        )
    return float(values.flat[0])


def _time_constant(values: np.ndarray, what: str, where: str) -> float:
    tau = _uniform(values, what, where)
    if tau <= 0:
        raise InputFileError(f"{where}: {what} = {tau} must be > 0")
    return tau


def _per_neuron(values, n: int, what: str, where: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        arr = np.full(n, arr[0])
    if arr.size % n or not np.all(np.isfinite(arr)):
        raise InputFileError(f"{where}: {what} has {arr.size} values for {n} neurons (or is not finite)")
    return arr.reshape(n, -1)[:, 0] if arr.size != n else arr


def _neuron(op: dict, syn: dict, dt: float | None, where: str) -> dict:
    """The CUBA neuron op for a NIR neuron; folds per-neuron gains into ``syn`` (modified)."""
    model = op["model"]
    if model != "if" and dt is None:
        raise InputFileError(f"{where}: a {model.upper()} neuron needs a time step: the graph has no dt; pass --dt")
    dt = 1.0 if dt is None else dt
    n = syn["weight"].shape[0]
    if np.any(np.asarray(op.get("v_reset", 0.0)) != 0):
        raise InputFileError(f"{where}: v_reset must be 0 (the chip resets v to zero)")
    theta = _per_neuron(op["v_threshold"], n, "v_threshold", where)
    if np.any(theta <= 0):
        raise InputFileError(f"{where}: v_threshold must be > 0")
    r = _per_neuron(op.get("r", 1.0), n, "r", where)
    if model == "if":
        cd, vd, gain, leak = 1.0, 0.0, dt * r, np.zeros(n)
    else:
        vd = dt / _time_constant(op["tau_mem"], "tau_mem", where)
        leak = vd * _per_neuron(op.get("v_leak", 0.0), n, "v_leak", where)
        gain = vd * r
        cd = 1.0
        if model == "cuba":
            cd = dt / _time_constant(op["tau_syn"], "tau_syn", where)
            gain = gain * cd * _per_neuron(op.get("w_in", 1.0), n, "w_in", where)
    if (not 0 < vd <= 1 and model != "if") or not 0 < cd <= 1:
        raise InputFileError(f"{where}: dt = {dt} does not fit the time constants (decays {cd:.3g}, {vd:.3g})")
    # Scale each neuron's v by 1/theta: thresholds become 1, gains and biases follow.
    shape = (-1,) + (1,) * (syn["weight"].ndim - 1)
    bias = syn["bias"] if syn.get("bias") is not None else np.zeros(n)
    steady = 1.0 / cd if model == "cuba" else 1.0  # the bias's steady state through the current
    scaled = [name for name in ("weight", "weight_rec") if name in syn]
    with np.errstate(all="ignore"):  # overflow is checked below, by name
        for name in scaled:
            syn[name] = syn[name] * (gain / theta).reshape(shape)
        syn["bias"] = (bias * gain * steady + leak) / theta
    for name in (*scaled, "bias"):
        if not np.all(np.isfinite(syn[name])):
            raise InputFileError(
                f"{where}: the synapses' {name}s scaled by r, w_in, dt / tau and 1 / v_threshold "
                "leave the range of float64 (inf or NaN)"
            )
    return {
        "op": "neuron",
        "model": "cuba",
        "vth": 1.0,
        "current_decay": cd,
        "voltage_decay": vd,
        "input_scale": 1.0,
        "drive": "synaptic",
        "spike": "binary",
        "rule": f"nir-{model}",
    }


def _add_recurrence(syn: dict, rec: dict, where: str) -> None:
    """Put a neuron's recurrent synapses into ``syn``, the dense op before it (modified)."""
    if syn["op"] != "dense":
        raise InputFileError(
            f"{where}: a recurrent neuron needs dense synapses (Affine or Linear) before it, not {syn['op']}"
        )
    n = syn["weight"].shape[0]
    if rec["weight"].shape != (n, n):
        raise InputFileError(
            f"{where}: its recurrent synapses {rec['name']!r} have shape {rec['weight'].shape}, expected {(n, n)}"
        )
    syn["weight_rec"] = rec["weight"]
    if rec["bias"] is not None:
        syn["bias"] = rec["bias"] if syn.get("bias") is None else syn["bias"] + rec["bias"]


def _pool(op: dict, where: str) -> tuple[dict, float]:
    kh, kw = op["kernel"]
    if (kh, kw) != tuple(op["stride"]) or kh != kw or any(op.get("padding", (0, 0))):
        raise InputFileError(f"{where}: pooling must be square, unpadded, with stride equal to the kernel")
    return {"op": "sumpool", "kernel": kh, "stride": kh}, (1.0 / (kh * kw) if op["op"] == "avgpool" else 1.0)


def float_graph_from_nir(ops: list[dict], dt: float | None, source: str, copies: int | None = None) -> list[dict]:
    """Translate ``nir_to_float_graph`` ops into the quantizer's float graph; each recurrent layer that
    a dense layer follows is held in ``copies`` copies (``neurodeploy.quantize``; None:
    :data:`RECURRENT_COPIES`, halved until the matrices they make fit the memory budget)."""
    if copies is not None and copies < 1:
        raise ValueError(f"copies must be >= 1, got {copies}")
    if not ops or ops[0]["op"] != "input" or ops[0].get("shape") is None:
        raise InputFileError(f"{source}: the graph must start with an input node of known shape")
    graph = [{"op": "input", "kind": "spikes", "shape": tuple(ops[0]["shape"])}]
    syn, scale, unit = None, 1.0, False  # unit: the layer before ends in an always-on neuron
    for i, op in enumerate(ops[1:], start=1):
        where = f"{source}: node {op.get('name', op['op'])!r}"
        if op["op"] in ("dense", "conv"):
            syn = {k: v for k, v in op.items() if k not in ("name", "shape")}
            syn["weight"] = syn["weight"] * scale
            if unit:
                _bias_column(syn, "weight", where)
            graph.append(syn)
            scale = 1.0
        elif op["op"] in ("sumpool", "avgpool"):
            pool, scale = _pool(op, where)
            graph.append(pool)
        elif op["op"] == "flatten":
            graph.append({"op": "flatten"})
        elif op["op"] == "neuron":
            if syn is None:
                raise InputFileError(f"{where}: a neuron needs synapses (Affine, Linear or Conv2d) before it")
            unit = op.get("recurrent") is not None
            if unit:
                _add_recurrence(syn, op["recurrent"], where)
                after = next((later for later in ops[i + 1 :] if later["op"] in ("dense", "conv")), None)
                if after is not None and after["op"] == "dense":
                    syn["copies"] = _copies(copies, syn["weight"].shape, after["weight"].shape[0], where)
                unit = _needs_bias_unit(syn, after)
                if unit:
                    _bias_column(syn, "weight_rec", where)
            graph.append(_neuron(op, syn, op.get("dt", dt), where))
            if unit:
                _add_bias_unit(syn)
            syn = None
    if syn is not None:
        raise InputFileError(f"{source}: the graph ends with synapses that have no neurons")
    return graph


def _copies(copies: int | None, shape: tuple[int, int], after: int, where: str) -> int:
    """The copies a recurrent layer of ``shape`` (out, in) followed by ``after`` neurons gets: ``copies``,
    if its matrices fit the memory budget, or (None) :data:`RECURRENT_COPIES`, halved until they fit."""
    n = shape[0] + 1  # and an always-on neuron, perhaps
    need = lambda k: COPY_ENTRY_BYTES * k * n * (k * n + shape[1] + after)  # noqa: E731
    if copies is None:
        copies = RECURRENT_COPIES
        while copies > 1 and need(copies) > budget.limit():
            copies //= 2
    elif copies > 1:
        budget.require(need(copies), f"{where}: {copies} copies of its {shape[0]} neurons (their synapse matrices)")
    return int(copies)


def _needs_bias_unit(syn: dict, after: dict | None) -> bool:
    """Whether a recurrent layer gets an always-on neuron: synapses ``after`` it lead to a layer, and they
    or its own have a bias."""
    biases = [syn.get("bias"), None if after is None else after.get("bias")]
    return after is not None and any(b is not None and np.any(b) for b in biases)


def _bias_column(syn: dict, key: str, where: str) -> None:
    """Move the synapses' bias into a new last column of ``syn[key]``, fed by an always-on neuron (modified);
    ``syn["bias_column"]`` names it, for the quantizer to hand what its rounding loses to the neuron's bias."""
    if syn["op"] != "dense":
        raise InputFileError(f"{where}: after a recurrent layer only dense synapses (Affine or Linear) can follow")
    bias = syn.get("bias")
    column = np.zeros(syn[key].shape[0]) if bias is None else bias
    syn[key] = np.hstack([syn[key], column[:, None]])
    syn["bias"], syn["bias_column"] = None, key


def _add_bias_unit(syn: dict) -> None:
    """Append the always-on neuron to a recurrent layer whose synapses are scaled (threshold 1): no input,
    a bias of twice the threshold, so that it fires every step from the first (modified)."""
    syn["weight"] = np.vstack([syn["weight"], np.zeros((1, syn["weight"].shape[1]))])
    syn["weight_rec"] = np.vstack([syn["weight_rec"], np.zeros((1, syn["weight_rec"].shape[1]))])
    syn["bias"] = np.append(syn["bias"], BIAS_UNIT_DRIVE)


# --- reading the graph ------------------------------------------------------------------


def nir_to_float_graph(graph, dt: float | None = None) -> list[dict[str, Any]]:
    """Ordered float ops of a NIR chain with recurrent layers (a graph or a file path), for the quantizer.

    Ops: ``input`` (shape), ``dense`` (weight, bias or None), ``conv`` (weight,
    bias, stride, padding, dilation, groups), ``sumpool``/``avgpool`` (kernel,
    stride, padding), ``flatten`` (all but the batch axis, C order) and ``neuron``
    (model ``cuba``/``lif``/``if`` with NIR's parameters as arrays, and ``dt``:
    the argument, else the graph's ``dt`` metadata, else None; and ``recurrent``:
    the ``dense`` op of its recurrent synapses, or None). Every op has its node's
    ``name`` and output ``shape`` (None where NIR left it undefined).
    """
    source = "NIR graph"
    if isinstance(graph, (str, os.PathLike)):
        source, graph = str(graph), read_graph(graph)
    if dt is None and "dt" in (graph.metadata or {}):
        dt = _graph_dt(graph.metadata["dt"], source)
    order, loops = _walk(graph, source)
    ops: list[dict[str, Any]] = []
    for key in order[:-1]:
        op = _float_op(graph, key, source)
        if op["op"] == "neuron":
            op["dt"] = dt
            op["recurrent"] = _float_op(graph, loops[key], source) if key in loops else None
        ops.append(op)
    return ops


def _float_op(graph, key: str, source: str) -> dict[str, Any]:
    """The float op of node ``key``, with its ``name`` and output ``shape``."""
    node = graph.nodes[key]
    convert = _FLOAT_OPS.get(type(node).__name__)
    if convert is None:
        raise InputFileError(
            f"{source}: node {key!r} is a {type(node).__name__}, which the importer does not take; "
            f"supported: {', '.join(sorted(_FLOAT_OPS))}"
        )
    try:
        op: dict[str, Any] = {"name": key, **convert(node, source, key)}
        out = (node.output_type or {}).get("output")
        op["shape"] = None if out is None else tuple(int(s) for s in np.atleast_1d(out))
    except (TypeError, ValueError, OverflowError) as err:
        raise InputFileError(f"{source}: node {key!r} ({type(node).__name__}): bad parameters: {err}") from None
    return op


def _walk(graph, source: str) -> tuple[list[str], dict[str, str]]:
    """(node keys from input to output, {neuron key: its recurrent synapse's key}).

    The recurrent loops are taken out first; what remains must be a chain.
    """
    loops = recurrent_loops(graph)
    inner = {e for neuron, synapse in loops.items() for e in ((neuron, synapse), (synapse, neuron))}
    rest = SimpleNamespace(
        nodes={k: v for k, v in graph.nodes.items() if k not in loops.values()},
        edges=[tuple(e) for e in graph.edges if tuple(e) not in inner],
    )
    return chain(rest, source), loops


def recurrent_loops(graph) -> dict[str, str]:
    """{neuron key: synapse key} for each loop neuron -> synapse -> neuron where the neuron is a
    LIF or CubaLIF, the synapse an Affine or Linear, and the loop's two edges the synapse's only ones."""
    edges = {tuple(e) for e in graph.edges}
    loops: dict[str, str] = {}
    for a, b in sorted(edges):
        kinds = (type(graph.nodes.get(a)).__name__, type(graph.nodes.get(b)).__name__)
        if a == b or (b, a) not in edges or kinds[0] not in RECURRENT_NEURONS or kinds[1] not in RECURRENT_SYNAPSES:
            continue
        if sum(b in e for e in edges) == 2 and a not in loops:
            loops[a] = b
    return loops


def _graph_dt(value, source: str) -> float:
    try:
        dt = float(np.asarray(value).reshape(()))
    except (TypeError, ValueError):
        dt = math.nan
    if not math.isfinite(dt) or dt <= 0:
        raise InputFileError(f"{source}: metadata dt = {value!r} must be one finite number > 0")
    return dt


def _f64(x) -> np.ndarray:
    """Finite float64 values (ValueError otherwise)."""
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("holds non-finite values")
    return arr


def _conv_padding(node, source: str, key: str) -> tuple[int, int]:
    if isinstance(node.padding, str):
        if node.padding == "valid":
            return (0, 0)
        total = np.asarray(pair(node.dilation)) * (np.asarray(node.weight.shape[2:]) - 1)
        if np.any(total % 2) or np.any(np.asarray(pair(node.stride)) != 1):
            raise InputFileError(
                f"{source}: node {key!r}: padding 'same' is asymmetric here (even kernel or stride > 1)"
            )
        return pair(total // 2)
    return pair(node.padding)


def _flatten_op(node, source: str, key: str) -> dict:
    if int(node.end_dim) != -1 or int(node.start_dim) not in (0, 1):
        raise InputFileError(
            f"{source}: node {key!r}: only flattening all dimensions is supported, "
            f"got start_dim={node.start_dim}, end_dim={node.end_dim}"
        )
    return {"op": "flatten"}


_FLOAT_OPS: dict[str, Callable[[Any, str, str], dict[str, Any]]] = {
    "Input": lambda n, s, k: {"op": "input"},
    "Affine": lambda n, s, k: {"op": "dense", "weight": _f64(n.weight), "bias": _f64(n.bias)},
    "Linear": lambda n, s, k: {"op": "dense", "weight": _f64(n.weight), "bias": None},
    "Conv2d": lambda n, s, k: {
        "op": "conv",
        "weight": _f64(n.weight),
        "bias": _f64(n.bias),
        "stride": pair(n.stride),
        "padding": _conv_padding(n, s, k),
        "dilation": pair(n.dilation),
        "groups": int(n.groups),
    },
    "SumPool2d": lambda n, s, k: {
        "op": "sumpool",
        "kernel": pair(n.kernel_size),
        "stride": pair(n.stride),
        "padding": pair(n.padding),
    },
    "AvgPool2d": lambda n, s, k: {
        "op": "avgpool",
        "kernel": pair(n.kernel_size),
        "stride": pair(n.stride),
        "padding": pair(n.padding),
    },
    "Flatten": _flatten_op,
    "CubaLIF": lambda n, s, k: {
        "op": "neuron",
        "model": "cuba",
        "tau_syn": _f64(n.tau_syn),
        "tau_mem": _f64(n.tau_mem),
        "r": _f64(n.r),
        "v_leak": _f64(n.v_leak),
        "v_threshold": _f64(n.v_threshold),
        "v_reset": _f64(n.v_reset),
        "w_in": _f64(n.w_in),
    },
    "LIF": lambda n, s, k: {
        "op": "neuron",
        "model": "lif",
        "tau_mem": _f64(n.tau),
        "r": _f64(n.r),
        "v_leak": _f64(n.v_leak),
        "v_threshold": _f64(n.v_threshold),
        "v_reset": _f64(n.v_reset),
    },
    "IF": lambda n, s, k: {
        "op": "neuron",
        "model": "if",
        "r": _f64(n.r),
        "v_threshold": _f64(n.v_threshold),
        "v_reset": _f64(n.v_reset),
    },
}

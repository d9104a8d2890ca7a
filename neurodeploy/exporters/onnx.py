"""ONNX export of the integer netlist: the chip's arithmetic, bit for bit, in int64 ops.

The graph runs ``steps`` time steps in one ONNX ``Loop`` (the body is one step
of every layer, as :mod:`neurodeploy.sim` orders it), so its size does not grow
with the step count. Every value is int64 and every rule of
:mod:`neurodeploy.fixed_point` is spelled with exact integer ops: ``Div``
truncates toward zero (the decays), ``Mod`` takes the divisor's sign (floor
shifts and two's-complement wraps), ``Clip`` saturates v.

Synapses are int64 ``MatMul``: dense layers directly, conv layers after an
im2col ``Gather``. onnxruntime has no exact alternative: its ``Conv`` runs in
float32 only (float64 is not implemented), exact only while every sum stays
below 2**24, and ``ConvInteger``/``MatMulInteger`` take 8-bit operands, too
narrow for graded input or weights of -256. int64 sums are exact below 2**63;
:func:`netlist_to_onnx` checks that bound for every layer, assuming input
payloads up to ``MAX_PAYLOAD``.

Inputs: ``spikes`` (batch, steps, *input shape) int32 when layer 0 is not an
input layer. For an input layer, ``bias`` (batch, *shape) int32, its mantissas,
and ``spikes`` (batch, steps, *shape) int32, integer drive added to its current:
both are initializers a run may override (the netlist's own bias; no drive).
Outputs: ``spikes_<i>`` (batch, steps, *shape) uint8 for every neuron layer i,
``output_counts`` (batch, *output shape) int64, the last layer's spikes summed
over all steps, and ``output_v`` (batch, *output shape) int64, the last layer's v
after the last step (what a membrane readout decodes). The model properties
``steps`` and ``readout`` hold the step count and the netlist's readout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurodeploy import fixed_point as fx
from neurodeploy.atomic import atomic_path
from neurodeploy.errors import InputFileError, NeurodeployError
from neurodeploy.netlist import (
    Conv,
    CubaNeuron,
    Dense,
    Input,
    Layer,
    Netlist,
    bias_per_neuron,
    cuba_neuron,
    layer_label,
    neuron_layer,
    synaptic_layer,
)

OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17
MAX_PAYLOAD = 2**24  # largest |input value| the graph is exact for (Loihi 2's 24-bit graded spikes)
INT64_BOUND = 2**63
INT64 = 7  # onnx.TensorProto.INT64, without importing onnx at module load


class OnnxExportError(NeurodeployError):
    """A netlist the ONNX graph could not compute exactly."""


def write_onnx(net: Netlist, path: str | os.PathLike, steps: int) -> None:
    """Write ``net`` run for ``steps`` steps to ``path`` as an ONNX model."""
    model = netlist_to_onnx(net, steps)
    with atomic_path(path) as tmp:
        tmp.write_bytes(model.SerializeToString())


def netlist_to_onnx(net: Netlist, steps: int):
    """The ONNX model of ``net`` run in a ``Loop`` of ``steps`` steps, checked by onnx.checker."""
    import onnx

    if int(steps) < 1:
        raise OnnxExportError(f"netlist: steps = {steps} must be >= 1")
    if net.graded:
        i = net.neuron_layers[0]
        raise OnnxExportError(
            f"{layer_label(i, net.layers[i])}: sigma-delta neurons (graded spikes) are not exported to ONNX; "
            "see docs/formats.md"
        )
    outer = _Builder("g")
    io = _graph_inputs(outer, net, int(steps))
    body, units = _step_body(outer, net, io)
    states = [
        outer.op("ConstantOfShape", [_shape_of(outer, io.batch, *unit)], value=_int64_scalar(0)) for unit in units
    ]
    loop_outs = [f"final_{i}" for i in range(len(states))] + [f"trace_{i}" for i in net.neuron_layers]
    outer.nodes.append(onnx.helper.make_node("Loop", [outer.const(np.int64(steps)), "", *states], loop_outs, body=body))
    for i in net.neuron_layers:
        shape = net.layers[i].shape
        outer.op("Transpose", [f"trace_{i}"], out=f"spikes_{i}", perm=[1, 0, *range(2, len(shape) + 2)])
        outer.output(f"spikes_{i}", onnx.TensorProto.UINT8, ["batch", int(steps), *shape])
    last = net.neuron_layers[-1]
    total = outer.op("ReduceSum", [outer.op("Cast", [f"spikes_{last}"], to=INT64), outer.const([1])], keepdims=0)
    outer.op(
        "Reshape", [total, outer.const([-1, *net.output_shape])], out="output_counts"
    )  # a final flatten counts too
    outer.output("output_counts", onnx.TensorProto.INT64, ["batch", *net.output_shape])
    last_v = len(units) - (1 if isinstance(net.layers[last], Input) else 2)  # carried: u, v (, queue) a layer
    outer.op("Reshape", [f"final_{last_v}", outer.const([-1, *net.output_shape])], out="output_v")
    outer.output("output_v", onnx.TensorProto.INT64, ["batch", *net.output_shape])
    model = onnx.helper.make_model(
        outer.graph("neurodeploy_netlist"),
        opset_imports=[onnx.helper.make_opsetid("", OPSET)],
        producer_name="neurodeploy",
        doc_string=f"integer netlist, {steps} steps, Loihi fixed-point semantics",
    )
    model.ir_version = IR_VERSION
    onnx.helper.set_model_props(model, {"steps": str(int(steps)), "readout": net.readout})
    onnx.checker.check_model(model, full_check=True)
    return model


@dataclass
class _Inputs:
    """Names of the graph's input values: spikes, the input layer's bias, the batch size (1-D)
    and, for an input layer's drive, the index of its last step (inputs may cover one step)."""

    spikes: str
    bias: str | None
    batch: str
    last_step: str | None

    @property
    def drive(self) -> tuple[str, str]:
        """``bias`` and ``last_step``, which a netlist with an input layer has."""
        if self.bias is None or self.last_step is None:
            raise OnnxExportError("layer 0: not an input layer, so the graph has no bias or drive input")
        return self.bias, self.last_step


def _graph_inputs(g: _Builder, net: Netlist, steps: int) -> _Inputs:
    """``spikes`` for the first synaptic layer; or, for an input layer, ``bias`` and ``spikes``
    (its drive), both overridable initializers: the layer's own bias, and no drive."""
    import onnx

    first = net.layers[0]
    if isinstance(first, Input) and np.abs(first.bias).max(initial=0) >= 2**31:
        raise OnnxExportError(
            f"layer 0 (input): bias mantissas beyond int32 ({np.abs(first.bias).max()}) cannot be a graph input"
        )
    if not isinstance(first, Input):
        spikes = g.input("spikes", onnx.TensorProto.INT32, ["batch", steps, *net.external_shape])
        return _Inputs(spikes, None, _dim(g, spikes, 0), None)
    g.initializers.append(onnx.numpy_helper.from_array(first.bias.astype(np.int32)[None], "bias"))
    g.initializers.append(onnx.numpy_helper.from_array(np.zeros((1, 1, *first.shape), np.int32), "spikes"))
    # Either may keep its one-sample default while the other holds a batch: distinct dim names.
    bias = g.input("bias", onnx.TensorProto.INT32, ["bias_batch", *first.shape])
    spikes = g.input("spikes", onnx.TensorProto.INT32, ["drive_batch", "steps", *first.shape])
    batch = g.op("Max", [_dim(g, bias, 0), _dim(g, spikes, 0)])
    last_step = g.op("Squeeze", [g.op("Sub", [_dim(g, spikes, 1), g.const([1])])])
    return _Inputs(spikes, bias, batch, last_step)


def _dim(g: _Builder, x: str, axis: int) -> str:
    """Size of ``x`` along ``axis``, as a 1-D tensor."""
    return g.op("Slice", [g.op("Shape", [x]), g.const([axis]), g.const([axis + 1])])


def _int64_scalar(value: int):
    import onnx

    return onnx.helper.make_tensor("value", onnx.TensorProto.INT64, [1], [value])


def _shape_of(g: _Builder, batch: str, depth: int | None, n: int) -> str:
    """The shape tensor (batch, n), or (depth, batch, n) for an input queue."""
    if depth is None:
        return g.op("Concat", [batch, g.const([n])], axis=0)
    return g.op("Concat", [g.const([depth]), batch, g.const([n])], axis=0)


# --- one step of every layer ---------------------------------------------------------------


def _step_body(outer: _Builder, net: Netlist, io: _Inputs):
    """The Loop body and its carried states as (queue depth or None, neurons): u and v are
    (batch, n), an input queue (depth, batch, n)."""
    import onnx

    body = _Builder("step", outer)
    it = body.input("iter", onnx.TensorProto.INT64, [])
    body.input("cond_in", onnx.TensorProto.BOOL, [])
    carried: list[tuple[int | None, int]] = []
    new_states, traces = [], []
    spikes_before: str | None = None
    zero_row: dict[int, str] = {}  # n -> a (1, B, n) zero tensor, made outside the loop
    for k, i in enumerate(net.neuron_layers):
        layer = neuron_layer(net.layers[i])
        n = int(np.prod(layer.shape))
        u = body.input(f"u_{i}", onnx.TensorProto.INT64, ["batch", n])
        v = body.input(f"v_{i}", onnx.TensorProto.INT64, ["batch", n])
        carried += [(None, n), (None, n)]
        queue = None
        if isinstance(layer, Input):
            a_in = _external_step(body, io.spikes, body.op("Min", [it, io.drive[1]]), layer.shape)
        else:
            depth = _synapse_depth(layer)
            queue = body.input(f"queue_{i}", onnx.TensorProto.INT64, [depth, "batch", n])
            carried.append((depth, n))
            a_in = body.op("Gather", [queue, body.const(np.int64(0))], axis=0)
        u, v, fired = _neuron_step(body, it, u, v, a_in, _bias(outer, layer, io), k, net, cuba_neuron(layer))
        new_states += [u, v]
        if queue is not None:
            pre = _external_step(body, io.spikes, it, net.external_shape) if spikes_before is None else spikes_before
            new_states.append(_next_queue(body, outer, net, i, queue, pre, io.batch, zero_row))
        spikes_before = body.op("Cast", [fired], to=INT64)
        traces.append(
            body.op("Reshape", [body.op("Cast", [fired], to=onnx.TensorProto.UINT8), body.const([-1, *layer.shape])])
        )
    body.output(body.op("Identity", ["cond_in"]), onnx.TensorProto.BOOL, [])
    for name in new_states:
        body.output(body.op("Identity", [name]), onnx.TensorProto.INT64, None)
    for name in traces:
        body.output(name, onnx.TensorProto.UINT8, None)
    return body.graph("step"), carried


def _synapse_depth(layer: Dense | Conv) -> int:
    delay = layer.delay if isinstance(layer, Dense) else None
    return 1 if delay is None else int(delay.max()) + 1


def _neuron_step(
    g: _Builder, it: str, u: str, v: str, a_in: str, bias: str | None, k: int, net: Netlist, neuron: CubaNeuron
):
    """One step of the k-th neuron layer: periodic reset, u, v, spikes, v zeroed where they fired."""
    if net.reset_interval:
        u, v = _periodic_reset(g, it, u, v, k, net.reset_interval, net.reset_offset)
    u = _update_current(g, u, a_in, neuron.du)
    v = _update_voltage(g, v, u, bias, neuron.dv)
    fired = g.op("Greater", [v, g.const(np.int64(neuron.vth << fx.ACT_SHIFT))])
    return u, g.op("Where", [fired, g.const(np.int64(0)), v]), fired


def _periodic_reset(g: _Builder, it: str, u: str, v: str, k: int, interval: int, offset: int) -> tuple[str, str]:
    """Zero u and v at steps t with t % interval == (k + offset) % interval."""
    interval = int(interval)
    phase = (k + int(offset)) % interval
    now = g.op("Equal", [g.op("Mod", [it, g.const(np.int64(interval))]), g.const(np.int64(phase))])
    zero = g.const(np.int64(0))
    return g.op("Where", [now, zero, u]), g.op("Where", [now, zero, v])


def _update_current(g: _Builder, u: str, a_in: str, du: int) -> str:
    """fixed_point.update_current: decay, add a_in << 6, int32 wrap, one-step 24-bit wrap."""
    total = g.op(
        "Add", [_decay(g, u, fx.DECAY_UNITY - (du + 1)), g.op("Mul", [a_in, g.const(np.int64(1 << fx.ACT_SHIFT))])]
    )
    total = _wrap(g, total, 32)
    span = g.const(np.int64(2 * fx.MAX_UV))
    high = g.op("Greater", [total, g.const(np.int64(fx.MAX_UV))])
    low = g.op("LessOrEqual", [total, g.const(np.int64(-fx.MAX_UV))])
    total = g.op("Where", [high, g.op("Sub", [total, span]), total])
    return g.op("Where", [low, g.op("Add", [total, span]), total])


def _update_voltage(g: _Builder, v: str, u: str, bias: str | None, dv: int) -> str:
    """fixed_point.update_voltage: decay, add u and the bias, int32 wrap, saturate to 24 bits."""
    total = g.op("Add", [_decay(g, v, fx.DECAY_UNITY - dv), u])
    if bias is not None:
        total = g.op("Add", [total, bias])
    return g.op("Clip", [_wrap(g, total, 32), g.const(np.int64(-fx.V_LIMIT)), g.const(np.int64(fx.V_LIMIT))])


def _decay(g: _Builder, x: str, factor: int) -> str:
    """x * factor / 4096 truncated toward zero (integer Div truncates)."""
    return g.op("Div", [g.op("Mul", [x, g.const(np.int64(factor))]), g.const(np.int64(fx.DECAY_UNITY))])


def _wrap(g: _Builder, x: str, bits: int) -> str:
    """Two's-complement wrap into ``bits`` bits: Mod with a positive divisor is never negative."""
    half = g.const(np.int64(1 << (bits - 1)))
    return g.op("Sub", [g.op("Mod", [g.op("Add", [x, half]), g.const(np.int64(1 << bits))]), half])


def _shift(g: _Builder, x: str, exp: int) -> str:
    """fixed_point.shift: x << exp, or a floor (arithmetic) shift right for exp < 0."""
    if exp >= 0:
        return x if exp == 0 else g.op("Mul", [x, g.const(np.int64(1 << exp))])
    d = g.const(np.int64(1 << -exp))
    return g.op("Div", [g.op("Sub", [x, g.op("Mod", [x, d])]), d])


def _bias(outer: _Builder, layer: Layer, io: _Inputs) -> str | None:
    """The effective bias added to v: a constant, or the run's input mantissas for an input layer."""
    bias_exp = cuba_neuron(layer).bias_exp
    if isinstance(layer, Input):
        n = int(np.prod(layer.shape))
        mant = outer.op("Reshape", [outer.op("Cast", [io.drive[0]], to=INT64), outer.const([-1, n])])
        return _wrap(outer, _shift(outer, mant, bias_exp), 32)
    bias = neuron_layer(layer).bias
    if bias is None:
        return None
    return outer.const(fx.effective_bias(bias_per_neuron(np.asarray(bias), layer.shape).reshape(1, -1), bias_exp))


def _external_step(g: _Builder, x: str, step: str, in_shape: tuple[int, ...]) -> str:
    """Input spikes of one step, (B, n) int64."""
    now = g.op("Gather", [x, step], axis=1)
    return g.op("Reshape", [g.op("Cast", [now], to=INT64), g.const([-1, int(np.prod(in_shape))])])


def _next_queue(body, outer, net: Netlist, i: int, queue: str, pre: str, batch: str, zero_row: dict[int, str]) -> str:
    """Advance layer i's input queue one step and add what this step's spikes send."""
    layer = synaptic_layer(net.layers[i])
    _check_bound(net, i)
    depth = _synapse_depth(layer)
    if isinstance(layer, Dense) and layer.delay is not None and depth > 1:
        n = int(np.prod(layer.shape))
        if n not in zero_row:
            zero_row[n] = outer.op("ConstantOfShape", [_shape_of(outer, batch, 1, n)], value=_int64_scalar(0))
        rest = body.op("Slice", [queue, body.const([1]), body.const([depth]), body.const([0])])
        advanced = body.op("Concat", [rest, zero_row[n]], axis=0)
        return body.op("Add", [advanced, _delayed(body, outer, layer, layer.delay, pre, zero_row[n])])
    if isinstance(layer, Dense):
        sent = _dense(body, outer, fx.dense_weights(layer.weight, layer.weight_bits), layer.weight_exp, pre)
    else:
        sent = _conv(body, outer, layer, pre, batch)
    return body.op("Unsqueeze", [sent, body.const([0])])


def _delayed(body, outer, layer: Dense, delay: np.ndarray, pre: str, zero: str) -> str:
    """What this step sends through ``layer`` with its ``delay``, per arrival slot (depth, B, n): one weight
    matrix per delay in use, scattered by a Gather over [zeros, sums of each delay]."""
    delays = np.unique(delay)
    held = fx.dense_weights(layer.weight, layer.weight_bits)
    stack = np.stack([np.where(delay == d, held, 0) for d in delays])  # (k, out, in)
    sums = _dense(body, outer, stack, layer.weight_exp, pre)  # (k, B, n)
    slot = np.zeros(int(delays[-1]) + 1, np.int64)
    slot[delays] = np.arange(1, len(delays) + 1)
    return body.op("Gather", [body.op("Concat", [zero, sums], axis=0), outer.const(slot)], axis=0)


def _dense(body, outer, weight: np.ndarray, exp: int, pre: str) -> str:
    """Sums through ``weight`` (out, in), or a stack (k, out, in), shifted by ``exp``:
    (B, out) or (k, B, out)."""
    return _shift(body, body.op("MatMul", [pre, outer.const(np.swapaxes(weight, -1, -2).copy())]), exp)


def _conv(body, outer, layer: Conv, pre: str, batch: str) -> str:
    """Cross-correlation as im2col Gather + int64 MatMul, shifted and wrapped to 24 bits."""
    index, matrix = _im2col(layer)
    zero_col = outer.op(
        "ConstantOfShape", [outer.op("Concat", [batch, outer.const([1])], axis=0)], value=_int64_scalar(0)
    )
    padded = body.op("Concat", [pre, zero_col], axis=1)
    patches = body.op("Gather", [padded, outer.const(index, np.int32)], axis=1)  # (B, positions, taps)
    out = body.op("Transpose", [body.op("MatMul", [patches, outer.const(matrix)])], perm=[0, 2, 1])
    flat = body.op("Reshape", [out, body.const([-1, int(np.prod(layer.shape))])])
    return _wrap(body, _shift(body, flat, layer.weight_exp), 24)


def _im2col(layer: Conv) -> tuple[np.ndarray, np.ndarray]:
    """Gather indices (positions, C*kH*kW) into the flat input (C*H*W means padding: zero)
    and the matching (C*kH*kW, C_out) weight matrix, zero across groups."""
    c, h, w = layer.in_shape
    o, cg, kh, kw = layer.weight.shape
    _, ho, wo = layer.shape
    (sh, sw), (ph, pw), (dh, dw) = layer.stride, layer.padding, layer.dilation
    rows = np.arange(ho)[:, None, None, None] * sh + np.arange(kh)[None, None, :, None] * dh - ph
    cols = np.arange(wo)[None, :, None, None] * sw + np.arange(kw)[None, None, None, :] * dw - pw
    rows, cols = np.broadcast_arrays(rows, cols)  # (ho, wo, kh, kw)
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    flat = np.where(inside, rows * w + cols, -1)
    index = flat[:, :, None] + (np.arange(c) * h * w)[None, None, :, None, None]  # (ho, wo, c, kh, kw)
    index = np.where(flat[:, :, None] < 0, c * h * w, index).reshape(ho * wo, c * kh * kw)
    matrix = np.zeros((c, kh, kw, o), np.int64)
    og = o // layer.groups
    for g in range(layer.groups):
        block = layer.weight[g * og : (g + 1) * og]  # (og, cg, kh, kw)
        matrix[g * cg : (g + 1) * cg, :, :, g * og : (g + 1) * og] = block.transpose(1, 2, 3, 0)
    return index, matrix.reshape(c * kh * kw, o)


def _check_bound(net: Netlist, i: int) -> None:
    """Refuse a layer whose int64 sums could overflow: |w| * fan-in * payload * 2**exp * 2**6 < 2**63."""
    layer = synaptic_layer(net.layers[i])
    weight = fx.dense_weights(layer.weight, layer.weight_bits) if isinstance(layer, Dense) else layer.weight
    fan_in = int(np.prod(weight.shape[1:]))
    payload = MAX_PAYLOAD if i == 0 else 1
    bound = int(np.abs(weight).max(initial=0)) * fan_in * payload << (max(layer.weight_exp, 0) + fx.ACT_SHIFT)
    if bound >= INT64_BOUND:
        raise OnnxExportError(
            f"{layer_label(i, layer)}: sums up to {bound} (|weight| x fan-in {fan_in} x input {payload} "
            f"x 2**{max(layer.weight_exp, 0) + fx.ACT_SHIFT}) could overflow int64 (limit 2**63)"
        )


# --- graph building ---------------------------------------------------------------------------


class _Builder:
    """Accumulates nodes, initializers and value infos of one ONNX graph, naming values uniquely."""

    def __init__(self, prefix: str, parent: _Builder | None = None):
        self.prefix, self.parent = prefix, parent
        self.nodes: list[Any] = []  # onnx NodeProto, TensorProto and ValueInfoProto
        self.initializers: list[Any] = []
        self.inputs: list[Any] = []
        self.outputs: list[Any] = []
        self.count: list[int] = [0] if parent is None else parent.count

    def name(self, hint: str) -> str:
        self.count[0] += 1
        return f"{self.prefix}_{hint}_{self.count[0]}"

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        import onnx

        out = out or self.name(op_type.lower())
        self.nodes.append(onnx.helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def const(self, value, dtype=np.int64) -> str:
        """An integer constant, kept in the outermost graph (a list makes a 1-D shape or axes tensor)."""
        import onnx

        arr = np.asarray(value, dtype=dtype)
        root = self if self.parent is None else self.parent
        name = root.name("c")
        root.initializers.append(onnx.numpy_helper.from_array(arr, name))
        return name

    def input(self, name: str, elem: int, shape) -> str:
        import onnx

        self.inputs.append(onnx.helper.make_tensor_value_info(name, elem, shape))
        return name

    def output(self, name: str, elem: int, shape) -> None:
        import onnx

        self.outputs.append(onnx.helper.make_tensor_value_info(name, elem, shape))

    def graph(self, name: str):
        import onnx

        return onnx.helper.make_graph(self.nodes, name, self.inputs, self.outputs, initializer=self.initializers)


# --- running ---------------------------------------------------------------------------------


def run_onnx(
    path: str | os.PathLike, spikes: np.ndarray | None = None, bias: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Run a model written by :func:`write_onnx` in onnxruntime; returns every output by name.

    ``spikes`` (batch, >= steps, *shape) integers feed the first synaptic layer, or
    drive an input layer's neurons; ``bias`` replaces an input layer's mantissas
    (shaped like the layer, per channel, or per sample). As :func:`neurodeploy.sim.simulate`.
    """
    import onnxruntime as ort

    if not os.path.exists(path):
        raise InputFileError(f"{path}: no such file")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # overridable initializers (the defaults of bias and drive) draw warnings
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    steps = int(session.get_modelmeta().custom_metadata_map["steps"])
    required = {v.name: v.shape for v in session.get_inputs()}
    defaults = {v.name: v.shape for v in session.get_overridable_initializers()}
    feeds: dict[str, Any] = {}
    if spikes is None and "spikes" in required:
        raise InputFileError(f"{path}: the model takes input spikes (batch, {steps}, ...); none were given")
    if spikes is not None:
        shape = tuple(int(s) for s in {**required, **defaults}["spikes"][2:])
        feeds["spikes"] = _spikes_feed(path, np.asarray(spikes), steps, shape)
    if bias is not None:
        if "bias" not in defaults:
            raise InputFileError(f"{path}: the model has no input layer, so no bias to replace")
        feeds["bias"] = _bias_feed(path, np.asarray(bias), tuple(int(s) for s in defaults["bias"][1:]))
    if "spikes" in feeds and "bias" in feeds and len(feeds["bias"]) not in (1, len(feeds["spikes"])):
        raise InputFileError(f"{path}: batch of bias ({len(feeds['bias'])}) and spikes ({len(feeds['spikes'])}) differ")
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def _spikes_feed(path, spikes: np.ndarray, steps: int, shape: tuple[int, ...]) -> np.ndarray:
    if spikes.ndim != len(shape) + 2 or tuple(spikes.shape[2:]) != shape or spikes.shape[1] < steps:
        raise InputFileError(f"{path}: spikes of shape {spikes.shape} do not fit (batch, >= {steps}, *{shape})")
    if spikes.dtype.kind not in "biu" or np.abs(spikes.astype(np.int64)).max(initial=0) > MAX_PAYLOAD:
        raise InputFileError(f"{path}: spikes must be integers of magnitude <= {MAX_PAYLOAD}")
    return np.ascontiguousarray(spikes[:, :steps].astype(np.int32))


def _bias_feed(path, bias: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if bias.shape == shape or (len(shape) == 3 and bias.shape == (shape[0],)):
        bias = bias_per_neuron(bias, shape)[None]
    if bias.shape[1:] != shape or bias.dtype.kind not in "biu":
        raise InputFileError(
            f"{path}: bias of shape {bias.shape} ({bias.dtype}) fits neither {shape} nor (batch, *{shape}) integers"
        )
    return np.ascontiguousarray(bias.astype(np.int32))

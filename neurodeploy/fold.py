"""Folding a float graph into neuron layers the chip can hold.

What the chip does not have is folded away: batch norm into weights and bias,
sum pooling into the next layer's weights, the synaptic input scale (1/tau_s)
into the weights. The result is one :class:`FloatLayer` a neuron layer, still in
floats, with exactly the per-step dynamics of ``neurodeploy.models.graph``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurodeploy.errors import NeurodeployError
from neurodeploy.netlist import conv_output_size


class FoldError(NeurodeployError):
    """A float graph the chip cannot run; the message names the op."""


@dataclass
class FloatLayer:
    """A neuron layer after folding: ``v += (1-dv) v + input_scale-free A x + c``.

    ``weight`` already includes batch norm, pooling and the input scale;
    ``bias`` is the constant drive per output neuron (or channel for conv).
    ``weight_rec`` (out, out), for a recurrent dense layer, weighs the layer's own
    spikes of the step before, with the same scaling as ``weight``.
    ``copies``: how many times the chip holds each of the layer's neurons (a
    recurrent dense layer only; see ``neurodeploy.quantize``).
    """

    kind: str  # "dense" or "conv"
    weight: np.ndarray
    bias: np.ndarray
    neuron: dict
    in_shape: tuple[int, ...]
    shape: tuple[int, ...]
    flatten_before: bool = False
    conv: dict = field(default_factory=dict)  # stride, padding, dilation, groups
    weight_rec: np.ndarray | None = None
    # "weight" or "weight_rec" where its last column is an always-on neuron's: a bias into the current
    bias_column: str | None = None
    copies: int = 1


def _pool_into_conv(op: dict, k: int, pooled_in: tuple[int, int, int], label: str) -> dict:
    """A conv on k x k sum-pooled input, rewritten as one conv on the unpooled input."""
    if tuple(op["dilation"]) != (1, 1):
        raise FoldError(f"{label}: cannot fold sum pooling into a dilated conv")
    if any(op["padding"]) and (pooled_in[1] * k, pooled_in[2] * k) != op["_unpooled"][1:]:
        raise FoldError(f"{label}: pooled input {op['_unpooled']} is not a multiple of the pool {k} and the conv pads")
    weight = np.repeat(np.repeat(op["weight"], k, axis=2), k, axis=3)
    return {
        **op,
        "weight": weight,
        "stride": tuple(s * k for s in op["stride"]),
        "padding": tuple(p * k for p in op["padding"]),
    }


def _pool_into_dense(weight: np.ndarray, k: int, unpooled: tuple[int, int, int]) -> np.ndarray:
    """A dense layer on flattened k x k sum-pooled input, as one on the unpooled input."""
    c, h, w = unpooled
    ph, pw = h // k, w // k
    w4 = weight.reshape(weight.shape[0], c, ph, pw)
    full = np.zeros((weight.shape[0], c, h, w))
    full[:, :, : ph * k, : pw * k] = np.repeat(np.repeat(w4, k, axis=2), k, axis=3)
    return full.reshape(weight.shape[0], -1)


def _fold_batchnorm(layer: dict, bn: dict) -> None:
    gain = bn["gamma"] / np.sqrt(bn["var"] + bn["eps"])
    axes = (-1,) + (1,) * (layer["weight"].ndim - 1)
    layer["weight"] = layer["weight"] * gain.reshape(axes)
    layer["bias"] = gain * (layer["bias"] - bn["mean"]) + bn["beta"]


def fold(graph: list[dict]) -> list[FloatLayer]:
    """Fold ``graph`` (``neurodeploy.models.graph`` format) into neuron layers."""
    if not graph or graph[0].get("op") != "input":
        raise FoldError("float graph must start with an 'input' op")
    shape = tuple(graph[0]["shape"])
    layers: list[FloatLayer] = []
    pending: dict | None = None
    pool, flatten = 0, False
    unpooled = shape
    for i, op in enumerate(graph[1:], start=1):
        label = f"op {i} ({op['op']})"
        kind = op["op"]
        if kind == "sumpool":
            if pool:
                raise FoldError(f"{label}: two sum poolings in a row")
            pool, unpooled = int(op["kernel"]), shape
            if int(op.get("stride", pool)) != pool:
                raise FoldError(f"{label}: sum pooling must have stride equal to its kernel")
            shape = (shape[0], shape[1] // pool, shape[2] // pool)
        elif kind == "flatten":
            flatten, shape = True, (int(np.prod(shape)),)
        elif kind in ("dense", "conv"):
            pending = _start_layer(op, kind, shape, unpooled, pool, flatten, label)
            shape = pending["out_shape"]
        elif kind == "batchnorm":
            if pending is None:
                raise FoldError(f"{label}: batch norm without synapses before it")
            _fold_batchnorm(pending, op)
        elif kind == "neuron":
            if pending is None:
                raise FoldError(f"{label}: neuron without synapses before it")
            layers.append(_close_layer(pending, op, label))
            pending, pool, flatten = None, 0, False
            unpooled = shape
        elif kind != "dropout":
            raise FoldError(f"{label}: no chip equivalent for op {kind!r}")
    if pending is not None:
        raise FoldError("float graph ends with synapses that have no neurons")
    return layers


def _start_layer(op, kind, shape, unpooled, pool, flatten, label) -> dict:
    weight = np.asarray(op["weight"], dtype=np.float64)
    bias = np.zeros(weight.shape[0]) if op.get("bias") is None else np.asarray(op["bias"], dtype=np.float64)
    if kind == "dense":
        in_shape = unpooled if pool else shape
        if pool:
            weight = _pool_into_dense(weight, pool, unpooled)
        return {
            "kind": kind,
            "weight": weight,
            "bias": bias,
            "in_shape": in_shape,
            "out_shape": (weight.shape[0],),
            "flatten": flatten or len(in_shape) > 1,
            "conv": {},
            "weight_rec": None if op.get("weight_rec") is None else np.asarray(op["weight_rec"], dtype=np.float64),
            "bias_column": op.get("bias_column"),
            "copies": int(op.get("copies", 1)),
        }
    conv: dict[str, Any] = {
        "stride": tuple(op["stride"]),
        "padding": tuple(op["padding"]),
        "dilation": tuple(op.get("dilation", (1, 1))),
        "groups": int(op.get("groups", 1)),
    }
    in_shape = shape
    if pool:
        conv = _pool_into_conv({**conv, "weight": weight, "_unpooled": unpooled}, pool, shape, label)
        weight = conv.pop("weight")
        conv.pop("_unpooled")
        in_shape = unpooled
    size = conv_output_size(in_shape[1:], weight.shape[2:], conv["stride"], conv["padding"], conv["dilation"])
    out_shape = (weight.shape[0], *size)
    return {
        "kind": kind,
        "weight": weight,
        "bias": bias,
        "in_shape": in_shape,
        "out_shape": out_shape,
        "flatten": False,
        "conv": conv,
    }


def _close_layer(pending: dict, neuron: dict, label: str) -> FloatLayer:
    if neuron.get("spike", "binary") != "binary" or neuron.get("input_relu"):
        raise FoldError(
            f"{label}: graded spikes with ReLU input (BPSA's graded variant) cannot run as a binary CUBA neuron"
        )
    weight, weight_rec = pending["weight"], pending.get("weight_rec")
    if neuron.get("drive", "synaptic") == "synaptic":
        weight = weight * float(neuron.get("input_scale", 1.0))
        if weight_rec is not None:
            weight_rec = weight_rec * float(neuron.get("input_scale", 1.0))
    return FloatLayer(
        pending["kind"],
        weight,
        pending["bias"],
        dict(neuron),
        tuple(pending["in_shape"]),
        tuple(pending["out_shape"]),
        pending["flatten"],
        pending["conv"],
        weight_rec,
        pending.get("bias_column"),
        pending.get("copies", 1),
    )

"""``neurodeploy inspect``: print a netlist's layer table."""

from __future__ import annotations

import argparse

import numpy as np

from neurodeploy.commands.run import add_input_shape, load_network
from neurodeploy.errors import printable

COLUMNS = (
    "#",
    "type",
    "shape",
    "kernel",
    "stride",
    "padding",
    "w bits",
    "w exp",
    "neuron",
    "vth",
    "du",
    "dv",
    "msg bits",
    "neurons",
    "synapses",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from neurodeploy.netio import READERS

    parser.add_argument("net", help=f"netlist file ({', '.join(sorted(READERS))})")
    add_input_shape(parser)


def run(args: argparse.Namespace) -> int:
    print(describe(load_network(args), str(args.net)))
    return 0


def describe(net, title: str) -> str:
    """The run conventions of ``net`` and its layer table, one row a layer, with totals."""
    rows = [layer_row(i, layer) for i, layer in enumerate(net.layers)]
    neurons = sum(int(np.prod(layer.shape)) for layer in net.layers if hasattr(layer, "neuron"))
    synapses = sum(synapse_count(layer) for layer in net.layers)
    rows.append(("", "total") + ("",) * (len(COLUMNS) - 4) + (str(neurons), str(synapses)))
    widths = [max(len(str(row[c])) for row in rows + [COLUMNS]) for c in range(len(COLUMNS))]
    lines = [printable(title)]
    if net.input_shape is not None:
        lines.append(f"input shape {_dims(net.input_shape)} (C, H, W)")
    reset = "never" if net.reset_interval is None else f"every {net.reset_interval} steps (offset {net.reset_offset})"
    lines.append(f"reset: {reset}; latency {net.latency} step{'' if net.latency == 1 else 's'}")
    if net.graded:
        exps = sorted(
            {net.layers[i].neuron.spike_exp for i in net.neuron_layers if hasattr(net.layers[i].neuron, "spike_exp")}
        )
        lines.append(
            f"sigma-delta network (graded spikes): spike_exp {', '.join(map(str, exps))}, "
            f"state_exp 6, {_graded_input(net)}; no resets"
        )
    if net.output_window is not None:
        lines.append(f"output window: steps {net.output_window[0]} .. {net.output_window[1] - 1}")
    for key, value in net.meta.get("simulation", {}).items():
        lines.append(f"simulation {key} = {value}")
    for row in [COLUMNS] + rows:
        lines.append("  ".join(str(cell).rjust(width) for cell, width in zip(row, widths)))
    return "\n".join(lines)


def _graded_input(net) -> str:
    if net.layers[0].kind == "input":
        return "input delta-encoded by layer 0"
    bits = net.input_message_bits
    return f"input messages of {bits} bits" if bits else "binary input spikes"


def layer_row(index: int, layer) -> tuple[str, ...]:
    """One table row: type, shape, synapse geometry and encoding, neuron parameters, sizes."""
    kind = layer.kind + (f" {printable(layer.name)}" if layer.name else "")
    kernel = stride = padding = bits = exp = "-"
    if layer.kind == "conv":
        kernel = _dims(layer.weight.shape[2:]) + (f" d{_dims(layer.dilation)}" if max(layer.dilation) > 1 else "")
        kernel += f" g{layer.groups}" if layer.groups > 1 else ""
        stride, padding, exp = _dims(layer.stride), _dims(layer.padding), str(layer.weight_exp)
    elif layer.kind in ("dense", "dense_rec"):
        bits, exp = str(layer.weight_bits), str(layer.weight_exp)
        if layer.delay is not None:
            kernel = f"delay<={int(layer.delay.max())}"
        if layer.kind == "dense_rec":
            kernel = "recurrent"
    neuron = getattr(layer, "neuron", None)
    cells = [str(getattr(neuron, name, "-")) for name in ("vth", "du", "dv", "message_bits")]
    if neuron is not None and getattr(neuron, "activation", "relu") != "relu":
        cells[0] += f" ({neuron.activation})"
    neuron_kind = "-" if neuron is None else getattr(neuron, "kind", "cuba")
    neurons = str(int(np.prod(layer.shape))) if neuron is not None else "-"
    synapses = str(synapse_count(layer)) if layer.kind in ("conv", "dense", "dense_rec") else "-"
    return (
        str(index),
        kind,
        _dims(layer.shape),
        kernel,
        stride,
        padding,
        bits,
        exp,
        neuron_kind,
        *cells,
        neurons,
        synapses,
    )


def synapse_count(layer) -> int:
    """Connections with a nonzero weight (as the chip holds it) into ``layer``; 0 for no synapses."""
    from neurodeploy import fixed_point as fx

    if layer.kind == "dense_rec":
        return sum(
            int(np.count_nonzero(fx.dense_weights(w, layer.weight_bits))) for w in (layer.weight, layer.weight_rec)
        )
    if layer.kind == "dense":
        return int(np.count_nonzero(fx.dense_weights(layer.weight, layer.weight_bits)))
    if layer.kind != "conv":
        return 0
    _, h, w = layer.in_shape
    _, ho, wo = layer.shape
    total = 0
    for i in range(layer.weight.shape[2]):
        for j in range(layer.weight.shape[3]):
            rows = np.arange(ho) * layer.stride[0] + i * layer.dilation[0] - layer.padding[0]
            cols = np.arange(wo) * layer.stride[1] + j * layer.dilation[1] - layer.padding[1]
            inside = int(((rows >= 0) & (rows < h)).sum()) * int(((cols >= 0) & (cols < w)).sum())
            total += inside * int(np.count_nonzero(layer.weight[:, :, i, j]))
    return total


def _dims(values) -> str:
    return "x".join(str(int(v)) for v in values)

"""``neurodeploy run``: simulate a netlist (or run it in Lava) and save what it computed.

Arrays are in the netlist's order, (C, H, W) for spatial layers. ``--input`` holds
spikes shaped (batch, steps, *input shape) or (steps, *input shape); ``--input-bias``
holds the input layer's bias mantissas shaped like the layer, optionally with a
leading batch axis. With ``--input-order lava`` the input is one sample in Lava's
(x, y, f, t) order (or (n, t)), as lava-dl's files store it, played cyclically
over the steps as Lava's RingBuffer plays it. The output ``.npz`` holds ``s{i}``,
``u{i}``, ``v{i}`` of every neuron layer i (batch, steps, *layer shape; in a
sigma-delta network ``s{i}`` holds the graded messages, and ``sigma{i}``,
``act{i}`` replace u and v), the per-layer counters aligned with ``layers``,
``output_counts``, and the run ``conventions`` used.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import numpy as np

from neurodeploy.counters import COUNTERS
from neurodeploy.errors import InputFileError
from neurodeploy.fixed_point import INT32
from neurodeploy.npyfile import load_array, npy_shape
from neurodeploy.ranges import integer

if TYPE_CHECKING:
    from neurodeploy.netlist import Netlist


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from neurodeploy.netio import READERS
    from neurodeploy.simulators import BACKENDS, DEVICE_HELP

    parser.add_argument("net", help=f"netlist file ({', '.join(sorted(READERS))})")
    parser.add_argument("--steps", type=integer(1, 1 << 31), required=True, metavar="T", help="time steps to run")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input", metavar="SPIKES.npy", help="input spikes (batch, T, *input shape)")
    source.add_argument("--input-bias", metavar="BIAS.npy", help="input layer bias mantissas ([batch,] *layer shape)")
    add_input_shape(parser)
    parser.add_argument(
        "--input-order",
        choices=("ours", "lava"),
        default="ours",
        help="--input as (batch, T, C, H, W) (default) or as lava-dl stores it, (x, y, f, t), played cyclically",
    )
    parser.add_argument(
        "--reset-interval",
        type=integer(0, 1 << 31),
        metavar="N",
        help="reset u and v every N steps, staggered by layer (default: the netlist's; 0: never)",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="sim",
        help=", ".join(f"{b.name}: {b.help}" for b in BACKENDS.values()),
    )
    add_conventions(parser, "lava (Lava's fixed_pt, the default) or loihi2 (Loihi 2 silicon)")
    parser.add_argument("--device", help=DEVICE_HELP + " (with --backend sim)")
    parser.add_argument(
        "--record",
        type=_record,
        default=None,
        metavar="s,u,v",
        help="variables to save: s and u, v (CUBA) or sigma, act (sigma-delta) (default all the network has)",
    )
    parser.add_argument("-o", "--output", required=True, metavar="OUT.npz", help="output file")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 2 (after saving) if u wraps or v saturates in any layer (counted by the "
        "simulator, with either backend)",
    )


def run(args: argparse.Namespace) -> int:
    from neurodeploy.atomic import atomic_path, check_writable
    from neurodeploy.simulators import find_backend

    check_writable(args.output)
    net = load_network(args)
    spikes = load_spikes(args.input, net, args.steps, args.input_order) if args.input else None
    bias = load_bias(args.input_bias, net) if args.input_bias else None
    reset = -1 if args.reset_interval is None else (args.reset_interval or None)
    conventions = args.conventions or "lava"
    record = args.record or (("s", "sigma", "act") if net.graded else ("s", "u", "v"))
    chosen = find_backend(args.backend)
    rec = chosen.run(
        net,
        args.steps,
        spikes=spikes,
        bias=bias,
        record=record,
        reset_interval=reset,
        conventions=conventions,
        device=args.device,
    )
    arrays = recording_arrays(rec, not chosen.reference)
    arrays["conventions"] = np.array(conventions)
    with atomic_path(args.output) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)  # type: ignore[arg-type]  # numpy's stub lets **arrays fill allow_pickle
    spikes_out = ", ".join(f"{i}: {rec.spike_count[i]}" for i in sorted(rec.spike_count))
    print(
        f"{args.net}: {args.steps} steps, batch {rec.batch}, backend {args.backend}, conventions {conventions}; "
        f"spikes by layer {spikes_out}"
    )
    print(f"wrote {args.output}")
    if chosen.reference:  # its models wrap and saturate alike but do not count; the simulator does
        from neurodeploy.sim import simulate

        rec = simulate(net, args.steps, spikes=spikes, bias=bias, record=(), reset_interval=reset)
    report_faults(rec, net, args.net, args.strict)
    return 0


def add_input_shape(parser: argparse.ArgumentParser) -> None:
    """The ``--input-shape`` option, for netx files that give no input shape."""
    parser.add_argument(
        "--input-shape",
        type=_shape,
        metavar="C,H,W",
        help="input shape of a netx file that gives none (lava-dl's SLAYER export of a conv "
        "network); taken from --input's spikes where given",
    )


def load_network(args: argparse.Namespace):
    """The netlist in ``args.net``; a netx file without an input shape takes the shape of ``--input``'s
    spikes (batch, steps, C, H, W) or (steps, C, H, W), else ``--input-shape``."""
    from neurodeploy.exporters.netx import InputShapeUnknown
    from neurodeploy.netio import load_netlist

    try:
        return load_netlist(args.net)
    except InputShapeUnknown:
        spikes = getattr(args, "input", None)
        shape = npy_shape(spikes)[-3:] if spikes and len(npy_shape(spikes)) >= 4 else args.input_shape
        if shape is None:
            raise
        return load_netlist(args.net, shape)


def add_conventions(parser: argparse.ArgumentParser, default: str) -> None:
    """The ``--conventions`` option: when resets fall and what a trace shows (see fixed_point.CONVENTIONS)."""
    from neurodeploy.fixed_point import CONVENTIONS

    parser.add_argument("--conventions", choices=CONVENTIONS, help=f"run conventions: {default}")


def report_faults(rec, net, source: str, strict: bool) -> None:
    """Print the u wraps and v saturations of each layer; with ``strict``, raise if any."""
    from neurodeploy import faults

    counts, labels = faults.simulator_counts(rec, net), faults.layer_labels(net)
    graded = " (sigma-delta layers count none: their int32 state wraps silently, as on the chip)"
    print(f"numerical faults: {faults.total(counts)}" + (graded if net.graded else ""))
    for line in faults.lines(counts, labels):
        print(f"  {line}")
    if strict:
        faults.require_none(counts, labels, source)


def recording_arrays(rec, counters: bool = True) -> dict[str, np.ndarray]:
    """The ``.npz`` contents of a recording; ``counters`` False keeps only the spike counts."""
    layers = sorted(rec.spike_count)
    arrays: dict[str, np.ndarray] = {"layers": np.array(layers, dtype=np.int64)}
    for name in ("s", "u", "v", "sigma", "act"):
        for i, trace in getattr(rec, name).items():
            arrays[f"{name}{i}"] = trace
    for name in COUNTERS if counters else COUNTERS[:1]:
        values = getattr(rec, name)
        arrays[name] = np.array([values[i] for i in layers], dtype=np.int64)
    if rec.output_counts is not None:
        arrays["output_counts"] = rec.output_counts
    return arrays


def load_spikes(path: str, net, steps: int, order: str = "ours") -> np.ndarray:
    """Spikes (batch, >= steps, *input shape); 0/1 unless they feed an input layer's neurons
    or the first synapse of a sigma-delta network with graded input messages."""
    from neurodeploy.netlist import Input

    arr = load_array(path)
    first = net.layers[0]
    shape = net.external_shape
    if order == "lava":
        arr = _from_lava_order(arr, shape, steps, path)
    if arr.ndim == len(shape) + 1:
        arr = arr[None]
    if arr.ndim != len(shape) + 2 or tuple(arr.shape[2:]) != shape:
        raise InputFileError(f"{path}: expected shape (batch, steps, {_dims(shape)}), got {arr.shape}")
    if arr.shape[0] == 0:
        raise InputFileError(f"{path}: holds no sample (shape {arr.shape}: batch 0)")
    if arr.shape[1] < steps:
        raise InputFileError(f"{path}: covers {arr.shape[1]} steps, {steps} were asked for")
    if isinstance(first, Input) or net.input_message_bits:
        return arr.astype(np.int64)
    if arr.size and not np.all((arr == 0) | (arr == 1)):
        raise InputFileError(f"{path}: spikes into layer 0 ({first.kind}) must be 0 or 1")
    return arr.astype(bool)


def _from_lava_order(arr: np.ndarray, shape: tuple[int, ...], steps: int, path: str) -> np.ndarray:
    """One sample in Lava's (x, y, f, t) or (n, t) order -> (1, steps, *shape), its steps repeated cyclically."""
    lava_shape = tuple(reversed(shape)) if len(shape) == 3 else shape
    if arr.ndim != len(shape) + 1 or tuple(arr.shape[:-1]) != lava_shape or not arr.shape[-1]:
        raise InputFileError(f"{path}: expected Lava's order ({_dims(lava_shape)}, t), got {arr.shape}")
    ours = arr.transpose(tuple(range(arr.ndim))[::-1]) if len(shape) == 3 else arr.T
    return ours[np.arange(steps) % ours.shape[0]][None]


def load_bias(path: str, net: Netlist) -> np.ndarray:
    """Bias mantissas of the input layer, ([batch,] *layer shape), within 32 bits once shifted."""
    from neurodeploy import fixed_point as fx
    from neurodeploy.netlist import CubaNeuron, Input

    first = net.layers[0]
    if not isinstance(first, Input):
        raise InputFileError(f"{path}: layer 0 is a {first.kind} layer; --input-bias needs an input layer")
    if not isinstance(first.neuron, CubaNeuron):
        raise InputFileError(
            f"{path}: layer 0 holds {type(first.neuron).__name__} neurons; --input-bias needs CUBA ones"
        )
    arr = load_array(path).astype(np.int64)
    shape = tuple(first.shape)
    if tuple(arr.shape[-len(shape) :]) != shape or arr.ndim not in (len(shape), len(shape) + 1):
        raise InputFileError(f"{path}: expected shape ([batch,] {_dims(shape)}), got {arr.shape}")
    if arr.size == 0:
        raise InputFileError(f"{path}: holds no sample (shape {arr.shape}: batch 0)")
    effective = fx.shift(arr, first.neuron.bias_exp)
    if arr.size and (effective.min() < -INT32 or effective.max() >= INT32):
        raise InputFileError(f"{path}: bias mantissas shifted by {first.neuron.bias_exp} leave 32 bits")
    return arr


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.split(","))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1 or max(dims) > 1 << 20:
        raise argparse.ArgumentTypeError(f"{text}: expected C,H,W, three integers in 1..{1 << 20}")
    return dims


def _record(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in ("s", "u", "v", "sigma", "act")]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{text}: choose from s, u, v, sigma, act (comma-separated)")
    return names


def _dims(shape) -> str:
    return ", ".join(str(s) for s in shape)

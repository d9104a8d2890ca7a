"""``neurodeploy export``: quantize a trained model for a target and write its netlist files."""

from __future__ import annotations

import argparse

from neurodeploy.export import FORMATS
from neurodeploy.models.checkpoint import MAX_STEPS
from neurodeploy.nir_import import RECURRENT_COPIES
from neurodeploy.quantize import CALIBRATIONS, host_layer, layer_labels
from neurodeploy.ranges import Choices, integer, number


def add_calibration(parser: argparse.ArgumentParser) -> None:
    """``--calibrate`` and ``--calibration``, shared by export and compare."""
    parser.add_argument(
        "--calibrate",
        type=integer(0, 1_000_000),
        default=256,
        metavar="N",
        help="calibration samples from the training split (0: none; default 256)",
    )
    parser.add_argument(
        "--calibration",
        choices=CALIBRATIONS,
        default="max",
        help="weight range: largest weight, a percentile, or the best spike-rate match",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="checkpoint (.pt) from 'neurodeploy train', or a NIR graph (.nir)")
    parser.add_argument("--target", default="loihi2", help="loihi1, loihi2, or a path to a target TOML file")
    parser.add_argument(
        "--format", type=Choices(tuple(FORMATS)), default=("netx",), help="formats to write (default netx)"
    )
    parser.add_argument("-o", "--output", default="export", help="output folder (default ./export)")
    add_calibration(parser)
    parser.add_argument(
        "--data-root",
        help="folder of the dataset, for datasets other than digits "
        "(default: the folder the model was trained from, if it still exists)",
    )
    parser.add_argument(
        "--dt", type=number(0, 1e6, low_open=True), help="time step for NIR graphs (default: the graph's own)"
    )
    parser.add_argument("--steps", type=integer(1, MAX_STEPS), help="time steps a sample for NIR graphs")
    parser.add_argument(
        "--copies",
        type=integer(1, 16),
        help="for NIR graphs: how many copies of each recurrent layer's neurons the chip holds, for weights "
        f"into and out of the layer that many times finer (default {RECURRENT_COPIES}; 1: no copies)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 2, nothing written) on any numerical fault: weights or biases clipped, "
        "thresholds beyond 17 bits, u wraps or v saturations on the calibration samples",
    )


def run(args: argparse.Namespace) -> int:
    from neurodeploy import faults
    from neurodeploy.export import export_model, numerical_faults
    from neurodeploy.targets import load_target

    target = load_target(args.target)
    formats = args.format
    result = export_model(
        args.model,
        target,
        args.output,
        formats=formats,
        calibrate=args.calibrate,
        method=args.calibration,
        force=args.force,
        data_root=args.data_root,
        dt=args.dt,
        steps=args.steps,
        strict=args.strict,
        copies=args.copies,
    )
    q = result.quantized
    net = q.netlist
    if not q.calibration.get("samples"):
        print(f"no calibration: {q.calibration.get('reason')}; quantized from the weights alone")
    print(f"{args.model} -> {target.name}: {len(q.layers)} neuron layers, all design rules pass")
    for layer in q.layers:
        print(
            f"  layer {layer.index} {layer.kind:9s} scale {layer.scale:10.4g}  weight bits {layer.weight_bits}  "
            f"exp {layer.weight_exp:3d}  "
            f"vth {layer.vth:6d}  du {layer.du:4d}  dv {layer.dv:4d}  clipped w/b {layer.weights_clipped}/"
            f"{layer.biases_clipped}" + (f"  copies {layer.copies}" if layer.copies > 1 else "")
        )
    host = host_layer(q)
    if host is not None:
        print(
            f"  layer 0 ({host['description']}): its {host['host_multiply_adds']:,} multiply-adds a sample run on the "
            f"host ({result.files['input_transform'].name} holds them); its neurons run on the chip"
        )
    print(
        f"run {net.window[1]} steps a sample; reset interval {net.reset_interval}, "
        f"output window {net.window[0]}..{net.window[1] - 1}"
    )
    counts = numerical_faults(q)
    where = "quantizer; u and v on the calibration samples" if q.calibration.get("samples") else "quantizer only"
    print(f"numerical faults ({where}): {faults.total(counts)}")
    for line in faults.lines(counts, layer_labels(q)):
        print(f"  {line}")
    for kind, path in result.files.items():
        print(f"  wrote {kind:15s} {path}")
    if "netx" in result.files:
        from neurodeploy.exporters.netx import lava_dl_call

        print(
            f"lava-dl computes the simulator's spikes (conventions lava; {target.name}'s are "
            f"{target.conventions}) from {result.files['netx']} loaded by this call:"
        )
        print(f"  from lava.lib.dl import netx; net = {lava_dl_call(result.files['netx'], net)}")
    return 0

"""``neurodeploy compare``: the float model against its quantized netlist, with a report."""

from __future__ import annotations

import argparse

from neurodeploy import faults
from neurodeploy.commands.export import add_calibration
from neurodeploy.commands.run import add_conventions
from neurodeploy.ranges import integer, seed
from neurodeploy.simulators import BACKENDS, DEVICE_HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="checkpoint (.pt) from 'neurodeploy train'")
    parser.add_argument("--target", default="loihi2", help="loihi1, loihi2, or a target TOML file (default loihi2)")
    parser.add_argument("--dataset", help="dataset of the test samples (default: the model's)")
    parser.add_argument(
        "--data-root",
        metavar="DIR",
        help="folder of the dataset, all but digits (default: the "
        "folder the model was trained from, if it still exists)",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="sim",
        help="; ".join(
            f"{b.name}: " + (f"also {b.help} on --lava-samples samples" if b.reference else f"{b.help} on every sample")
            for b in BACKENDS.values()
        ),
    )
    add_conventions(parser, "the simulator's (default: the target's [run] conventions; Lava's check always uses lava)")
    parser.add_argument(
        "--lava-samples", type=integer(1, 1_000_000), default=8, metavar="N", help="samples run in Lava (default 8)"
    )
    parser.add_argument("--samples", type=integer(1), metavar="N", help="first N test samples (default: all)")
    parser.add_argument("--seed", type=seed(), default=0, help="encoding seed (batch b uses seed + b; default 0)")
    parser.add_argument("--batch-size", type=integer(1, 1 << 16), default=256, help="samples a batch (default 256)")
    add_calibration(parser)
    parser.add_argument(
        "--cost-reference",
        metavar="TARGET",
        help="also price the measured operations with this target's figures (e.g. loihi1, "
        "published pre-silicon figures, beside loihi2's fitted ones)",
    )
    parser.add_argument("--device", help=DEVICE_HELP)
    parser.add_argument(
        "--workers",
        type=integer(1, 256),
        default=1,
        metavar="N",
        help="share the batches among N local processes, with the same report as one (default 1: this "
        "process alone; under torchrun its processes share them, and rank 0 writes the report)",
    )
    parser.add_argument("--no-plots", dest="plots", action="store_false", help="skip the PNG figures")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument("-o", "--output", default="compare", metavar="DIR", help="output folder (default ./compare)")
    parser.add_argument("--force", action="store_true", help="overwrite the report files of an earlier run")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 2 (after writing the report) on any numerical fault: weights or biases clipped, "
        "thresholds beyond 17 bits, u wraps or v saturations on the compared samples",
    )


def print_summary(report: dict, paths: dict) -> None:
    """The headline figures and where the report is."""
    acc, hw = report["accuracy"], report["hardware"]
    lo, hi = acc["gap_interval"]
    print(f"float accuracy     {100 * acc['float']:6.2f}%   ({acc['samples']} test samples)")
    print(
        f"quantized accuracy {100 * acc['quantized']:6.2f}%   gap {100 * acc['gap']:+.2f} points "
        f"[{100 * lo:+.2f}, {100 * hi:+.2f}]"
    )
    print(f"agreement          {100 * acc['agreement']:6.2f}%")
    energy = "unknown" if hw["energy_pj"] is None else f"{hw['energy_pj'] / 1e6:.4g} uJ"
    latency = "unknown" if hw["latency_ns"] is None else f"{hw['latency_ns'] / 1e3:.4g} us"
    print(
        f"{hw['target']}: {hw['cores']} cores on {hw['chips']} chip(s); energy {energy}, latency {latency} "
        "per inference" + (f" ({hw['energy_basis']})" if hw["energy_pj"] is not None and hw["energy_basis"] else "")
    )
    if report.get("lava"):
        lava = report["lava"]
        print(
            f"Lava: {lava['samples']} samples, spikes equal in {100 * lava['spike_match']:.2f}% of entries, "
            f"{lava['prediction_match']} predictions equal"
        )
    ref = report.get("hardware_reference")
    if ref and "error" not in ref:
        energy = "unknown" if ref["energy_pj"] is None else f"{ref['energy_pj'] / 1e6:.4g} uJ"
        latency = "unknown" if ref["latency_ns"] is None else f"{ref['latency_ns'] / 1e3:.4g} us"
        print(f"  with {ref['target']}'s per-operation figures: energy {energy}, latency {latency} per inference")
    found = report["numerical_faults"]
    print(f"numerical faults   {found['total']}")
    for line in faults.lines(*faults.from_summary(found)) if found["total"] else ():
        print(f"  {line}")
    print(f"report: {paths['markdown']} (and {paths['json'].name}, plots/)")


def run(args: argparse.Namespace) -> int:
    from neurodeploy.atomic import check_writable
    from neurodeploy.compare import CompareError, compare_and_report, load_test_samples
    from neurodeploy.datasets import DatasetError, dataset_name
    from neurodeploy.export import data_folder, quantize_model
    from neurodeploy.float_model import load_float_model
    from neurodeploy.targets import load_target

    check_writable(args.output, folder=True)
    target = load_target(args.target)
    fm = load_float_model(args.model)
    try:
        dataset = dataset_name(args.dataset or fm.meta["dataset"])
        extra = {"steps": fm.steps} if dataset == "nmnist" else {}
        root = data_folder(fm, args.data_root) if dataset == fm.meta["dataset"] else args.data_root
        x, y = load_test_samples(dataset, root, args.samples, **extra)
        q = quantize_model(fm, target, calibrate=args.calibrate, method=args.calibration, data_root=args.data_root)
    except DatasetError as err:
        raise CompareError(str(err)) from err
    reference = load_target(args.cost_reference) if args.cost_reference else None
    report, paths = compare_and_report(
        args.model,
        fm,
        q,
        target,
        x,
        y,
        args.output,
        dataset,
        seed=args.seed,
        backend=args.backend,
        lava_samples=args.lava_samples,
        batch_size=args.batch_size,
        plots=args.plots,
        progress=args.progress,
        cost_reference=reference,
        conventions=args.conventions,
        force=args.force,
        device=args.device,
        workers=args.workers,
    )
    if not report:  # another of torchrun's processes writes the report
        return 0
    print_summary(report, paths)
    if args.strict:
        faults.require_none(*faults.from_summary(report["numerical_faults"]), args.model)
    return 0

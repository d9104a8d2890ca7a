"""``neurodeploy demo``: the whole path on the embedded digits data, in one command.

Train a small network with TSSL-BP, export it to Loihi 2 (netx, and NIR / ONNX
where their writers are installed and succeed), compare the float model with
the quantized netlist on the test split, write the report and print where it is.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from neurodeploy.ranges import integer, seed

TARGET = "loihi2"
COST_REFERENCE = "loihi1"  # Loihi 2 publishes no energy per operation; Loihi 1's published figures stand in
OPTIONAL_FORMATS = ("nir", "onnx")
ARCH = "64-128-10"
STEPS = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default="demo", metavar="DIR", help="output folder (default ./demo)")
    parser.add_argument("--epochs", type=integer(1, 100_000), default=10, help="training epochs (default 10)")
    parser.add_argument("--seed", type=seed(), default=0, help="training and encoding seed (default 0)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def available_formats() -> tuple[str, ...]:
    """netx, plus each optional format whose writer module is installed."""
    found = [f for f in OPTIONAL_FORMATS if importlib.util.find_spec(f"neurodeploy.exporters.{f}") is not None]
    return ("netx", *found)


def train_model(out_dir: Path, epochs: int, seed: int, progress: bool) -> Path:
    """Train TSSL-BP on digits and save the checkpoint; return its path."""
    import torch

    from neurodeploy.atomic import atomic_path
    from neurodeploy.train import TrainConfig, train

    cfg = TrainConfig(
        rule="tssl", arch=ARCH, dataset="digits", steps=STEPS, epochs=epochs, seed=seed, progress=progress
    )
    print(f"[1/3] training {cfg.rule} {cfg.arch} on digits, {epochs} epoch(s)")
    result = train(cfg, log=lambda line: print("      " + line))
    path = out_dir / "model.pt"
    with atomic_path(path) as tmp:
        torch.save(result.checkpoint, tmp)
    return path


def export(checkpoint: Path, target, out_dir: Path):
    """Export every available format; if an optional one fails, say why and export netx alone."""
    from neurodeploy.errors import NeurodeployError
    from neurodeploy.export import export_model

    formats = available_formats()
    print(f"[2/3] exporting to {target.name}: {', '.join(formats)}")
    try:
        return export_model(checkpoint, target, out_dir, formats=formats, force=True)
    except (
        NeurodeployError,
        ImportError,
    ) as err:  # an optional writer that refuses or is missing must not stop the demo
        if formats == ("netx",):
            raise
        print(f"      {', '.join(formats[1:])} export failed ({type(err).__name__}: {err}); exporting netx only")
        return export_model(checkpoint, target, out_dir, formats=("netx",), force=True)


def run(args: argparse.Namespace) -> int:
    from neurodeploy.atomic import check_writable, staged_outputs
    from neurodeploy.commands.compare import print_summary
    from neurodeploy.targets import load_target

    out_dir = Path(args.output)
    target, reference = load_target(TARGET), load_target(COST_REFERENCE)
    with staged_outputs(check_writable(out_dir, folder=True)):  # all of the files or none
        report, paths = _demo(args, out_dir, target, reference)
    print()
    print_summary(report, paths)
    return 0


def _demo(args: argparse.Namespace, out_dir: Path, target, reference) -> tuple[dict, dict]:
    from neurodeploy.compare import compare_and_report, load_test_samples
    from neurodeploy.float_model import load_float_model

    checkpoint = train_model(out_dir, args.epochs, args.seed, args.progress)
    exported = export(checkpoint, target, out_dir / "export")
    for kind, path in exported.files.items():
        print(f"      wrote {kind:15s} {path}")
    print("[3/3] comparing the float model with the quantized netlist on the digits test split")
    fm = load_float_model(checkpoint)
    x, y = load_test_samples("digits", None, None)
    return compare_and_report(
        checkpoint,
        fm,
        exported.quantized,
        target,
        x,
        y,
        out_dir / "report",
        "digits",
        seed=args.seed,
        progress=args.progress,
        cost_reference=reference,
        force=True,
    )

"""Accuracy against weight precision, with and without quantization-aware training (QAT).

For each rule: train the float network, then for each weight width quantize it
for ``loihi2`` with that many weight bits (the rest of loihi2's limits kept) and
run the integer network in the simulator on the test set ("no QAT"); then
fine-tune the float network with ``--qat`` for that target, starting from its
weights, and run the integer network export gives ("QAT"). The cores are the
mapper's for each integer network on that target.

    python benchmarks/quantization.py                          # digits, tssl and bpsa, 8 6 4 2 bits
    python benchmarks/quantization.py --data-root ~/data --arch 784-400-10 --limit 4000   # local MNIST
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from neurodeploy.compare import compare_model
from neurodeploy.datasets import load_dataset
from neurodeploy.drc import check
from neurodeploy.export import load_float_model, quantize_model
from neurodeploy.mapping import map_network
from neurodeploy.targets import load_target
from neurodeploy.train import TrainConfig, train


def target_with_bits(bits: int):
    """loihi2 with ``bits``-bit weights."""
    base = load_target("loihi2")
    return dataclasses.replace(base, name=f"loihi2 ({bits}-bit weights)", weight_bits=bits)


def integer_run(path: Path, target, data_root: str | None, calibrate: int) -> tuple[float, int, int]:
    """(integer test accuracy, cores on ``target``, design-rule violations) of checkpoint ``path``."""
    fm = load_float_model(path)
    q = quantize_model(fm, target, calibrate=calibrate, data_root=data_root)
    x, y = load_dataset(fm.meta["dataset"], root=data_root, split="test")
    comparison = compare_model(fm, q, x, y, progress=False)
    cores = map_network(q.netlist, target).cores
    return float(np.mean(comparison.quant_pred == y)), cores, len(check(q.netlist, target))


def _train(path: Path, **kw) -> float:
    result = train(TrainConfig(progress=False, **kw), log=lambda _: None, warn=lambda _: None)
    torch.save(result.checkpoint, path)
    return result.checkpoint["float_test_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", nargs="+", default=["tssl", "bpsa"])
    parser.add_argument("--bits", nargs="+", type=int, default=[8, 6, 4, 2])
    parser.add_argument("--arch", default="64-128-10")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30, help="float training")
    parser.add_argument("--qat-epochs", type=int, default=10, help="QAT fine-tuning from the float weights")
    parser.add_argument("--qat-lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", metavar="DIR", help="a local MNIST folder (then --dataset mnist)")
    parser.add_argument("--limit", type=int, help="train on the first N training samples")
    parser.add_argument("--calibrate", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = "mnist" if args.data_root else "digits"
    common = dict(
        arch=args.arch,
        steps=args.steps,
        seed=args.seed,
        dataset=dataset,
        data_root=args.data_root,
        limit=args.limit,
        threads=args.threads,
    )
    print(
        f"{dataset}, {args.arch}, T = {args.steps}, seed {args.seed}; float {args.epochs} epochs, "
        f"QAT {args.qat_epochs} epochs from the float weights (lr {args.qat_lr}); targets: loihi2 with N-bit weights"
    )
    header = (
        f"{'rule':6s} {'float %':>8s} {'bits':>4s} {'int % no QAT':>12s} {'cores':>5s} "
        f"{'int % QAT':>10s} {'cores':>5s}  {'QAT - float':>11s}"
    )
    print(header)
    print("-" * len(header))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for rule in args.rules:
            float_path = Path(tmp) / f"{rule}.pt"
            float_acc = _train(float_path, rule=rule, epochs=args.epochs, **common)
            for bits in args.bits:
                target = target_with_bits(bits)
                plain, plain_cores, bad = integer_run(float_path, target, args.data_root, args.calibrate)
                qat_path = Path(tmp) / f"{rule}-{bits}.pt"
                _train(
                    qat_path,
                    rule=rule,
                    epochs=args.qat_epochs,
                    lr=args.qat_lr,
                    qat=True,
                    target=target,
                    init=str(float_path),
                    **common,
                )
                qat, qat_cores, qat_bad = integer_run(qat_path, target, args.data_root, args.calibrate)
                drc = "" if not bad + qat_bad else f"  ({bad} / {qat_bad} design-rule violations)"
                print(
                    f"{rule:6s} {100 * float_acc:8.2f} {bits:4d} {100 * plain:12.2f} {plain_cores:5d} "
                    f"{100 * qat:10.2f} {qat_cores:5d}  {100 * (qat - float_acc):+11.2f}{drc}",
                    flush=True,
                )
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()

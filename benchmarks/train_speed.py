"""Training cost and accuracy of TSSL-BP and BPSA against plain surrogate-gradient BPTT.

Each rule is paired with the BPTT baseline on the same network, batch size and T
(``bptt-lif`` has TSSL-BP's forward, ``bptt-if`` BPSA's), on the embedded digits.
Step times are measured interleaved (A, B, A, B, ...) so that a busy machine slows
both alike; the ratio is rule / baseline. Accuracies are the final test accuracies
of full training runs, one per seed.

    python benchmarks/train_speed.py                 # all pairs, seeds 0 1 2
    python benchmarks/train_speed.py --seeds 0 --pairs mlp-tssl mlp-bpsa
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from neurodeploy.datasets import load_dataset
from neurodeploy.encoding import encode, input_kind
from neurodeploy.models import SpikingNetwork, parse_arch
from neurodeploy.models.losses import LOSSES
from neurodeploy.train import DEFAULT_LR, DIGITS_RECIPES, TrainConfig, TrainingLoss, resolve_config, train, train_step

BASELINES = {"tssl": "bptt-lif", "bpsa": "bptt-if"}  # plain BPTT with each rule's forward


def baseline(recipe: dict) -> dict:
    """The same network, T and options with plain BPTT (cross-entropy in place of TSSL-BP's own losses)."""
    same = {k: v for k, v in recipe.items() if not (k == "loss" and recipe["rule"] == "tssl")}
    return {**same, "rule": BASELINES[recipe["rule"]]}


def _stepper(recipe: dict, batch: int, seed: int):
    """A closure running one training step of ``recipe`` on a fixed digits batch."""
    cfg = TrainConfig(batch_size=batch, seed=seed, **recipe)
    rule_obj, encoding, loss_name = resolve_config(cfg)
    x, y = load_dataset("digits", split="train")
    torch.manual_seed(seed)
    model = SpikingNetwork(parse_arch(cfg.arch), x.shape[1:], rule_obj, input_kind(encoding)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=DEFAULT_LR)
    loss_fn = TrainingLoss(loss_name, rule_obj, cfg)
    xb = encode(torch.as_tensor(x[:batch]), encoding, cfg.steps, torch.Generator().manual_seed(seed))
    yb = torch.as_tensor(y[:batch])

    return lambda: train_step(model, opt, loss_fn, xb, yb)


def step_times(recipes: list[dict], batch: int, rounds: int, steps_per_round: int) -> list[float]:
    """Median seconds a training step of each recipe, measured interleaved."""
    run = [_stepper(r, batch, 0) for r in recipes]
    for fn in run:
        for _ in range(3):
            fn()
    times: list[list[float]] = [[] for _ in run]
    for _ in range(rounds):
        for fn, out in zip(run, times):
            start = time.perf_counter()
            for _ in range(steps_per_round):
                fn()
            out.append((time.perf_counter() - start) / steps_per_round)
    return [statistics.median(t) for t in times]


def accuracy(recipe: dict, seed: int, epochs: int, batch: int, threads: int) -> tuple[float, float]:
    """(final test accuracy, wall seconds) of one full training run."""
    start = time.perf_counter()
    cfg = TrainConfig(epochs=epochs, seed=seed, batch_size=batch, threads=threads, progress=False, **recipe)
    result = train(cfg, log=lambda _: None, warn=lambda _: None)
    return result.history[-1]["test_accuracy"], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pairs",
        nargs="+",
        choices=list(DIGITS_RECIPES),
        default=list(DIGITS_RECIPES),
        help="recipes of neurodeploy.train.DIGITS_RECIPES, each against its baseline",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: runs reproducible)")
    parser.add_argument("--no-accuracy", action="store_true", help="time the steps only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"digits, batch {args.batch_size}, {args.epochs} epochs, seeds {args.seeds}, {args.threads} threads")
    header = (
        f"{'network':34s} {'T':>2s} {'rule':9s} {'loss':6s} {'ms/step':>8s} {'ratio':>6s} "
        f"{'test acc % by seed':>20s} {'mean':>6s} {'train s':>8s}"
    )
    print(header)
    print("-" * len(header))
    for key in args.pairs:
        own = DIGITS_RECIPES[key]
        recipes = [own, baseline(own)]
        times = step_times(recipes, args.batch_size, args.rounds, 10)
        means = []
        for recipe, t in zip(recipes, times):
            runs = (
                []
                if args.no_accuracy
                else [accuracy(recipe, s, args.epochs, args.batch_size, args.threads) for s in args.seeds]
            )
            means.append(np.mean([a for a, _ in runs]) if runs else float("nan"))
            accs = " ".join(f"{100 * a:.2f}" for a, _ in runs) or "-"
            secs = f"{np.mean([s for _, s in runs]):.1f}" if runs else "-"
            loss = recipe.get("loss") or LOSSES[recipe["rule"]][0]
            mean = f"{100 * means[-1]:.2f}" if runs else "-"
            print(
                f"{own['arch']:34s} {own['steps']:2d} {recipe['rule']:9s} {loss:6s} {1e3 * t:8.2f} {t / times[1]:6.2f} "
                f"{accs:>20s} {mean:>6s} {secs:>8s}"
            )
        gap = "" if args.no_accuracy else f", accuracy {100 * (means[0] - means[1]):+.2f} points"
        print(f"  -> {own['rule']} / {recipes[1]['rule']}: step time x{times[0] / times[1]:.2f}{gap}")


if __name__ == "__main__":
    main()

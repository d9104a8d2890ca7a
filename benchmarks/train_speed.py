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
from neurodeploy.train import DEFAULT_LR, TrainConfig, TrainingLoss, resolve_config, train

MLP_TSSL = dict(arch="64-128-10", steps=5)
MLP_BPSA = dict(arch="64-128-10bn", steps=8)
CNN_TSSL = dict(arch="16C3p1-P2-32C3p1-P2-10", steps=5)
CNN_BPSA = dict(arch="16C3p1bn-P2-32C3p1bn-P2-10bn", steps=8)
PAIRS = {
    "mlp-tssl": ("tssl", "bptt-lif", MLP_TSSL),
    "mlp-bpsa": ("bpsa", "bptt-if", MLP_BPSA),
    "cnn-tssl": ("tssl", "bptt-lif", CNN_TSSL),
    "cnn-bpsa": ("bpsa", "bptt-if", CNN_BPSA),
}


def _stepper(rule: str, net: dict, batch: int, seed: int):
    """A closure running one training step of ``rule`` on a fixed digits batch."""
    cfg = TrainConfig(rule=rule, batch_size=batch, seed=seed, **net)
    rule_obj, encoding, loss_name = resolve_config(cfg)
    x, y = load_dataset("digits", split="train")
    torch.manual_seed(seed)
    model = SpikingNetwork(parse_arch(cfg.arch), x.shape[1:], rule_obj, input_kind(encoding)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=DEFAULT_LR)
    loss_fn = TrainingLoss(loss_name, rule_obj, cfg)
    xb = encode(torch.as_tensor(x[:batch]), encoding, cfg.steps, torch.Generator().manual_seed(seed))
    yb = torch.as_tensor(y[:batch])

    def step() -> None:
        loss = loss_fn(model.run(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def step_times(rule: str, base: str, net: dict, batch: int, rounds: int, steps_per_round: int) -> tuple[float, float]:
    """Median seconds a training step of ``rule`` and of ``base``, measured interleaved."""
    run = {name: _stepper(name, net, batch, 0) for name in (rule, base)}
    for fn in run.values():
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {rule: [], base: []}
    for _ in range(rounds):
        for name, fn in run.items():
            start = time.perf_counter()
            for _ in range(steps_per_round):
                fn()
            times[name].append((time.perf_counter() - start) / steps_per_round)
    return statistics.median(times[rule]), statistics.median(times[base])


def accuracy(rule: str, net: dict, seed: int, epochs: int, batch: int) -> tuple[float, float]:
    """(final test accuracy, wall seconds) of one full training run."""
    start = time.perf_counter()
    cfg = TrainConfig(rule=rule, epochs=epochs, seed=seed, batch_size=batch, progress=False, **net)
    result = train(cfg, log=lambda _: None)
    return result.history[-1]["test_accuracy"], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", choices=list(PAIRS), default=list(PAIRS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--no-accuracy", action="store_true", help="time the steps only")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"digits, batch {args.batch_size}, {args.epochs} epochs, seeds {args.seeds}, {torch.get_num_threads()} threads")
    header = f"{'network':30s} {'T':>2s} {'rule':9s} {'ms/step':>8s} {'ratio':>6s} {'test acc (per seed)':>30s} {'mean':>7s} {'train s':>8s}"
    print(header)
    print("-" * len(header))
    for key in args.pairs:
        rule, base, net = PAIRS[key]
        t_rule, t_base = step_times(rule, base, net, args.batch_size, args.rounds, 10)
        rows = {}
        for name in (rule, base):
            runs = [] if args.no_accuracy else [accuracy(name, net, s, args.epochs, args.batch_size) for s in args.seeds]
            rows[name] = runs
        for name, t in ((rule, t_rule), (base, t_base)):
            runs = rows[name]
            accs = " ".join(f"{100 * a:.2f}" for a, _ in runs)
            mean = f"{100 * np.mean([a for a, _ in runs]):.2f}" if runs else "-"
            secs = f"{np.mean([s for _, s in runs]):.1f}" if runs else "-"
            print(f"{net['arch']:30s} {net['steps']:2d} {name:9s} {1e3 * t:8.2f} {t / t_base:6.2f} {accs:>30s} {mean:>7s} {secs:>8s}")
        if rows[rule]:
            gap = np.mean([a for a, _ in rows[rule]]) - np.mean([a for a, _ in rows[base]])
            print(f"{'':30s} {'':2s} {rule + ' - ' + base:>18s}: step time x{t_rule / t_base:.2f}, accuracy {100 * gap:+.2f} points")


if __name__ == "__main__":
    main()

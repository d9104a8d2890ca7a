"""Training: ``neurodeploy train`` and ``python -m neurodeploy.train``.

Deterministic given the seed: weights and dropout come from ``torch.manual_seed(seed)``,
the batch order from a generator seeded with ``seed``, the random input encodings
from one seeded with ``seed + 1``. The test set is encoded batch after batch with a
generator seeded with ``seed`` (``evaluation`` in the checkpoint), so a simulator can
rebuild exactly the inputs behind ``float_test_accuracy``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from . import budget
from .atomic import atomic_path, check_writable, refuse_existing
from .datasets import NUM_CLASSES, dataset_name, load_dataset, split_info
from .distributed import start as start_world
from .encoding import ENCODINGS, encode, input_kind, make_encoding
from .errors import NeurodeployError
from .models.arch import layer_shapes, parse_arch
from .models.checkpoint import MAX_STEPS, save_checkpoint
from .models.losses import DESIRED_TRAINS, LOSSES, ce_loss, count_loss, desired_train, kernel_loss, mse_loss
from .models.network import NeuronLayer, SpikingNetwork, predict
from .models.qat import enable_qat, fix_scales, qat_entry
from .models.rules import BPSA_VARIANTS, READOUTS, RULES, TSSL_GRADS, Rule, make_rule
from .ranges import integer, number, seed, show_ranges

if TYPE_CHECKING:
    from .targets import Target

EVAL_BATCH = 500
MAX_EPOCHS = 100_000
MAX_BATCH = 1 << 16
PARAMETER_BYTES = 16  # float32 weight, gradient and AdamW's two moments
ACTIVATION_BYTES = 16  # float32 values kept a neuron and step for the backward pass, about
DEFAULT_LR = 5e-3
# Recipes that reach the digits targets (>= 97% for the MLPs, >= 98% for the CNNs; docs/training.md)
DIGITS_RECIPES = {
    "mlp-tssl": dict(rule="tssl", arch="64-128-10", steps=8),
    "mlp-bpsa": dict(rule="bpsa", arch="64-128-D0.1-10bn", steps=8, loss="mse"),
    "mlp-bpsa-plain": dict(rule="bpsa", arch="64-128-10", steps=5),
    "cnn-tssl": dict(rule="tssl", arch="16C3p1-P2-32C3p1-P2-D0.2-10", steps=5, loss="count"),
    "cnn-bpsa": dict(rule="bpsa", arch="16C3p1bn-P2-32C3p1bn-P2-D0.2-10bn", steps=8, loss="mse", readout="spikes"),
}


@dataclass
class TrainConfig:
    """Everything a training run depends on (``None``: the rule's or dataset's default)."""

    rule: str = "tssl"
    arch: str = "64-128-10"
    dataset: str = "digits"
    data_root: str | None = None
    steps: int = 5
    epochs: int = 30
    seed: int = 0
    batch_size: int = 32
    lr: float | None = None
    weight_decay: float = 0.0
    encoding: str | None = None
    gain: float = 1.0
    loss: str | None = None
    tau_m: float | None = None
    tau_s: float | None = None
    vth: float | None = None
    tssl_grad: str = "reference"
    desired: str = "reference"
    desired_count: float | None = None
    undesired_count: float | None = None
    variant: str = "binary"
    readout: str | None = None
    qat: bool = False
    target: str | os.PathLike | Target | None = None  # --qat's target: a name, a file, or a Target
    init: str | None = None
    bin_us: int | None = None
    limit: int | None = None
    device: str = "auto"
    threads: int | None = None
    progress: bool = True


@dataclass
class TrainResult:
    model: SpikingNetwork
    checkpoint: dict
    history: list[dict] = field(default_factory=list)
    rank: int = 0  # this process's rank under torchrun (only rank 0 writes)


class TrainError(NeurodeployError, ValueError):
    """A bad training argument; the message names it and its limit."""


def pick_device(name: str) -> torch.device:
    """``auto``: CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda: CUDA is not available here")
    if name not in ("cpu", "cuda"):
        raise TrainError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def default_threads() -> int:
    """CPU threads for torch: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def resolve_config(cfg: TrainConfig) -> tuple[Rule, dict, str]:
    """Check ``cfg``; return its rule, encoding dict and loss name (defaults filled in)."""
    for name, value, low in (
        ("--steps", cfg.steps, 1),
        ("--epochs", cfg.epochs, 1),
        ("--batch-size", cfg.batch_size, 1),
    ):
        if int(value) < low:
            raise TrainError(f"{name} = {value} must be >= {low}")
    rule = make_rule(
        cfg.rule,
        tau_m=cfg.tau_m,
        tau_s=cfg.tau_s,
        vth=cfg.vth,
        tssl_grad=cfg.tssl_grad,
        variant=cfg.variant,
        readout=cfg.readout,
    )
    data = dataset_name(cfg.dataset)
    default_encoding = "events" if data == "nmnist" else "direct"
    enc_name = cfg.encoding or default_encoding
    if (enc_name == "events") != (data == "nmnist"):
        raise TrainError(f"--encoding {enc_name}: 'events' is the encoding of nmnist and of nmnist only")
    encoding = make_encoding(enc_name, **({"gain": cfg.gain} if enc_name == "rate" else {}))
    loss = cfg.loss or LOSSES[rule.name][0]
    if loss not in LOSSES[rule.name]:
        raise TrainError(f"--loss {loss}: rule {rule.name!r} takes {' or '.join(LOSSES[rule.name])}")
    return rule, encoding, loss


class TrainingLoss:
    """The training loss of a rule, from a :class:`RunOutput` and the labels."""

    def __init__(self, name: str, rule: Rule, cfg: TrainConfig):
        self.name, self.rule = name, rule
        self.desired = desired_train(cfg.steps, cfg.desired)
        self.counts = (
            cfg.desired_count if cfg.desired_count is not None else round(0.8 * cfg.steps),
            cfg.undesired_count if cfg.undesired_count is not None else max(1, round(0.2 * cfg.steps)),
        )

    def __call__(self, out, labels: torch.Tensor) -> torch.Tensor:
        if self.name == "kernel":
            return kernel_loss(out.signal, labels, self.desired, self.rule.neuron.tau_s)
        if self.name == "count":
            return count_loss(out.signal, out.spikes, labels, *self.counts)
        loss = ce_loss if self.name == "ce" else mse_loss
        return loss(out.signal, labels, self.rule.readout)


@torch.no_grad()
def evaluate(
    model: SpikingNetwork, x, y, *, encoding: dict, steps: int, seed: int, batch_size: int = EVAL_BATCH
) -> float:
    """Accuracy on (x, y), inputs encoded in order with a generator seeded with ``seed``."""
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    correct: float = 0  # counts, summed from tensors' .item()
    for start in range(0, len(y), batch_size):
        xb = torch.as_tensor(np.asarray(x[start : start + batch_size]))
        output = model(encode(xb, encoding, steps, gen).to(device))
        correct += (
            (predict(output, model.rule.readout).cpu() == torch.as_tensor(y[start : start + batch_size])).sum().item()
        )
    return correct / len(y)


def _load(cfg: TrainConfig, data: str):
    kwargs: dict[str, Any] = {"steps": cfg.steps, "bin_us": cfg.bin_us} if data == "nmnist" else {}
    x_tr, y_tr = load_dataset(data, cfg.data_root, "train", **kwargs)
    x_te, y_te = load_dataset(data, cfg.data_root, "test", **kwargs)
    if cfg.limit is not None:
        if cfg.limit < 1:
            raise TrainError(f"--limit = {cfg.limit} must be >= 1")
        x_tr, y_tr = x_tr[: cfg.limit], y_tr[: cfg.limit]
    return x_tr, y_tr, x_te, y_te


def train_step(model, opt, loss_fn, xb: torch.Tensor, yb: torch.Tensor):
    """One optimizer step on a batch; return the loss and the network's output."""
    out = model.run(xb)
    loss = loss_fn(out, yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss, out


class LayerActivity:
    """Which neurons of each layer fired at least once, and which fired every step, over an epoch."""

    def __init__(self, model: SpikingNetwork):
        self.layers = [b for b in model.blocks if isinstance(b, NeuronLayer)]
        self.readout = model.rule.readout
        self.ever: list[torch.Tensor | None] = [None] * len(self.layers)
        self.always: list[torch.Tensor | None] = [None] * len(self.layers)

    def add(self, layers: list[torch.Tensor]) -> None:
        """Take one batch's binary spikes (T, B, ...) of every neuron layer."""
        for k, s in enumerate(layers):
            fired, every = (s > 0).flatten(2).any(0).any(0), (s > 0).flatten(2).all(0).all(0)
            ever, always = self.ever[k], self.always[k]
            self.ever[k] = fired if ever is None else ever | fired
            self.always[k] = every if always is None else always & every

    def warnings(self, epoch: int) -> list[str]:
        """A line for each layer silent or saturated all epoch, and for output neurons that never fired."""
        out = []
        for k, (layer, ever, always) in enumerate(zip(self.layers, self.ever, self.always)):
            if layer.readout or ever is None or always is None:
                continue
            name = f"layer {k + 1} ({layer_name(layer)})"
            if not ever.any():
                out.append(f"{name} was silent for the whole of epoch {epoch}: no neuron fired")
            elif always.all():
                out.append(f"{name} was saturated for the whole of epoch {epoch}: every neuron fired every step")
            elif k == len(self.layers) - 1 and not ever.all():
                dead = [str(i) for i in torch.nonzero(~ever).flatten().tolist()]
                out.append(
                    f"{name}: output neuron(s) {', '.join(dead)} never fired in epoch {epoch}; "
                    "their classes cannot be predicted"
                )
        return out


def layer_name(layer: NeuronLayer) -> str:
    """``dense 128`` or ``conv 16C3``."""
    syn = layer.synapse
    if isinstance(syn, torch.nn.Linear):
        return f"dense {syn.out_features}"
    return f"conv {syn.out_channels}C{syn.kernel_size[0]}"


def _train_epoch(model, opt, sched, loss_fn, batches, encoding: dict, steps: int, gen, bar, activity: LayerActivity):
    """One pass over ``batches`` of (x, y); return the mean loss and the training accuracy."""
    model.train()
    device = next(model.parameters()).device
    total, loss_sum = 0, 0.0
    correct: float = 0  # counts, summed from tensors' .item()
    for (x, y), _ in zip(batches, bar):
        xb = encode(torch.as_tensor(np.asarray(x)), encoding, steps, gen).to(device)
        yb = torch.as_tensor(y).to(device)
        loss, out = train_step(model, opt, loss_fn, xb, yb)
        sched.step()
        activity.add(out.layers)
        loss_sum += loss.item() * len(yb)
        correct += (predict(out.output, model.rule.readout) == yb).sum().item()
        total += len(yb)
        bar.set_postfix(loss=f"{loss_sum / total:.4f}", acc=f"{correct / total:.3f}")
    return loss_sum / total, correct / total


def _require_memory(cfg: TrainConfig, sample_shape: tuple[int, ...], rule: Rule, kind: str) -> None:
    """Parameters (with gradients and AdamW's moments) and a batch's activations over the steps, from the
    architecture's shapes (the network is built on the meta device: nothing allocated)."""
    arch = parse_arch(cfg.arch)
    with torch.device("meta"):
        params = sum(p.numel() for p in SpikingNetwork(arch, sample_shape, rule, kind).parameters())
    neurons = math.prod(sample_shape) + sum(math.prod(shape) for shape in layer_shapes(arch, sample_shape))
    values = cfg.batch_size * cfg.steps * neurons
    budget.require(
        params * PARAMETER_BYTES + values * ACTIVATION_BYTES,
        f"--arch {cfg.arch}: training {params} parameters and {neurons} neurons a sample over "
        f"{cfg.steps} steps, batches of {cfg.batch_size}",
    )


def _warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr)


def train(cfg: TrainConfig, log=print, warn=_warn) -> TrainResult:
    """Train a network as ``cfg`` says; return it with its checkpoint dict and history.

    ``warn`` gets a line for every layer that stayed silent or saturated for a whole
    epoch (:class:`LayerActivity`); the lines are also kept in the epoch's history row.
    Under torchrun, every process runs this on its shard of each global batch
    (:mod:`neurodeploy.distributed`); only rank 0 logs and warns.
    """
    rule, encoding, loss_name = resolve_config(cfg)
    world = start_world(pick_device(cfg.device))
    quiet = lambda *_: None  # noqa: E731
    try:
        return _train(cfg, rule, encoding, loss_name, world, *((log, warn) if world.rank == 0 else (quiet, quiet)))
    finally:
        world.close()


def _train(cfg: TrainConfig, rule: Rule, encoding: dict, loss_name: str, world, log, warn) -> TrainResult:
    data, device = dataset_name(cfg.dataset), world.device
    torch.set_num_threads(cfg.threads or max(1, default_threads() // world.local_size))
    x_tr, y_tr, x_te, y_te = _load(cfg, data)
    sample_shape = tuple(x_tr.shape[2:] if data == "nmnist" else x_tr.shape[1:])
    _require_memory(cfg, sample_shape, rule, input_kind(encoding))
    torch.manual_seed(cfg.seed)
    model = SpikingNetwork(parse_arch(cfg.arch), sample_shape, rule, input_kind(encoding)).to(device)
    if model.arch.num_outputs != NUM_CLASSES:
        raise TrainError(
            f"arch {cfg.arch!r} ends with {model.arch.num_outputs} neurons but {data} has {NUM_CLASSES} classes"
        )
    if cfg.init is not None:
        _start_from(model, cfg.init)
    qat = _qat_target(cfg, model)
    world.check_batches(len(y_tr), cfg.batch_size)
    runner = world.wrap(model, cfg.seed)
    lr = DEFAULT_LR if cfg.lr is None else cfg.lr
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    batches = math.ceil(len(y_tr) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=cfg.epochs * batches, pct_start=0.15)
    loss_fn = TrainingLoss(loss_name, rule, cfg)
    order_gen = torch.Generator().manual_seed(cfg.seed)
    enc_gen = torch.Generator().manual_seed(cfg.seed + 1)
    history = []
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        order = torch.randperm(len(y_tr), generator=order_gen).numpy()
        bar = tqdm(
            range(batches),
            desc=f"epoch {epoch}/{cfg.epochs}",
            leave=False,
            disable=None if cfg.progress and world.rank == 0 else True,
            file=sys.stderr,
        )
        shards = [world.shard(idx) for idx in np.split(order, range(cfg.batch_size, len(order), cfg.batch_size))]
        batches_of = ((x_tr[idx], y_tr[idx]) for idx in shards)
        activity = LayerActivity(model)
        loss, train_acc = _train_epoch(
            runner, opt, sched, loss_fn, batches_of, encoding, cfg.steps, enc_gen, bar, activity
        )
        loss, train_acc = world.mean((loss, train_acc), sum(len(idx) for idx in shards))
        if qat and epoch == cfg.epochs:  # the last evaluation is of the integer network export will give
            qat = qat_entry(qat[0], qat[1], fix_scales(model))
        test_acc = evaluate(model, x_te, y_te, encoding=encoding, steps=cfg.steps, seed=cfg.seed)
        row = {
            "epoch": epoch,
            "loss": loss,
            "train_accuracy": train_acc,
            "test_accuracy": test_acc,
            "seconds": time.perf_counter() - start,
            "warnings": activity.warnings(epoch),
        }
        for line in row["warnings"]:
            warn(line)
        history.append(row)
        log(
            f"epoch {epoch:3d}/{cfg.epochs}  loss {row['loss']:.4f}  train {100 * row['train_accuracy']:.2f}%  "
            f"test {100 * test_acc:.2f}%  ({row['seconds']:.1f} s)"
        )
    split = split_info(data, **({"steps": cfg.steps, "bin_us": cfg.bin_us} if data == "nmnist" else {}))
    if cfg.limit is not None:
        split["train_limit"] = int(cfg.limit)
    if cfg.data_root is not None and data != "digits":
        split["data_root"] = str(Path(cfg.data_root).expanduser().resolve())
    skip = ("progress", "device", "threads", "data_root", "target")
    training = {
        **{k: v for k, v in asdict(cfg).items() if k not in skip},
        "target": qat and qat["target"],
        "lr": lr,
        "loss": loss_name,
        "optimizer": "AdamW",
        "schedule": "OneCycleLR",
        "history": history,
    }
    ckpt = save_checkpoint(
        None,
        model,
        encoding=encoding,
        steps=cfg.steps,
        dataset=data,
        split=split,
        float_test_accuracy=history[-1]["test_accuracy"],
        seed=cfg.seed,
        evaluation={"seed": cfg.seed, "batch_size": EVAL_BATCH},
        training=training,
        qat=qat,
    )
    return TrainResult(model, ckpt, history, world.rank)


def _start_from(model: SpikingNetwork, path: str) -> None:
    """Load the weights of checkpoint ``path`` into ``model``: same rule, architecture and input."""
    from .models.checkpoint import load_checkpoint

    _, ckpt = load_checkpoint(path)
    theirs = (ckpt["rule"], ckpt["arch"], tuple(ckpt["input_shape"]))
    ours = (model.rule.name, model.arch.spec, model.input_shape)
    if theirs != ours:
        raise TrainError(f"--init {path}: rule, arch and input {theirs} differ from this run's {ours}")
    model.load_state_dict(ckpt["state_dict"])


def _qat_target(cfg: TrainConfig, model: SpikingNetwork):
    """With ``--qat``: make ``model``'s forward the target's integer one; return (target name, limits)."""
    if cfg.target is not None and not cfg.qat:
        raise TrainError("--target is the target of --qat; add --qat to train for it")
    if not cfg.qat:
        return None
    if cfg.target is None:
        raise TrainError("--qat needs --target (loihi1, loihi2 or a target file)")
    from .quantize import Limits
    from .targets import Target, load_target

    target = cfg.target if isinstance(cfg.target, Target) else load_target(cfg.target)
    limits = Limits.from_target(target)
    enable_qat(model, limits)
    return target.name, limits


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``train`` options to ``parser``."""
    d = TrainConfig()
    a = parser.add_argument
    a("--rule", choices=RULES, default=d.rule, help="training rule; bptt-* are the surrogate-gradient baselines")
    a("--arch", default=d.arch, help="architecture, e.g. 64-128-10 or 16C3p1-P2-32C3p1-P2-10 (default %(default)s)")
    a("--dataset", default=d.dataset, help="digits (embedded), mnist, fashion-mnist, cifar10 or nmnist")
    a("--data-root", metavar="DIR", help="folder holding the dataset's files (all but digits)")
    a("--steps", "-T", type=integer(1, MAX_STEPS), default=d.steps, help="time steps a sample (default %(default)s)")
    a("--epochs", type=integer(1, MAX_EPOCHS), default=d.epochs, help="default %(default)s")
    a("--seed", type=seed(), default=d.seed, help="default %(default)s")
    a("-o", "--output", metavar="PATH", default="model.pt", help="checkpoint to write (default ./model.pt)")
    a("--force", action="store_true", help="overwrite an existing checkpoint")
    a("--batch-size", type=integer(1, MAX_BATCH), default=d.batch_size, help="default %(default)s")
    a(
        "--lr",
        type=number(0, 10, low_open=True),
        help=f"peak learning rate of the one-cycle schedule (default {DEFAULT_LR})",
    )
    a("--weight-decay", type=number(0, 10), default=d.weight_decay, help="AdamW weight decay (default %(default)s)")
    a("--encoding", choices=ENCODINGS, help="input encoding (default: direct; events for nmnist)")
    a("--gain", type=number(0, 1e6), default=d.gain, help="rate encoding: spike probability = gain * pixel")
    a(
        "--loss",
        choices=sorted({v for vs in LOSSES.values() for v in vs}),
        help="tssl: kernel (default) or count; others: ce (default) or mse",
    )
    a("--tau-m", type=number(0, 1e6, low_open=True), help="membrane time constant in steps (tssl, bptt-lif; default 5)")
    a("--tau-s", type=number(0, 1e6, low_open=True), help="synaptic time constant in steps (tssl, bptt-lif; default 3)")
    a("--vth", type=number(0, 1e6, low_open=True), help="threshold (default 1 for tssl/bptt-lif, 0.5 for bpsa/bptt-if)")
    a(
        "--tssl-grad",
        choices=TSSL_GRADS,
        default=d.tssl_grad,
        help="reference: add the reference code's surrogate fallback for quiet neurons; paper: without",
    )
    a("--desired", choices=DESIRED_TRAINS, default=d.desired, help="kernel loss: desired train of the true class")
    a(
        "--desired-count",
        type=number(0, MAX_STEPS),
        help="count loss: spikes wanted from the true class (default 0.8 T)",
    )
    a("--undesired-count", type=number(0, MAX_STEPS), help="count loss: spikes allowed to the others (default 0.2 T)")
    a(
        "--variant",
        choices=BPSA_VARIANTS,
        default=d.variant,
        help="bpsa: binary spikes (deployable) or graded output with ReLU input (not deployable)",
    )
    a(
        "--readout",
        choices=READOUTS,
        help="classify by the output spike counts, or by the output membrane (its neurons never fire); "
        "default membrane for bpsa binary, spikes otherwise",
    )
    a(
        "--qat",
        action="store_true",
        help="quantization-aware: train with the integer weights, thresholds and decays of --target",
    )
    a("--target", metavar="NAME|FILE", help="the target --qat trains for (loihi1, loihi2 or a target file)")
    a(
        "--init",
        metavar="CKPT",
        help="start from this checkpoint's weights (same rule and arch), e.g. to fine-tune a float model with --qat",
    )
    a("--bin-us", type=integer(1, 10**9), help="nmnist: time bin in microseconds (default 300 ms / steps)")
    a("--limit", type=integer(1), help="train on the first N training samples only")
    a("--device", default=d.device, help="auto (CUDA when available), cpu or cuda")
    a("--threads", type=integer(1, 4096), help="CPU threads (default: the cores available)")
    a("--no-progress", dest="progress", action="store_false", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    fields = TrainConfig.__dataclass_fields__
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in fields})


def run_train(args: argparse.Namespace) -> int:
    """Run ``neurodeploy train``; bad arguments or data raise a :class:`NeurodeployError` subclass."""
    check_writable(args.output)  # refused now, not after the training
    refuse_existing([args.output], args.force)
    result = train(config_from_args(args))
    if result.rank:
        return 0
    with atomic_path(args.output) as tmp:
        torch.save(result.checkpoint, tmp)
    acc = result.checkpoint["float_test_accuracy"]
    print(f"float test accuracy {100 * acc:.2f}%; checkpoint written to {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neurodeploy.train", description="Train a spiking network.")
    add_train_arguments(parser)
    show_ranges(parser)
    try:
        return run_train(parser.parse_args(argv))
    except NeurodeployError as err:
        print(f"neurodeploy train: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

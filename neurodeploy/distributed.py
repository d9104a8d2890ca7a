"""Training and comparing on several processes: ``torchrun --nproc_per_node N -m neurodeploy train ...``
(or ``compare ...``).

Under torchrun (``WORLD_SIZE`` > 1) each process joins a process group (NCCL on
CUDA, gloo on the CPU), takes every global batch's samples ``rank::world_size``
and runs the model through PyTorch's DistributedDataParallel. Its gradient hook
weights each process's gradient by its share of the global batch before summing,
so a step equals the single-process step on the same global batch (the losses are
means over samples) up to float summation order; only rank 0 logs and writes the
checkpoint. ``compare`` shares its batches the same way and gathers what each
process measured on rank 0, which alone writes the report. Without torchrun
nothing here changes a run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from neurodeploy.errors import NeurodeployError


@dataclass
class World:
    """This process's place among the training processes (rank 0 of 1 without torchrun)."""

    rank: int = 0
    size: int = 1
    local_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def shard(self, indices):
        """This process's samples of one global batch."""
        return indices[self.rank :: self.size]

    def check_batches(self, samples: int, batch_size: int) -> None:
        """Refuse batches that would leave a process without samples."""
        last = samples % batch_size or batch_size
        if min(batch_size, last) < self.size:
            raise NeurodeployError(
                f"--batch-size {batch_size} over {samples} samples leaves a batch of {last}, "
                f"fewer than the {self.size} processes: each process needs a sample a batch"
            )

    def wrap(self, model: nn.Module, seed: int):
        """``model`` as training steps it: through DDP when there are several processes."""
        if self.size == 1:
            return model
        torch.manual_seed(seed + self.rank)  # each process its own dropout draws, the same every run
        return _Runner(model, self.device)

    def mean(self, values: tuple[float, ...], samples: int) -> tuple[float, ...]:
        """Means over this process's ``samples`` -> means over every process's samples."""
        if self.size == 1:
            return values
        totals = torch.tensor([v * samples for v in values] + [samples], dtype=torch.float64, device=self.device)
        dist.all_reduce(totals)
        return tuple((totals[:-1] / totals[-1]).tolist())

    def gather(self, value):
        """Every process's ``value`` in rank order, on rank 0; None on the others."""
        if self.size == 1:
            return [value]
        out = [None] * self.size if self.rank == 0 else None
        dist.gather_object(value, out, dst=0)
        return out

    def broadcast(self, value):
        """Rank 0's ``value``, on every process."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.size > 1:
            dist.destroy_process_group()


def start(device: torch.device) -> World:
    """Join the process group torchrun describes in the environment; a World of one without it."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(device=device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(rank, size, int(os.environ.get("LOCAL_WORLD_SIZE", str(size))), device)


class _Run(nn.Module):
    """``model.run`` as a forward pass, for DDP to wrap."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.run(x)


class _Runner:
    """The model with ``run`` going through DistributedDataParallel; everything else is the model's."""

    def __init__(self, model: nn.Module, device: torch.device):
        self.model, self.share = model, 1.0
        ids = [device.index] if device.type == "cuda" else None
        self.ddp = DistributedDataParallel(_Run(model), device_ids=ids)
        self.ddp.register_comm_hook(self, _weighted_sum)

    def run(self, x):
        local = torch.tensor([x.shape[1]], dtype=torch.float64, device=x.device)  # x is (T, B, ...)
        total = local.clone()
        dist.all_reduce(total)
        self.share = float(local / total)
        return self.ddp(x)

    def __getattr__(self, name):
        return getattr(self.model, name)


def _weighted_sum(runner: _Runner, bucket):  # -> torch.futures.Future[torch.Tensor]; DDP refuses a string annotation
    """Each process's gradient times its share of the global batch, summed over the processes."""
    grads = bucket.buffer().mul_(runner.share)
    return dist.all_reduce(grads, async_op=True).get_future().then(lambda fut: fut.value()[0])

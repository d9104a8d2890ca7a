"""Losses on the output layer, per rule.

* ``kernel`` (TSSL-BP): ``1/2 sum_t sum_i (a_i[t] - d_i[t])^2``, the distance between the
  output traces and the traces of the desired spike trains (the true class fires
  :func:`desired_train`, the others never), averaged over the batch.
* ``count`` (TSSL-BP): the true class should fire at least ``desired`` times and the
  others at most ``undesired`` times; the count error ``e = (n - target) / T`` (0 when
  on the right side) is injected into every step of the output trace,
  ``dL/da[t] = e``, as the reference implementation does. Value ``1/2 T sum e^2``.
* ``ce`` (BPSA, BPTT): cross-entropy of the class scores taken as logits: the spike
  counts, or under the ``membrane`` readout the output membrane at the last step.
* ``mse``: mean squared error between the class scores over T (firing rates, or the
  mean input current of a membrane readout) and the one-hot label.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .network import class_scores
from .neurons import psp

LOSSES = {"tssl": ("kernel", "count"), "bpsa": ("ce", "mse"), "bptt-lif": ("ce", "mse"), "bptt-if": ("ce", "mse")}
DESIRED_TRAINS = ("reference", "all")


def desired_train(steps: int, kind: str = "reference") -> Tensor:
    """The true class's desired spike train (T,).

    ``reference``: the reference implementation's pattern, ``[0, 1, 1, 1, 1]`` tiled for
    T < 10 and ``[0, 1]`` tiled for T >= 10 (cut to T). ``all``: a spike every step.
    """
    if kind == "all":
        return torch.ones(steps)
    if kind != "reference":
        raise ValueError(f"unknown desired train {kind!r}; choose one of {', '.join(DESIRED_TRAINS)}")
    pattern = [0.0, 1.0] if steps >= 10 else [0.0, 1.0, 1.0, 1.0, 1.0]
    return torch.tensor(pattern * (steps // len(pattern) + 1))[:steps]


def kernel_loss(trace: Tensor, labels: Tensor, desired: Tensor, tau_s: float) -> Tensor:
    """Spike-train kernel loss of output traces (T, B, C) against ``desired`` (T,)."""
    target = torch.zeros_like(trace)
    wanted = psp(desired.to(trace), tau_s)
    target[:, torch.arange(trace.shape[1], device=trace.device), labels] = wanted[:, None]
    return 0.5 * ((trace - target) ** 2).sum() / trace.shape[1]


class _CountLoss(torch.autograd.Function):
    """Value ``1/2 T mean_b sum_i e^2``; gradient ``e / B`` at every step of the trace."""

    @staticmethod
    def forward(ctx, trace: Tensor, error: Tensor):
        ctx.save_for_backward(error)
        ctx.steps = trace.shape[0]
        return 0.5 * ctx.steps * (error**2).sum() / error.shape[0]

    @staticmethod
    def backward(ctx, grad: Tensor):
        (error,) = ctx.saved_tensors
        return (grad * error / error.shape[0]).expand(ctx.steps, *error.shape), None


def count_loss(trace: Tensor, spikes: Tensor, labels: Tensor, desired: float, undesired: float) -> Tensor:
    """Spike-count loss of output traces and spikes (T, B, C) (see the module docstring)."""
    steps, _batch = spikes.shape[:2]
    count = spikes.detach().sum(0)
    is_true = F.one_hot(labels, count.shape[-1]).bool()
    target = torch.where(is_true, float(desired), float(undesired)).to(count)
    error = (count - target) / steps
    error = torch.where(is_true, error.clamp(max=0.0), error.clamp(min=0.0))
    return _CountLoss.apply(trace, error)


def ce_loss(output: Tensor, labels: Tensor, readout: str = "spikes") -> Tensor:
    """Cross-entropy of the class scores (B, C) of a (T, B, C) output as logits."""
    return F.cross_entropy(class_scores(output, readout), labels)


def mse_loss(output: Tensor, labels: Tensor, readout: str = "spikes") -> Tensor:
    """Mean squared error of the class scores over T against the one-hot labels."""
    rates = class_scores(output, readout) / output.shape[0]
    return F.mse_loss(rates, F.one_hot(labels, rates.shape[-1]).to(rates))

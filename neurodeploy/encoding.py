"""Input encodings: how a sample in [0, 1] becomes what the first layer receives.

An encoding is a plain dict, ``{"name": ..., **params}``, stored in checkpoints.
:func:`encode` turns a batch into a time-major tensor (T, B, ...); with the same
``torch.Generator`` state it returns the same tensor, so a simulator can be fed
exactly what the float model saw.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from neurodeploy.errors import NeurodeployError

ENCODINGS = ("direct", "rate", "latency", "events")


class EncodingError(NeurodeployError, ValueError):
    """An unknown encoding or bad parameters."""


def make_encoding(name: str, **params) -> dict:
    """A checked encoding dict, e.g. ``make_encoding("rate", gain=1.0)``."""
    if name not in ENCODINGS:
        raise EncodingError(f"unknown encoding {name!r}; choose one of {', '.join(ENCODINGS)}")
    if name == "rate":
        gain = float(params.pop("gain", 1.0))
        if not gain > 0:
            raise EncodingError(f"rate encoding: gain = {gain} must be > 0")
        params["gain"] = gain
    if params and name != "rate":
        raise EncodingError(f"encoding {name!r} takes no parameters, got {sorted(params)}")
    return {"name": name, **params}


def input_kind(encoding: dict) -> str:
    """``current`` for ``direct`` (the first layer is driven by a constant current), else ``spikes``."""
    return "current" if encoding["name"] == "direct" else "spikes"


def encode(x, encoding: dict, steps: int, generator: torch.Generator | None = None) -> Tensor:
    """Encode a batch ``x`` (B, ...) in [0, 1] into (T, B, ...) float32 on ``x``'s device.

    ``generator`` (a CPU ``torch.Generator``) drives the random draws of ``rate``;
    the others are deterministic. ``events`` takes already-binned spikes (B, T, ...).
    """
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x).float()
    name = encoding["name"]
    if name == "direct":
        return direct(x, steps)
    if name == "rate":
        return rate(x, steps, generator, encoding.get("gain", 1.0))
    if name == "latency":
        return latency(x, steps)
    if name == "events":
        return events(x, steps)
    raise EncodingError(f"unknown encoding {name!r}; choose one of {', '.join(ENCODINGS)}")


def direct(x: Tensor, steps: int) -> Tensor:
    """The sample itself as a constant input current at every step.

    On the chip the first layer's current ``W x + b`` is constant, so it runs as the
    bias of that layer's neurons (computed off-chip once a sample): no input spikes.
    """
    return x.unsqueeze(0).expand(steps, *x.shape).contiguous()


def rate(x: Tensor, steps: int, generator: torch.Generator | None, gain: float = 1.0) -> Tensor:
    """Bernoulli spikes, independent at each step with probability ``clamp(gain * x, 0, 1)``.

    Binary spikes: the chip receives them as ordinary input spikes.
    """
    p = (gain * x).clamp(0.0, 1.0)
    draws = torch.rand((steps, *x.shape), generator=generator, device="cpu").to(x.device)
    return (draws < p).float()


def latency(x: Tensor, steps: int) -> Tensor:
    """One spike per input at step ``round((1 - x) (T - 1))``; inputs <= 0 never spike.

    Brighter inputs spike earlier. Binary spikes: the chip receives them as input spikes.
    """
    when = torch.round((1.0 - x.clamp(0.0, 1.0)) * (steps - 1)).long()
    t = torch.arange(steps, device=x.device).view(steps, *([1] * x.dim()))
    return ((t == when) & (x > 0)).float()


def events(x: Tensor, steps: int) -> Tensor:
    """Binned event-camera spikes (B, T, ...) -> (T, B, ...), any count in a bin -> 1.

    Binary spikes: the chip receives them as input spikes.
    """
    if x.dim() < 2 or x.shape[1] != steps:
        raise EncodingError(
            f"events encoding: input has {x.shape[1] if x.dim() > 1 else 0} time bins, expected {steps}"
        )
    return (x.transpose(0, 1) > 0).float()

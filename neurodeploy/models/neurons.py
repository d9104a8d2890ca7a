"""Spiking neurons of the training rules, each run over a whole time window.

Tensors are time-major, ``(T, batch, ...)``. Every neuron here is one case of the
same current-based (CUBA) LIF neuron, per step ``t``::

    v[t] = (1 - 1/tau_m) * v[t-1] * (1 - s[t-1]) + I[t]      (reset to 0)
    s[t] = v[t] > vth                                         (strictly)

with ``I[t]`` the layer's input current. The rules differ in what a layer passes
on and in the backward pass:

* TSSL-BP (Zhang & Li, NeurIPS 2020): a layer passes on the post-synaptic trace
  ``a[t] = (1 - 1/tau_s) a[t-1] + s[t] / tau_s`` of its spikes, and its gradient
  is :class:`TSSLBPFunction`'s.
* BPSA/BPTA (Shen, Zhao & Zeng, Patterns 2022): integrate-and-fire
  (``tau_m = inf``), spikes passed on as they are (``tau_s = 1``), gradient of
  :class:`BPSAFunction`.
* Plain BPTT: the same forward through autograd with a surrogate derivative
  (:func:`bptt_neuron`), the baseline both rules are measured against.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: Largest |dt_f/du| TSSL-BP uses at a spike (the reference implementation's clamp).
RHO_MAX = 8.0
#: Width of the sigmoid surrogate of TSSL-BP's fallback (reference implementation).
FALLBACK_WIDTH = 0.2
#: Share of the spike's gradient BPTA passes across the reset.
BPTA_RESIDUAL = 0.2


def leak_factor(tau_m: float) -> float:
    """Voltage kept a step, ``1 - 1/tau_m`` (1 for ``tau_m = inf``)."""
    return 1.0 - 1.0 / tau_m


def psp_kernel(steps: int, tau_s: float, dtype=torch.float32, device=None) -> Tensor:
    """(T, T) lower-triangular matrix ``K[t, t'] = (1 - 1/tau_s)**(t - t') / tau_s``.

    ``K @ s`` is the trace ``a[t] = (1 - 1/tau_s) a[t-1] + s[t] / tau_s`` of spikes ``s``.
    """
    t = torch.arange(steps, dtype=dtype, device=device)
    lag = t[:, None] - t[None, :]
    decay = torch.pow(torch.tensor(1.0 - 1.0 / tau_s, dtype=dtype, device=device), lag.clamp(min=0))
    return torch.where(lag >= 0, decay, torch.zeros((), dtype=dtype, device=device)) / tau_s


def psp(spikes: Tensor, tau_s: float) -> Tensor:
    """Trace of time-major ``spikes`` (any trailing shape), differentiable."""
    steps = spikes.shape[0]
    kernel = psp_kernel(steps, tau_s, spikes.dtype, spikes.device)
    return (kernel @ spikes.reshape(steps, -1)).reshape(spikes.shape)


def _integrate(current: Tensor, leak: float, vth: float) -> tuple[Tensor, Tensor]:
    """Run the LIF forward on (T, M) currents; return membranes before reset and spikes."""
    membrane = torch.empty_like(current)
    fired = torch.empty(current.shape, dtype=torch.bool, device=current.device)
    rest = torch.zeros_like(current[0])
    for t in range(current.shape[0]):
        v = torch.add(current[t], rest, alpha=leak, out=membrane[t])
        torch.gt(v, vth, out=fired[t])
        rest = v.masked_fill(fired[t], 0.0)
    return membrane, fired.to(current.dtype)


def _scan_back(drive: Tensor, gain: Tensor) -> Tensor:
    """``out[t] = drive[t] + gain[t] * out[t+1]`` backwards over time, ``out[T] = 0``."""
    out = torch.empty_like(drive)
    carry = torch.zeros_like(drive[0])
    for t in range(drive.shape[0] - 1, -1, -1):
        carry = torch.addcmul(drive[t], gain[t], carry, out=out[t])
    return out


class TSSLBPFunction(torch.autograd.Function):
    r"""LIF layer with TSSL-BP's backward pass: input current (T, ...) -> (trace, spikes).

    Forward: the LIF neuron of the module docstring; the outputs are the trace ``a``
    of the spikes (differentiable) and the spikes themselves (not differentiable).

    Backward, per neuron, from ``g[t] = dL/da[t]`` to ``delta[t] = dL/dI[t] = dL/dv[t]``
    (``v`` before the reset; ``eps[k] = (1 - 1/tau_s)**k / tau_s`` the PSP kernel):

    * error seen by a spike at ``t``: ``G[t] = sum_{k>=0} eps[k] g[t+k]``;
    * firing-time sensitivity at a spike: ``rho[t] = clamp(1 / du[t], 0, 8)`` with the
      membrane increment ``du[t] = v[t] - v[t-1] (1 - s[t-1])`` (so ``dt_f/dv = -rho``);
      an earlier spike raises the trace at every later step, ``da[t_p]/dt_f = -eps[t_p - t_f]``;
    * inter-neuron term at a spike: ``rho[t] G[t]``;
    * intra-neuron term at a spike: the next spike's error ``c[t+1]`` carried back
      through the leak, times ``dv[t+1]/dt_f * dt_f/dv[t] = rho[t] v[t] / tau_m``
      (an earlier reset shortens the leak of ``v[t]``);
    * between spikes: ``delta[t] = (1 - 1/tau_m) c[t+1]`` (leak only; the reset cuts it
      at a spike). ``c[t] = delta[t]`` as computed by these rules.

    ``fallback=True`` follows the reference implementation: where the neuron's own trace
    is below ``1 / (4 tau_s)`` (it has not fired for a while), ``delta[t]`` is replaced by
    ``sigma'((v[t] - vth) / 0.2) / 0.2 * G[t]`` (logistic ``sigma``, argument clamped to
    +-8); the carried error ``c`` keeps the unreplaced value. ``fallback=False`` is the
    paper's rule alone (silent neurons then get no gradient).
    """

    @staticmethod
    def forward(ctx, current: Tensor, tau_m: float, tau_s: float, vth: float, fallback: bool):
        steps = current.shape[0]
        flat = current.reshape(steps, -1)
        membrane, spikes = _integrate(flat, leak_factor(tau_m), vth)
        kernel = psp_kernel(steps, tau_s, flat.dtype, flat.device)
        trace = kernel @ spikes
        ctx.save_for_backward(membrane, spikes, kernel, trace)
        ctx.constants = (tau_m, tau_s, vth, fallback)
        spikes_out = spikes.view_as(current)
        ctx.mark_non_differentiable(spikes_out)
        return trace.view_as(current), spikes_out

    @staticmethod
    def backward(ctx, grad_trace: Tensor, _grad_spikes: Tensor):
        membrane, spikes, kernel, trace = ctx.saved_tensors
        tau_m, tau_s, vth, fallback = ctx.constants
        steps = membrane.shape[0]
        seen = kernel.t() @ grad_trace.reshape(steps, -1)  # G[t]
        increment = membrane.clone()
        increment[1:] -= membrane[:-1]
        increment[1:].addcmul_(membrane[:-1], spikes[:-1])  # v[t] - v[t-1] (1 - s[t-1])
        rho = increment.reciprocal_().clamp_(0.0, RHO_MAX).mul_(spikes)
        # delta[t] = rho[t] (G[t] + c v[t] / tau_m) at spikes, (1 - 1/tau_m) c between them
        gain = torch.where(spikes > 0, rho * membrane / tau_m, leak_factor(tau_m))
        delta = _scan_back(rho.mul_(seen), gain)
        if fallback:
            x = torch.sub(membrane, vth).div_(FALLBACK_WIDTH).clamp_(-8.0, 8.0).sigmoid_()
            surrogate = torch.ops.aten.sigmoid_backward(seen, x).div_(FALLBACK_WIDTH)
            delta = torch.where(trace < 1.0 / (4.0 * tau_s), surrogate, delta)
        return delta.view_as(grad_trace), None, None, None, None


class BPSAFunction(torch.autograd.Function):
    r"""Integrate-and-fire layer with BPSA/BPTA's backward: current (T, ...) -> spikes.

    Forward (``v`` before reset, ``m[t] = v[t] > vth``)::

        v[t] = v[t-1] (1 - m[t-1]) + I[t];   s[t] = m[t]  (binary) or m[t] v[t] (graded)

    Backward, as if ``s = m * v / v.detach()`` (binary) or ``s = m * v`` (graded) and the
    reset were ``r = v (1 - m) + 0.2 (s - s.detach())``:

    * spatial adjustment: ``ds/dv = m / v`` (binary) or ``m`` (graded), zero below threshold;
    * temporal adjustment: ``dr/dv = (1 - m) + 0.2 ds/dv``, so ``dL/dv[t] = dL/ds[t] ds/dv[t]
      + dL/dv[t+1] dr/dv[t]``, and ``dL/dI[t] = dL/dv[t]``.
    """

    @staticmethod
    def forward(ctx, current: Tensor, vth: float, graded: bool):
        steps = current.shape[0]
        membrane, spikes = _integrate(current.reshape(steps, -1), 1.0, vth)
        ctx.save_for_backward(membrane)
        ctx.constants = (vth, graded)
        out = membrane * spikes if graded else spikes
        return out.view_as(current)

    @staticmethod
    def backward(ctx, grad_spikes: Tensor):
        (membrane,) = ctx.saved_tensors
        vth, graded = ctx.constants
        fired = membrane > vth
        slope = fired.to(membrane.dtype) if graded else torch.where(fired, membrane.reciprocal(), 0.0)
        keep = (~fired).to(membrane.dtype) + BPTA_RESIDUAL * slope
        out = _scan_back(grad_spikes.reshape(membrane.shape) * slope, keep)
        return out.view_as(grad_spikes), None, None


class SurrogateSpike(torch.autograd.Function):
    """Heaviside step ``x > 0`` with the derivative of ``atan``: ``1 / (1 + (pi x / w)^2) / w``."""

    @staticmethod
    def forward(ctx, x: Tensor, width: float):
        ctx.save_for_backward(x)
        ctx.width = width
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x,) = ctx.saved_tensors
        w = ctx.width
        return grad / (1 + (math.pi * x / w) ** 2) / w, None


def integrate(current: Tensor, tau_m: float) -> Tensor:
    """Membrane (T, ...) of neurons that never fire: ``v[t] = (1 - 1/tau_m) v[t-1] + I[t]``, differentiable."""
    leak = leak_factor(tau_m)
    if leak == 1.0:
        return current.cumsum(0)
    v, out = torch.zeros_like(current[0]), []
    for step in current:
        v = leak * v + step
        out.append(v)
    return torch.stack(out)


def bptt_neuron(current: Tensor, tau_m: float, vth: float, width: float) -> Tensor:
    """LIF spikes (T, ...) with autograd through time; the reset mask is detached."""
    leak = leak_factor(tau_m)
    rest = torch.zeros_like(current[0])
    out = []
    for t in range(current.shape[0]):
        v = leak * rest + current[t]
        s = SurrogateSpike.apply(v - vth, width)
        rest = v * (1 - s.detach())
        out.append(s)
    return torch.stack(out)

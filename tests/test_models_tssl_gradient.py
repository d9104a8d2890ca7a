"""TSSL-BP's backward against a slow, spike-by-spike implementation of its equations.

The reference here walks each neuron's spike train event by event: the error at
a spike is its inter-neuron term plus the next spike's error carried back through
the leak (intra-neuron term), and between spikes the membrane passes the next
spike's error back through the leak alone.
"""

import math

import numpy as np
import pytest
import torch
from neurodeploy.models.neurons import TSSLBPFunction

TAU_M, TAU_S, VTH = 5.0, 3.0, 1.0


def _neuron(current, tau_m, vth):
    """Membrane before reset, spikes and increments of one neuron, step by step."""
    leak = 1 - 1 / tau_m
    u, s, du, rest = [], [], [], 0.0
    for i in current:
        v = leak * rest + i
        u.append(v)
        du.append(v - rest)
        s.append(v > vth)
        rest = 0.0 if v > vth else v
    return u, s, du


def _slow_delta(current, grad, tau_m, tau_s, vth, fallback):
    """dL/dI of one neuron from dL/da, by the paper's decomposition (module docstring)."""
    steps = len(current)
    leak = 1 - 1 / tau_m
    u, s, du = _neuron(current, tau_m, vth)

    def eps(k):
        return (1 - 1 / tau_s) ** k / tau_s

    seen = [sum(eps(k) * grad[t + k] for k in range(steps - t)) for t in range(steps)]
    spikes = [t for t in range(steps) if s[t]]
    delta = [0.0] * steps
    for n in reversed(range(len(spikes))):
        tf = spikes[n]
        rho = min(1.0 / du[tf], 8.0)  # |dt_f/du|, clamped
        value = rho * seen[tf]  # inter-neuron: the spike's own PSP
        if n + 1 < len(spikes):  # intra-neuron: the reset's effect on the next spike
            nxt = spikes[n + 1]
            value += rho * u[tf] / tau_m * leak ** (nxt - tf - 1) * delta[nxt]
        delta[tf] = value
    for t in range(steps):
        if not s[t]:
            later = [tn for tn in spikes if tn > t]
            delta[t] = leak ** (later[0] - t) * delta[later[0]] if later else 0.0
    if fallback:
        trace = 0.0
        for t in range(steps):
            trace = (1 - 1 / tau_s) * trace + s[t] / tau_s
            if trace < 1 / (4 * tau_s):
                x = min(max((u[t] - vth) / 0.2, -8.0), 8.0)
                sig = 1 / (1 + math.exp(-x))
                delta[t] = sig * (1 - sig) / 0.2 * seen[t]
    return delta


def _slow_trace(spikes, tau_s):
    out, a = [], np.zeros(spikes.shape[1:])
    for s in spikes:
        a = (1 - 1 / tau_s) * a + s / tau_s
        out.append(a)
    return np.stack(out)


def _case(seed, steps=7, batch=3, n_in=5, n_out=4):
    rng = np.random.default_rng(seed)
    spikes_in = (rng.random((steps, batch, n_in)) < 0.5).astype(np.float64)
    weight = rng.normal(0.0, 2.5, (n_out, n_in))
    coeff = rng.normal(0.0, 1.0, (steps, batch, n_out))
    return spikes_in, weight, coeff


@pytest.mark.parametrize("fallback", [False, True])
@pytest.mark.parametrize("seed", range(8))
def test_tsslbp_matches_slow_loop(seed, fallback):
    spikes_in, weight, coeff = _case(seed)
    trace_in = _slow_trace(spikes_in, TAU_S)
    w = torch.tensor(weight, requires_grad=True)
    a_in = torch.tensor(trace_in, requires_grad=True)
    trace, spikes = TSSLBPFunction.apply(a_in @ w.T, TAU_M, TAU_S, VTH, fallback)
    (trace * torch.tensor(coeff)).sum().backward()

    current = trace_in @ weight.T
    _steps, batch, n_out = current.shape
    delta = np.zeros_like(current)
    for b in range(batch):
        for i in range(n_out):
            delta[:, b, i] = _slow_delta(current[:, b, i], coeff[:, b, i], TAU_M, TAU_S, VTH, fallback)
            assert spikes[:, b, i].numpy().tolist() == [float(x) for x in _neuron(current[:, b, i], TAU_M, VTH)[1]]
    np.testing.assert_allclose(w.grad.numpy(), np.einsum("tbi,tbj->ij", delta, trace_in), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(a_in.grad.numpy(), delta @ weight, rtol=1e-6, atol=1e-6)


HAND_MADE = [
    [0.99, 0.25, 0.5, 1.2, 0.0, 1.5],  # a spike crossing by 0.05: |dt/du| clamped to 8
    [2.0, 2.0, 2.0, 2.0, 2.0, 2.0],  # a spike every step
    [0.3, 0.3, 0.3, 0.3, 0.3, 0.3],  # never fires: fallback only
    [-1.0, 1.5, -0.5, 0.9, 0.4, -2.0],  # negative currents, reset then leak
]


@pytest.mark.parametrize("fallback", [False, True])
@pytest.mark.parametrize("current", HAND_MADE)
def test_tsslbp_hand_made_membranes(current, fallback):
    grad = np.random.default_rng(len(current)).normal(size=len(current))
    i = torch.tensor(current, dtype=torch.float64).view(-1, 1, 1).requires_grad_()
    trace, _ = TSSLBPFunction.apply(i, TAU_M, TAU_S, VTH, fallback)
    (trace.view(-1) * torch.tensor(grad)).sum().backward()
    expected = _slow_delta(current, grad, TAU_M, TAU_S, VTH, fallback)
    np.testing.assert_allclose(i.grad.view(-1).numpy(), expected, rtol=1e-6, atol=1e-9)


def test_random_cases_hold_repeated_spikes_and_silent_neurons():
    counts = []
    for seed in range(8):
        spikes_in, weight, _ = _case(seed)
        current = _slow_trace(spikes_in, TAU_S) @ weight.T
        counts += [sum(_neuron(col, TAU_M, VTH)[1]) for col in current.reshape(current.shape[0], -1).T]
    assert max(counts) >= 3 and min(counts) == 0


def test_forward_trace_is_psp_of_spikes():
    current = torch.randn(6, 2, 4, dtype=torch.float64) * 2
    trace, spikes = TSSLBPFunction.apply(current, TAU_M, TAU_S, VTH, True)
    np.testing.assert_allclose(trace.numpy(), _slow_trace(spikes.numpy(), TAU_S), atol=1e-12)

"""BPSA/BPTA's gradient rules on hand-made membranes and against their autograd form."""

import numpy as np
import pytest
import torch
from neurodeploy.models.neurons import BPSAFunction

VTH = 0.5


def _autograd_form(current: torch.Tensor, graded: bool) -> torch.Tensor:
    """The rule written as the paper states it, left to autograd (threshold strict)."""
    mem = torch.zeros_like(current[0])
    out = []
    for t in range(current.shape[0]):
        mem = mem + current[t]
        fired = (mem > VTH).to(mem.dtype)
        spike = fired * mem if graded else fired * mem / mem.detach()
        mem = mem * (1 - fired) + 0.2 * (spike - spike.detach())
        out.append(spike)
    return torch.stack(out)


def test_hand_made_membrane():
    # v = 0.3 (silent), 0.7 (spike), 0.6 after the reset (spike)
    current = torch.tensor([0.3, 0.4, 0.6], dtype=torch.float64).view(3, 1).requires_grad_()
    spikes = BPSAFunction.apply(current, VTH, False)
    assert spikes.view(-1).tolist() == [0.0, 1.0, 1.0]
    (spikes.view(-1) * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).sum().backward()
    g2 = 3 / 0.6  # spatial: ds/dv = 1/v
    g1 = 2 / 0.7 + g2 * 0.2 / 0.7  # temporal: 0.2 ds/dv across the reset
    g0 = g1  # silent: the membrane carries the gradient unchanged
    np.testing.assert_allclose(current.grad.view(-1).numpy(), [g0, g1, g2], rtol=1e-12)


def test_no_gradient_below_threshold():
    current = torch.tensor([0.1, 0.1, 0.1, 0.1], dtype=torch.float64).view(4, 1).requires_grad_()
    spikes = BPSAFunction.apply(current, VTH, False)
    assert spikes.sum() == 0
    spikes.sum().backward()
    assert current.grad.abs().sum() == 0


def test_graded_variant_emits_membrane():
    current = torch.tensor([0.3, 0.4, 0.6], dtype=torch.float64).view(3, 1).requires_grad_()
    out = BPSAFunction.apply(current, VTH, True)
    np.testing.assert_allclose(out.view(-1).detach().numpy(), [0.0, 0.7, 0.6])
    out.sum().backward()
    # ds/dv = 1 at spikes; dr/dv = 0.2 across a reset, 1 below threshold
    np.testing.assert_allclose(current.grad.view(-1).numpy(), [1.2, 1.2, 1.0])


@pytest.mark.parametrize("graded", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_matches_autograd_form(seed, graded):
    gen = torch.Generator().manual_seed(seed)
    current = torch.randn(8, 3, 6, generator=gen, dtype=torch.float64) * 0.6 + 0.2
    coeff = torch.randn(8, 3, 6, generator=gen, dtype=torch.float64)
    a = current.clone().requires_grad_()
    b = current.clone().requires_grad_()
    out_a = BPSAFunction.apply(a, VTH, graded)
    out_b = _autograd_form(b, graded)
    torch.testing.assert_close(out_a, out_b.detach())
    (out_a * coeff).sum().backward()
    (out_b * coeff).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)


def test_membrane_readout_reaches_output_neurons_that_never_fire():
    from neurodeploy.models import SpikingNetwork, make_rule, parse_arch
    from neurodeploy.models.losses import ce_loss

    torch.manual_seed(0)
    rule = make_rule("bpsa")
    assert rule.readout == "membrane" and make_rule("bpsa", readout="spikes").readout == "spikes"
    model = SpikingNetwork(parse_arch("64-32-10"), (1, 8, 8), rule, "current")
    x = torch.rand(5, 16, 1, 8, 8)
    out = model.run(x)
    assert out.spikes.sum() == 0  # the readout layer never fires
    assert torch.allclose(out.output[-1], out.signal.detach()[-1]) and out.layers[0].sum() > 0
    ce_loss(out.signal, torch.arange(16) % 10, rule.readout).backward()
    grad = model.blocks[-1].synapse.weight.grad
    assert bool((grad.abs().sum(1) > 0).all())  # every class's weights learn
    spiking = SpikingNetwork(parse_arch("64-32-10"), (1, 8, 8), make_rule("bpsa", readout="spikes"), "current")
    spiking.load_state_dict(model.state_dict())
    run = spiking.run(x)
    silent = run.spikes.sum((0, 1)) == 0
    ce_loss(run.signal, torch.arange(16) % 10).backward()
    assert bool(silent.any()) and bool((spiking.blocks[-1].synapse.weight.grad[silent] == 0).all())

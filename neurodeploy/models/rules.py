"""Training rules and their neuron constants.

=============  =========================================================  ===================
rule           neuron (forward)                                           gradient
=============  =========================================================  ===================
``tssl``       CUBA LIF, trace of time constant tau_s between layers      TSSL-BP
``bpsa``       integrate-and-fire (tau_m = inf), spikes between layers    BPSA/BPTA
``bptt-lif``   as ``tssl``                                                surrogate BPTT
``bptt-if``    as ``bpsa`` (binary)                                       surrogate BPTT
=============  =========================================================  ===================

The two ``bptt-*`` rules are the plain surrogate-gradient baselines on the same
network as ``tssl`` and ``bpsa``.

Readouts: ``spikes`` classifies by the output layer's spike counts; ``membrane``
(BPSA's default, as BrainCog classifies) by what the output layer integrates: its
neurons never fire, and the class is the one with the highest membrane potential
at the window's last step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from neurodeploy.errors import NeurodeployError
from neurodeploy.netlist import READOUTS

RULES = ("tssl", "bpsa", "bptt-lif", "bptt-if")
TSSL_GRADS = ("reference", "paper")
BPSA_VARIANTS = ("binary", "graded")


class RuleError(NeurodeployError, ValueError):
    """An unknown rule or constants the rule cannot use."""


@dataclass(frozen=True)
class NeuronParams:
    """LIF constants: membrane and synaptic time constants (in steps) and threshold.

    ``tau_m = inf`` is integrate-and-fire; ``tau_s = 1`` passes spikes on unfiltered.
    """

    tau_m: float
    tau_s: float
    vth: float

    @property
    def voltage_decay(self) -> float:
        return 1.0 / self.tau_m

    @property
    def current_decay(self) -> float:
        return 1.0 / self.tau_s

    def as_dict(self) -> dict:
        return {
            "model": "cuba",
            **asdict(self),
            "current_decay": self.current_decay,
            "voltage_decay": self.voltage_decay,
            "input_scale": 1.0 / self.tau_s,
        }


@dataclass(frozen=True)
class Rule:
    """A training rule with its neuron constants and options.

    ``tssl_grad``: ``reference`` adds the reference implementation's surrogate
    fallback for quiet neurons, ``paper`` uses the paper's gradient alone.
    ``variant`` (bpsa): ``binary`` spikes (deployable) or BrainCog's ``graded``
    output with ReLU on the input current (not deployable as binary spikes).
    ``surrogate_width``: width of the atan surrogate of the ``bptt-*`` rules.
    ``readout``: ``spikes`` or ``membrane`` (module docstring).
    """

    name: str
    neuron: NeuronParams
    tssl_grad: str = "reference"
    variant: str = "binary"
    surrogate_width: float = 1.0
    readout: str = "spikes"

    @property
    def passes_trace(self) -> bool:
        """Whether layers pass on the synaptic trace (else the spikes themselves)."""
        return self.neuron.tau_s != 1.0

    @property
    def deployable(self) -> bool:
        """Whether a chain of CUBA neurons with binary spikes computes this network."""
        return self.variant == "binary"


_IF = NeuronParams(math.inf, 1.0, 0.5)
_LIF = NeuronParams(5.0, 3.0, 1.0)
DEFAULT_NEURONS = {"tssl": _LIF, "bptt-lif": _LIF, "bpsa": _IF, "bptt-if": _IF}


def make_rule(
    name: str,
    *,
    tau_m: float | None = None,
    tau_s: float | None = None,
    vth: float | None = None,
    tssl_grad: str = "reference",
    variant: str = "binary",
    surrogate_width: float | None = None,
    readout: str | None = None,
) -> Rule:
    """Build and check a :class:`Rule`; ``None`` constants take the rule's defaults.

    The default readout is ``membrane`` for BPSA's binary variant, ``spikes`` otherwise.
    """
    if name not in RULES:
        raise RuleError(f"unknown rule {name!r}; choose one of {', '.join(RULES)}")
    neuron = DEFAULT_NEURONS[name]
    if name in ("bpsa", "bptt-if") and (tau_m is not None or tau_s is not None):
        raise RuleError(f"rule {name!r} uses integrate-and-fire neurons: tau_m and tau_s cannot be set")
    changes = {k: float(v) for k, v in (("tau_m", tau_m), ("tau_s", tau_s), ("vth", vth)) if v is not None}
    neuron = replace(neuron, **changes)
    if not neuron.tau_m >= 1.0 or not neuron.tau_s >= 1.0:
        raise RuleError(f"tau_m = {neuron.tau_m} and tau_s = {neuron.tau_s} must be >= 1 (in time steps)")
    if not neuron.vth > 0.0:
        raise RuleError(f"threshold vth = {neuron.vth} must be > 0")
    if tssl_grad not in TSSL_GRADS:
        raise RuleError(f"unknown TSSL-BP gradient {tssl_grad!r}; choose one of {', '.join(TSSL_GRADS)}")
    if variant not in BPSA_VARIANTS:
        raise RuleError(f"unknown BPSA variant {variant!r}; choose one of {', '.join(BPSA_VARIANTS)}")
    if variant != "binary" and name != "bpsa":
        raise RuleError(f"variant {variant!r} exists for rule 'bpsa' only")
    width = surrogate_width if surrogate_width is not None else neuron.vth
    if not width > 0.0:
        raise RuleError(f"surrogate width = {width} must be > 0")
    readout = readout or ("membrane" if (name, variant) == ("bpsa", "binary") else "spikes")
    if readout not in READOUTS:
        raise RuleError(f"unknown readout {readout!r}; choose one of {', '.join(READOUTS)}")
    if readout == "membrane" and (name == "tssl" or variant == "graded"):
        raise RuleError(
            f"readout 'membrane' exists for binary spikes and the rules bpsa, bptt-if and bptt-lif; "
            f"{name} {variant} classifies by its output {'trace' if name == 'tssl' else 'spikes'}"
        )
    return Rule(name, neuron, tssl_grad, variant, float(width), readout)

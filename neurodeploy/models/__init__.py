"""Spiking networks trained with TSSL-BP, BPSA/BPTA or plain BPTT, and their checkpoints."""

from .arch import ArchError, Architecture, parse_arch
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .graph import float_graph
from .network import RunOutput, SpikingNetwork, predict
from .rules import RULES, NeuronParams, Rule, RuleError, make_rule

__all__ = [
    "RULES",
    "ArchError",
    "Architecture",
    "CheckpointError",
    "NeuronParams",
    "Rule",
    "RuleError",
    "RunOutput",
    "SpikingNetwork",
    "float_graph",
    "load_checkpoint",
    "make_rule",
    "parse_arch",
    "predict",
    "save_checkpoint",
]

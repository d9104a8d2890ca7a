"""Self-describing checkpoints, loadable with ``torch.load(path, weights_only=True)``.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only:

==========================  ============================================================
key                         value
==========================  ============================================================
``format``, ``version``     ``"neurodeploy-checkpoint"``, ``1``
``rule``                    ``tssl``, ``bpsa``, ``bptt-lif`` or ``bptt-if``
``variant``                 ``binary``, or ``graded`` (bpsa only)
``deployable``              whether CUBA neurons with binary spikes compute the network
``arch``                    the architecture spec, e.g. ``"64-128-10"``
``input_shape``             one sample's shape, e.g. ``[1, 8, 8]``
``num_classes``             output neurons
``neuron``                  ``model`` ("cuba"), ``tau_m``, ``tau_s``, ``vth``,
                            ``current_decay``, ``voltage_decay``, ``input_scale``
``rule_options``            ``tssl_grad``, ``surrogate_width``
``encoding``                ``{"name": "direct"|"rate"|"latency"|"events", ...}``
``steps``                   time steps a sample
``dataset``, ``split``      dataset name and how its train/test split is made
``float_test_accuracy``     accuracy of the float model on the test split
``seed``                    training seed
``evaluation``              ``seed`` and ``batch_size`` with which the test inputs were encoded
``training``                hyper-parameters and per-epoch history (optional)
``state_dict``              the model's tensors
==========================  ============================================================
"""

from __future__ import annotations

from pathlib import Path

import torch

from neurodeploy.errors import InputFileError

from .arch import ArchError, parse_arch
from .network import SpikingNetwork
from .rules import RuleError, make_rule

FORMAT = "neurodeploy-checkpoint"
VERSION = 1
_REQUIRED = ("format", "version", "rule", "variant", "deployable", "arch", "input_shape", "neuron", "encoding",
             "steps", "dataset", "split", "float_test_accuracy", "seed", "state_dict")


class CheckpointError(InputFileError, ValueError):
    """A checkpoint that cannot be read; the message names the file and the key."""


def checkpoint_dict(model: SpikingNetwork, *, encoding: dict, steps: int, dataset: str, split: dict,
                    float_test_accuracy: float, seed: int, evaluation: dict | None = None,
                    training: dict | None = None) -> dict:
    """The checkpoint of ``model`` as a plain dict (tensors on the CPU)."""
    rule = model.rule
    return {
        "format": FORMAT,
        "version": VERSION,
        "rule": rule.name,
        "variant": rule.variant,
        "deployable": rule.deployable,
        "arch": model.arch.spec,
        "input_shape": list(model.input_shape),
        "num_classes": model.arch.num_outputs,
        "neuron": rule.neuron.as_dict(),
        "rule_options": {"tssl_grad": rule.tssl_grad, "surrogate_width": rule.surrogate_width},
        "encoding": dict(encoding),
        "steps": int(steps),
        "dataset": dataset,
        "split": dict(split),
        "float_test_accuracy": float(float_test_accuracy),
        "seed": int(seed),
        "evaluation": dict(evaluation or {}),
        "training": dict(training or {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def save_checkpoint(path: str | Path | None, model: SpikingNetwork, **meta) -> dict:
    """Build the checkpoint (keyword arguments of :func:`checkpoint_dict`), write it to ``path``."""
    ckpt = checkpoint_dict(model, **meta)
    if path is not None:
        torch.save(ckpt, path)
    return ckpt


def model_from_checkpoint(ckpt: dict, source: str = "checkpoint") -> SpikingNetwork:
    """Rebuild the network a checkpoint dict describes, with its weights."""
    missing = [k for k in _REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{source}: missing key {missing[0]!r} (a neurodeploy checkpoint has {', '.join(_REQUIRED)})")
    if ckpt["format"] != FORMAT or ckpt["version"] != VERSION:
        raise CheckpointError(f"{source}: format {ckpt['format']!r} version {ckpt['version']!r} is not {FORMAT!r} version {VERSION}")
    neuron, options = ckpt["neuron"], ckpt.get("rule_options", {})
    own_taus = ckpt["rule"] in ("tssl", "bptt-lif")
    try:
        rule = make_rule(
            ckpt["rule"],
            neuron["tau_m"] if own_taus else None,
            neuron["tau_s"] if own_taus else None,
            neuron["vth"],
            options.get("tssl_grad", "reference"),
            ckpt["variant"],
            options.get("surrogate_width"),
        )
        model = SpikingNetwork(parse_arch(ckpt["arch"]), tuple(ckpt["input_shape"]), rule,
                               "current" if ckpt["encoding"]["name"] == "direct" else "spikes")
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{source}: bad or missing entry {err}") from None
    except (RuleError, ArchError, RuntimeError) as err:
        raise CheckpointError(f"{source}: {err}") from None
    return model


def load_checkpoint(path: str | Path) -> tuple[SpikingNetwork, dict]:
    """Load ``path`` with ``weights_only=True`` on the CPU -> (model in eval mode, the dict)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # torch raises many types for a bad file
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: holds a {type(ckpt).__name__}, not a checkpoint dict")
    model = model_from_checkpoint(ckpt, str(path))
    return model.eval(), ckpt

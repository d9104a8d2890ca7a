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
``rule_options``            ``tssl_grad``, ``surrogate_width``, ``readout`` (``spikes`` when
                            absent, as before readouts existed)
``encoding``                ``{"name": "direct"|"rate"|"latency"|"events", ...}``
``steps``                   time steps a sample
``dataset``, ``split``      dataset name and how its train/test split is made; ``split.data_root``:
                            the folder it was read from (absolute), for all but digits
``float_test_accuracy``     accuracy of the float model on the test split
``seed``                    training seed
``evaluation``              ``seed`` and ``batch_size`` with which the test inputs were encoded
``training``                hyper-parameters and per-epoch history (optional)
``qat``                     present when trained quantization-aware: ``target``, its
                            ``limits`` and every neuron layer's frozen ``scales``
                            (:mod:`neurodeploy.models.qat`); loading rebuilds that forward
``state_dict``              the model's tensors
==========================  ============================================================
"""

from __future__ import annotations

import math
import pickle
import re
import reprlib
import zipfile
from pathlib import Path

import torch

from neurodeploy import budget
from neurodeploy.atomic import atomic_path
from neurodeploy.encoding import make_encoding
from neurodeploy.errors import InputFileError, NeurodeployError, printable

from .arch import parse_arch
from .network import SpikingNetwork
from .qat import enable_qat, from_entry
from .rules import make_rule

FORMAT = "neurodeploy-checkpoint"
VERSION = 1
_REQUIRED = (
    "format",
    "version",
    "rule",
    "variant",
    "deployable",
    "arch",
    "input_shape",
    "neuron",
    "encoding",
    "steps",
    "dataset",
    "split",
    "float_test_accuracy",
    "seed",
    "state_dict",
)
_TYPES = {
    "format": (str,),
    "version": (int,),
    "rule": (str,),
    "variant": (str,),
    "deployable": (bool,),
    "arch": (str,),
    "input_shape": (list, tuple),
    "neuron": (dict,),
    "encoding": (dict,),
    "steps": (int,),
    "dataset": (str,),
    "split": (dict,),
    "float_test_accuracy": (int, float),
    "seed": (int,),
    "state_dict": (dict,),
}
_OPTIONAL = {"num_classes": (int,), "rule_options": (dict,), "evaluation": (dict,), "training": (dict,), "qat": (dict,)}
_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60
PARAMETER_BYTES = 8  # float32 parameters, twice: the network's and the loaded copy
MAX_STEPS = 100_000  # time steps a sample
MAX_INPUT = 1 << 24  # values in one input sample
# what torch.load raises for a damaged archive or pickle (an UnpicklingError is reported apart)
TORCH_LOAD_ERRORS = (
    RuntimeError,
    OSError,
    EOFError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    AssertionError,
    RecursionError,
)  # torch asserts on a damaged persistent id


class CheckpointError(InputFileError, ValueError):
    """A checkpoint that cannot be read; the message names the file and the key."""


def checkpoint_dict(
    model: SpikingNetwork,
    *,
    encoding: dict,
    steps: int,
    dataset: str,
    split: dict,
    float_test_accuracy: float,
    seed: int,
    evaluation: dict | None = None,
    training: dict | None = None,
    qat: dict | None = None,
) -> dict:
    """The checkpoint of ``model`` as a plain dict (tensors on the CPU)."""
    rule = model.rule
    return {
        **({"qat": qat} if qat else {}),
        "format": FORMAT,
        "version": VERSION,
        "rule": rule.name,
        "variant": rule.variant,
        "deployable": rule.deployable,
        "arch": model.arch.spec,
        "input_shape": list(model.input_shape),
        "num_classes": model.arch.num_outputs,
        "neuron": rule.neuron.as_dict(),
        "rule_options": {"tssl_grad": rule.tssl_grad, "surrogate_width": rule.surrogate_width, "readout": rule.readout},
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
    """Build the checkpoint (keyword arguments of :func:`checkpoint_dict`), write it to ``path`` atomically."""
    ckpt = checkpoint_dict(model, **meta)
    if path is not None:
        with atomic_path(path) as tmp:
            torch.save(ckpt, tmp)
    return ckpt


def model_from_checkpoint(ckpt: dict, source: str = "checkpoint") -> SpikingNetwork:
    """Rebuild the network a checkpoint dict describes, with its weights.

    Every entry's type and range is checked first, and the tensors' shapes are
    compared with those of the network built on the meta device (no memory), so a
    damaged checkpoint raises :class:`CheckpointError` naming the entry before any
    large allocation.
    """
    check_entries(ckpt, source)
    neuron, options = ckpt["neuron"], ckpt.get("rule_options", {})
    own_taus = ckpt["rule"] in ("tssl", "bptt-lif")
    try:
        rule = make_rule(
            ckpt["rule"],
            tau_m=neuron["tau_m"] if own_taus else None,
            tau_s=neuron["tau_s"] if own_taus else None,
            vth=neuron["vth"],
            tssl_grad=options.get("tssl_grad", "reference"),
            variant=ckpt["variant"],
            surrogate_width=options.get("surrogate_width"),
            readout=options.get("readout", "spikes"),
        )
        make_encoding(**ckpt["encoding"])
        args = (
            parse_arch(ckpt["arch"]),
            tuple(ckpt["input_shape"]),
            rule,
            "current" if ckpt["encoding"]["name"] == "direct" else "spikes",
        )
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in SpikingNetwork(*args).state_dict().items()}
    except (KeyError, TypeError, ValueError) as err:  # RuleError, ArchError and EncodingError are ValueErrors
        raise CheckpointError(f"{source}: bad or missing entry: {err}") from None
    elements = sum(math.prod(shape) for shape in shapes.values())
    budget.require(
        elements * PARAMETER_BYTES,
        f"{source}: arch {_short(ckpt['arch'])}: {elements} parameters (the network and the checkpoint's copy)",
    )
    _check_tensors(ckpt["state_dict"], shapes, source)
    model = SpikingNetwork(*args)
    model.load_state_dict(ckpt["state_dict"])
    if "qat" in ckpt:
        try:
            enable_qat(model, *from_entry(ckpt["qat"], source))
        except NeurodeployError as err:  # QatError, or a QuantizeError from the recorded limits
            raise CheckpointError(f"{source}: qat: {err}") from None
    return model


def check_entries(ckpt: dict, source: str) -> None:
    """The type of every entry, and the range of the sizes, before anything is built from them."""
    missing = [k for k in _REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(
            f"{source}: missing key {missing[0]!r} (a neurodeploy checkpoint has {', '.join(_REQUIRED)})"
        )
    for key, kinds in {**_TYPES, **{k: v for k, v in _OPTIONAL.items() if k in ckpt}}.items():
        value = ckpt[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            want = " or ".join(k.__name__ for k in kinds)
            raise CheckpointError(f"{source}: {key} = {_short(value)}: expected {want}")
    if ckpt["format"] != FORMAT or ckpt["version"] != VERSION:
        raise CheckpointError(
            f"{source}: format {ckpt['format']!r} version {ckpt['version']!r} is not {FORMAT!r} version {VERSION}"
        )
    shape = ckpt["input_shape"]
    if not 1 <= len(shape) <= 3 or not all(_is_int(s) and s >= 1 for s in shape) or math.prod(shape) > MAX_INPUT:
        raise CheckpointError(
            f"{source}: input_shape = {_short(shape)}: expected 1 to 3 sizes >= 1, at most {MAX_INPUT} in all"
        )
    if not 1 <= ckpt["steps"] <= MAX_STEPS:
        raise CheckpointError(f"{source}: steps = {ckpt['steps']}: expected 1 .. {MAX_STEPS}")
    if not math.isfinite(ckpt["float_test_accuracy"]):
        raise CheckpointError(
            f"{source}: float_test_accuracy = {ckpt['float_test_accuracy']}: expected a finite number"
        )
    for key in ("tau_m", "tau_s", "vth"):
        value = ckpt["neuron"].get(key)
        if key in ckpt["neuron"] and (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or math.isnan(value)
            or (key == "vth" and math.isinf(value))
        ):
            raise CheckpointError(f"{source}: neuron.{key} = {_short(value)}: expected a number")
    if not isinstance(ckpt["encoding"].get("name"), str):
        raise CheckpointError(f"{source}: encoding = {_short(ckpt['encoding'])}: expected a 'name'")


def _check_tensors(state: dict, shapes: dict[str, tuple[int, ...]], source: str) -> None:
    """``state`` holds finite tensors with exactly the keys and shapes of the network's own."""
    for key in sorted(set(shapes) | set(state)):
        if key not in state:
            raise CheckpointError(f"{source}: state_dict lacks {key!r} (shape {shapes[key]}) that the architecture has")
        value = state[key]
        if key not in shapes:
            raise CheckpointError(f"{source}: state_dict entry {key!r} has no place in the architecture")
        if not isinstance(value, torch.Tensor) or value.is_complex() or value.dtype == torch.bool:
            raise CheckpointError(f"{source}: state_dict[{key!r}] = {_short(value)}: expected a real tensor")
        if value.layout != torch.strided:
            raise CheckpointError(
                f"{source}: state_dict[{key!r}] is a {value.layout} tensor; only dense tensors are read"
            )
        if tuple(value.shape) != shapes[key]:
            raise CheckpointError(
                f"{source}: state_dict[{key!r}] has shape {tuple(value.shape)}, the architecture needs {shapes[key]}"
            )
        if value.untyped_storage().nbytes() < value.numel() * value.element_size():
            raise CheckpointError(
                f"{source}: state_dict[{key!r}] is a view repeating {value.untyped_storage().nbytes()} "
                f"bytes over shape {tuple(value.shape)} (strides {value.stride()}); torch.save of "
                "a network's own tensors stores every value"
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{source}: state_dict[{key!r}] holds non-finite values")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value) -> str:
    """A bounded repr: nested containers are cut at a few levels (a deep nest recurses no further)."""
    text = printable(_REPR.repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


def load_checkpoint(path: str | Path) -> tuple[SpikingNetwork, dict]:
    """Load ``path`` with ``weights_only=True`` on the CPU -> (model in eval mode, the dict).

    Only the zip archives ``torch.save`` writes are read, with no compressed member
    (which could expand far beyond the file); the unpickler rebuilds tensors,
    numbers, strings, lists and dicts and refuses any other object.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    _check_archive(path)
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: refused: it holds Python objects other than tensors, numbers, strings, lists "
            f"and dicts, and checkpoints are never unpickled beyond those ({_refusal(err)})"
        ) from None
    except TORCH_LOAD_ERRORS as err:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(err).__name__}: {_first_line(err)})") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: holds a {type(ckpt).__name__}, not a checkpoint dict")
    model = model_from_checkpoint(ckpt, str(path))
    return model.eval(), ckpt


def _check_archive(path: Path) -> None:
    """A zip archive whose members are stored uncompressed, as ``torch.save`` writes them."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as err:  # the last: zip versions
        raise CheckpointError(f"{path}: not a checkpoint written by torch.save (not a zip archive: {err})") from None
    packed = [m.filename for m in members if m.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise CheckpointError(
            f"{path}: member {packed[0]!r} is compressed; torch.save stores members uncompressed, "
            "and compressed ones (which may expand without limit) are refused"
        )


def _refusal(err: BaseException) -> str:
    """What torch's weights-only unpickler refused (its message also advises an unsafe load: left out)."""
    text = str(err)
    at = text.lower().find("unsupported")
    return "a construct it does not allow" if at < 0 else re.split(r"\.\s|\n", text[at:])[0].rstrip(".")


def _first_line(err: BaseException) -> str:
    return (str(err).splitlines() or [""])[0][:200]

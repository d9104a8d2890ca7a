"""The export pipeline: trained model -> checked integer netlist -> files for the chip.

``quantize_model`` loads a checkpoint, folds and quantizes it for a target with
calibration data; ``export_model`` checks every design rule first and writes
nothing unless all pass, then writes every file into a staging folder beside the
outputs and renames each into place only once all are complete.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neurodeploy import faults
from neurodeploy.atomic import replace_all
from neurodeploy.errors import NeurodeployError, OutputFileError
from neurodeploy.fold import fold
from neurodeploy.quantize import Limits, Quantized, quantize

FORMATS = {"netx": ".net", "nir": ".nir", "onnx": ".onnx"}


class ExportError(NeurodeployError):
    """An export that cannot proceed (existing files, unknown format)."""


@dataclass
class FloatModel:
    """A float network ready to quantize: its graph, how inputs are encoded, and the torch model."""

    graph: list[dict]
    meta: dict
    model: object = None  # the torch module, when the source is a checkpoint

    @property
    def steps(self) -> int:
        return int(self.meta["steps"])


@dataclass
class ExportResult:
    quantized: Quantized
    files: dict[str, Path] = field(default_factory=dict)
    violations: list = field(default_factory=list)


def load_float_model(path: str | Path, dt: float | None = None, steps: int | None = None) -> FloatModel:
    """A checkpoint (``.pt``) or a NIR graph written by any framework (``.nir``)."""
    path = Path(path)
    if path.suffix == ".nir":
        from neurodeploy.nir_import import float_model_from_nir

        return float_model_from_nir(path, dt=dt, steps=steps)
    from neurodeploy.models import float_graph, load_checkpoint

    model, meta = load_checkpoint(path)
    if not meta.get("deployable", True):
        raise ExportError(f"{path}: the model is marked not deployable ({meta.get('rule')} {meta.get('variant')})")
    return FloatModel(float_graph(model), meta, model)


def encoded_inputs(fm: FloatModel, x: np.ndarray, seed: int = 0) -> tuple[np.ndarray, object]:
    """(integer-side inputs, float-side tensor) for samples ``x``, from one encoding draw.

    The integer side gets spikes (B, T, ...) as bool, or for the direct encoding
    the samples themselves (the quantizer turns them into input biases).
    """
    import torch

    from neurodeploy.encoding import encode

    enc = encode(x, fm.meta["encoding"], fm.steps, torch.Generator().manual_seed(seed))
    if fm.meta["encoding"]["name"] == "direct":
        return np.asarray(x, dtype=np.float64), enc
    return enc.numpy().swapaxes(0, 1) > 0, enc


def float_rates(fm: FloatModel, enc) -> tuple[np.ndarray, list[np.ndarray]]:
    """(output spikes (B, T, classes), per-layer spikes (B, T, ...)) of the float model."""
    import torch

    with torch.no_grad():
        out, layers = fm.model(enc, record=True)
    return out.numpy().swapaxes(0, 1), [s.numpy().swapaxes(0, 1) for s in layers]


def calibration_samples(fm: FloatModel, n: int, data_root: str | None) -> np.ndarray:
    """The first ``n`` training samples of the model's dataset (stratified order of the split)."""
    from neurodeploy.datasets import load_dataset

    x, _ = load_dataset(fm.meta["dataset"], root=data_root, split="train")
    return x[:n]


def quantize_model(fm: FloatModel, target, calibrate: int = 256, method: str = "max",
                   data_root: str | None = None, seed: int = 0) -> Quantized:
    """Fold and quantize ``fm`` within ``target``'s ranges, calibrated on ``calibrate`` samples."""
    layers = fold(fm.graph)
    limits = Limits.from_target(target)
    scales = trained_scales(fm, limits)
    if not calibrate or fm.model is None:
        return quantize(layers, fm.steps, limits, scales=scales)
    x = calibration_samples(fm, calibrate, data_root)
    inputs, enc = encoded_inputs(fm, x, seed)
    rates = None
    if method == "rate":
        rates = [float(s.mean()) for s in float_rates(fm, enc)[1]]
    return quantize(layers, fm.steps, limits, calibration=inputs, method=method, float_rates=rates, scales=scales)


def trained_scales(fm: FloatModel, limits: Limits) -> list | None:
    """The scales quantization-aware training froze, when it trained for these limits; else None."""
    entry = fm.meta.get("qat")
    if not entry:
        return None
    from neurodeploy.models.qat import from_entry

    trained_limits, scales = from_entry(entry, "checkpoint")
    return scales if trained_limits == limits else None


def qat_summary(fm: FloatModel, target) -> dict | None:
    """export.json's account of quantization-aware training: for which target, and whether its scales were kept."""
    entry = fm.meta.get("qat")
    if not entry:
        return None
    kept = trained_scales(fm, Limits.from_target(target)) is not None
    return {"trained_for": entry["target"], "scales": "as trained" if kept else
            f"quantized afresh: {target.name}'s limits differ from those of {entry['target']}"}


def export_model(source: str | Path, target, out_dir: str | Path, formats=("netx",), calibrate: int = 256,
                 method: str = "max", force: bool = False, data_root: str | None = None,
                 dt: float | None = None, steps: int | None = None, strict: bool = False) -> ExportResult:
    """Quantize ``source`` for ``target``, check every design rule, then write the files.

    ``strict``: any numerical fault counted (clipping, thresholds beyond 17 bits, u wraps
    or v saturations on the calibration inputs) is an error, and nothing is written.
    """
    from neurodeploy.drc import DesignRuleError, check

    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ExportError(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    stem = Path(source).stem
    targets = {fmt: out_dir / f"{stem}{FORMATS[fmt]}" for fmt in formats}
    report_path = out_dir / "export.json"
    existing = [p for p in [*targets.values(), report_path] if p.exists()]
    if existing and not force:
        raise ExportError(f"{', '.join(map(str, existing))} exist(s); pass --force to overwrite")
    fm = load_float_model(source, dt=dt, steps=steps)
    q = quantize_model(fm, target, calibrate, method, data_root)
    violations = check(q.netlist, target)
    if violations:
        err = DesignRuleError(violations, target)
        err.args = (f"{source}: {err}",)
        raise err
    if strict:
        faults.require_none(numerical_faults(q), faults.layer_labels(q.netlist), str(source))
    result = ExportResult(q, violations=violations)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".export-", dir=out_dir) as staging:
            staged = {fmt: Path(staging) / path.name for fmt, path in targets.items()}
            for fmt, path in staged.items():
                _write(fmt, q, path)
            if q.input_transform is not None:
                staged["input_transform"] = Path(staging) / f"{stem}.input.npz"
                with open(staged["input_transform"], "wb") as fh:
                    np.savez(fh, **{k: np.asarray(v) for k, v in q.input_transform.items()})
            result.files = {key: out_dir / path.name for key, path in staged.items()}
            staged["report"] = Path(staging) / report_path.name
            result.files["report"] = report_path
            staged["report"].write_text(json.dumps(export_summary(source, target, fm, q, result), indent=2))
            replace_all(((path, result.files[key]) for key, path in staged.items()), Path(staging))
    except OutputFileError as err:  # named in the staging folder: name it where it belongs
        raise OutputFileError(out_dir / err.path.name, err.reason, "the previous files are kept") from err
    except OSError as err:  # writing into the staging folder: a full disk, no permission
        raise OutputFileError(out_dir, f"cannot write the export: {err.strerror or err}",
                              "the previous files are kept") from err
    return result


def numerical_faults(q: Quantized) -> faults.Counts:
    """Per neuron layer, the quantizer's counts and the simulator's on the calibration inputs."""
    return faults.merged(faults.quantizer_counts(q.layers), faults.calibration_counts(q.layers))


def _write(fmt: str, q: Quantized, path: Path) -> None:
    if fmt == "netx":
        from neurodeploy.exporters.netx import write_netx

        write_netx(q.netlist, path)
    elif fmt == "nir":
        from neurodeploy.exporters.nir import write_nir

        write_nir(q.netlist, path)
    else:
        from neurodeploy.exporters.onnx import write_onnx

        write_onnx(q.netlist, path, steps=q.netlist.output_window[1])


def export_summary(source, target, fm: FloatModel, q: Quantized, result: ExportResult) -> dict:
    from neurodeploy.drc import unchecked

    """What export.json holds: the run conventions and, per layer, how it was quantized."""
    net = q.netlist
    return {
        "source": str(source),
        "target": target.name,
        "rule": fm.meta.get("rule"),
        "encoding": fm.meta.get("encoding"),
        "steps": q.steps,
        "run_steps": net.output_window[1],
        "reset_interval": net.reset_interval,
        "reset_offset": net.reset_offset,
        "output_window": list(net.output_window),
        "input": "bias" if q.input_transform is not None else "spikes",
        "readout": net.readout,
        "qat": qat_summary(fm, target),
        "float_test_accuracy": fm.meta.get("float_test_accuracy"),
        "files": {k: str(v) for k, v in result.files.items()},
        "design_rules": {"passed": not result.violations, "violations": [str(v) for v in result.violations],
                         "unchecked": unchecked(target)},
        "layers": [layer.as_dict() for layer in q.layers],
        "numerical_faults": faults.summary(numerical_faults(q), faults.layer_labels(net)),
    }

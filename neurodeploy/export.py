"""The export pipeline: trained model -> checked integer netlist -> files for the chip.

``quantize_model`` folds and quantizes a loaded model for a target, with
calibration data where there is any (the folder the checkpoint was trained from
by default); ``export_model`` checks every design rule first and writes
nothing unless all pass, then writes every file into a staging folder beside the
outputs and renames each into place only once all are complete.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from neurodeploy import faults
from neurodeploy.atomic import atomic_path, check_writable, refuse_existing, staged_outputs
from neurodeploy.errors import NeurodeployError, OutputFileError
from neurodeploy.float_model import FloatModel, load_float_model
from neurodeploy.fold import fold
from neurodeploy.quantize import Limits, Quantized, host_layer, layer_labels, quantize

FORMATS = {"netx": ".net", "nir": ".nir", "onnx": ".onnx"}


class ExportError(NeurodeployError):
    """An export that cannot proceed (unknown format, calibration without samples)."""


@dataclass
class ExportResult:
    quantized: Quantized
    files: dict[str, Path] = field(default_factory=dict)
    violations: list = field(default_factory=list)


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


def data_folder(fm: FloatModel, data_root: str | None) -> str | None:
    """``data_root`` when given, else the folder the model was trained from, while it still exists."""
    if data_root is not None:
        return data_root
    remembered = fm.meta.get("split", {}).get("data_root")
    return remembered if isinstance(remembered, str) and Path(remembered).is_dir() else None


def _no_calibration(fm: FloatModel, calibrate: int, root: str | None) -> str | None:
    """Why no calibration can run, or None when it can."""
    if not calibrate:
        return "--calibrate 0"
    if fm.model is None:
        return "a NIR graph carries no training data"
    if fm.meta["dataset"] == "digits" or root is not None:
        return None
    remembered = fm.meta.get("split", {}).get("data_root")
    gone = f"the folder it was trained from, {remembered}, no longer exists; " if remembered else ""
    return f"dataset {fm.meta['dataset']!r} has no data folder ({gone}pass --data-root DIR to calibrate)"


def calibration_samples(fm: FloatModel, n: int, data_root: str | None) -> np.ndarray:
    """The first ``n`` training samples of the model's dataset (stratified order of the split)."""
    from neurodeploy.datasets import load_dataset

    split = fm.meta.get("split", {})
    extra = {k: split[k] for k in ("steps", "bin_us") if split.get(k) is not None}
    x, _ = load_dataset(fm.meta["dataset"], root=data_root, split="train", **extra)
    return x[:n]


def quantize_model(
    fm: FloatModel, target, *, calibrate: int = 256, method: str = "max", data_root: str | None = None, seed: int = 0
) -> Quantized:
    """Fold and quantize ``fm`` within ``target``'s ranges, calibrated on ``calibrate`` training samples.

    The samples come from ``data_root``, or the folder the checkpoint remembers; with
    neither (for a dataset that needs one), the network is quantized without
    calibration. ``Quantized.calibration`` records which.
    """
    layers = fold(fm.graph)
    limits = Limits.from_target(target)
    scales = trained_scales(fm, limits)
    root = data_folder(fm, data_root)
    reason = _no_calibration(fm, calibrate, root)
    if reason is not None:
        if method == "rate":
            raise ExportError(f"calibration 'rate' needs calibration samples, and there are none: {reason}")
        q = quantize(layers, fm.steps, limits=limits, method=method, scales=scales)  # percentiles need no samples
        q.calibration = {"samples": 0, "reason": reason}
        return q
    x = calibration_samples(fm, calibrate, root)
    inputs, enc = encoded_inputs(fm, x, seed)
    rates = None
    if method == "rate":
        rates = [float(s.mean()) for s in float_rates(fm, enc)[1]]
    q = quantize(layers, fm.steps, limits=limits, calibration=inputs, method=method, float_rates=rates, scales=scales)
    q.calibration = {"samples": len(x), "method": method, "data_root": root}
    return q


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
    return {
        "trained_for": entry["target"],
        "scales": "as trained"
        if kept
        else f"quantized afresh: {target.name}'s limits differ from those of {entry['target']}",
    }


def _quantize_to_fit(source, target, *, dt, steps, copies: int | None, **options) -> tuple[FloatModel, Quantized, list]:
    """The float model, the quantized one and its design-rule violations; a NIR graph's recurrent layers
    held in ``copies`` copies, or (None) in the import's default, halved until the netlist passes the rules."""
    from neurodeploy.drc import check

    fm = load_float_model(source, dt=dt, steps=steps, copies=copies)
    while True:
        q = quantize_model(fm, target, **options)
        violations = check(q.netlist, target)
        held = max(fact.copies for fact in q.layers)
        if not violations or held == 1 or copies is not None:
            return fm, q, violations
        fewer = [{**op, "copies": held // 2} if op.get("copies", 1) > 1 else op for op in fm.graph]
        fm = replace(fm, graph=fewer)  # fewer copies need less memory: no budget to check again


def export_model(
    source: str | Path,
    target,
    out_dir: str | Path,
    *,
    formats=("netx",),
    calibrate: int = 256,
    method: str = "max",
    force: bool = False,
    data_root: str | None = None,
    dt: float | None = None,
    steps: int | None = None,
    strict: bool = False,
    copies: int | None = None,
) -> ExportResult:
    """Quantize ``source`` for ``target``, check every design rule, then write the files.

    ``dt``, ``steps`` and ``copies`` apply to NIR graphs (:func:`load_float_model`); without ``copies``,
    recurrent layers get the import's default, halved until the netlist passes the design rules.
    ``strict``: any numerical fault counted (clipping, thresholds beyond 17 bits, u wraps
    or v saturations on the calibration inputs) is an error, and nothing is written.
    """
    from neurodeploy.drc import DesignRuleError

    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ExportError(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    out_dir = check_writable(out_dir, folder=True)
    stem = Path(source).stem
    targets = {fmt: out_dir / f"{stem}{FORMATS[fmt]}" for fmt in formats}
    report_path = out_dir / "export.json"
    refuse_existing([*targets.values(), report_path], force)
    writers = {fmt: _writer(fmt) for fmt in formats}
    fm, q, violations = _quantize_to_fit(
        source, target, dt=dt, steps=steps, copies=copies, calibrate=calibrate, method=method, data_root=data_root
    )
    if violations:
        err = DesignRuleError(violations, target)
        err.args = (f"{source}: {err}",)
        raise err
    if strict:
        faults.require_none(numerical_faults(q), layer_labels(q), str(source))
    result = ExportResult(q, violations=violations)
    try:
        with staged_outputs(out_dir, overwrite=force, prefix=".export-"):
            for fmt, path in targets.items():
                writers[fmt](q, path)
            result.files = dict(targets)
            if q.input_transform is not None:
                result.files["input_transform"] = out_dir / f"{stem}.input.npz"
                with atomic_path(result.files["input_transform"]) as tmp, open(tmp, "wb") as fh:
                    np.savez(fh, **{k: np.asarray(v) for k, v in q.input_transform.items()})  # type: ignore[arg-type]  # numpy's stub lets **arrays fill allow_pickle
            result.files["report"] = report_path
            with atomic_path(report_path) as tmp:
                tmp.write_text(json.dumps(export_summary(source, target, fm, q, result), indent=2))
    except OutputFileError as err:
        raise OutputFileError(err.path, err.reason, "the previous files are kept") from err
    return result


def numerical_faults(q: Quantized) -> faults.Counts:
    """Per neuron layer, the quantizer's counts and the simulator's on the calibration inputs."""
    return faults.merged(faults.quantizer_counts(q.layers), faults.calibration_counts(q.layers))


def _writer(fmt: str) -> Callable[[Quantized, Path], None]:
    """The writer of one format, its packages imported now: a missing extra fails before any work."""
    if fmt == "netx":
        from neurodeploy.exporters.netx import write_netx

        return lambda q, path: write_netx(q.netlist, path)
    if fmt == "nir":
        from neurodeploy.exporters.nir import nir_module, write_nir

        nir_module()

        return lambda q, path: write_nir(q.netlist, path)
    import onnx  # noqa: F401

    from neurodeploy.exporters.onnx import write_onnx

    return lambda q, path: write_onnx(q.netlist, path, steps=q.netlist.window[1])


def export_summary(source, target, fm: FloatModel, q: Quantized, result: ExportResult) -> dict:
    """What export.json holds: the run conventions, the lava-dl call that loads the netx file, and per
    layer how it was quantized."""
    from neurodeploy.drc import unchecked
    from neurodeploy.exporters.netx import lava_dl_call

    net = q.netlist
    return {
        "source": str(source),
        "target": target.name,
        "rule": fm.meta.get("rule"),
        "encoding": fm.meta.get("encoding"),
        "steps": q.steps,
        "run_steps": net.window[1],
        "reset_interval": net.reset_interval,
        "reset_offset": net.reset_offset,
        "output_window": list(net.window),
        "conventions": target.conventions,
        "lava_dl_call": lava_dl_call(result.files["netx"], net) if "netx" in result.files else None,
        "input": "bias" if q.input_transform is not None else "spikes",
        "host_layer": host_layer(q),
        "calibration": q.calibration,
        "readout": net.readout,
        "qat": qat_summary(fm, target),
        "float_test_accuracy": fm.meta.get("float_test_accuracy"),
        "files": {k: str(v) for k, v in result.files.items()},
        "design_rules": {
            "passed": not result.violations,
            "violations": [str(v) for v in result.violations],
            "unchecked": unchecked(target),
        },
        "layers": [layer.as_dict() for layer in q.layers],
        "numerical_faults": faults.summary(numerical_faults(q), layer_labels(q)),
    }

"""The comparison report: float versus quantized figures from plain arrays, as JSON and Markdown.

Everything here works on numpy arrays and plain dicts (predictions, labels,
per-layer spikes, simulator counters, the mapping's cost), so each figure can
be checked on small arrays whose right values are known; no torch.

The accuracy gap is quantized minus float on the same samples. Its confidence
interval is paired: Agresti and Min's (2005) adjusted Wald interval, which
depends on the discordant pairs only (samples one side gets right and the other
wrong). The exact McNemar test gives the p-value of "no difference".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from statistics import NormalDist

import numpy as np

from neurodeploy import faults
from neurodeploy.atomic import atomic_path
from neurodeploy.mapping import si_format

CONFIDENCE = 0.95
REPORT_FILES = {"json": "report.json", "markdown": "report.md"}
CI_METHOD = (
    "Agresti-Min (2005) adjusted Wald interval for paired proportions: the Wald interval of the "
    "difference after adding half a pair to each cell of the 2x2 table of paired outcomes"
)
DECODING = (
    "prediction = argmax of the output layer's spike counts over the output window "
    "(steps {start}..{last} of the run), ties to the lowest class index"
)
DECODING_MEMBRANE = (
    "prediction = argmax of the output layer's membrane potential v at step {last} of the run, "
    "the last of the output window (steps {start}..{last}; its neurons never fire), "
    "ties to the lowest class index"
)


def z_value(confidence: float = CONFIDENCE) -> float:
    """The two-sided normal quantile for ``confidence``."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of the proportion ``k / n``."""
    if n == 0:
        return 0.0, 1.0
    z, p = z_value(confidence), k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_difference_interval(
    first_only: int, second_only: int, n: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Interval for p2 - p1 from ``n`` pairs, ``first_only`` / ``second_only`` of them discordant.

    Agresti and Min's (2005) adjusted Wald interval: half a pair added to each of
    the four cells, so it neither collapses to a point when no pair is
    discordant nor leaves [-1, 1].
    """
    m = n + 2
    centre = (second_only - first_only) / m
    half = z_value(confidence) * math.sqrt(first_only + second_only + 1 - (second_only - first_only) ** 2 / m) / m
    return max(-1.0, centre - half), min(1.0, centre + half)


def mcnemar_exact_p(first_only: int, second_only: int) -> float:
    """Two-sided exact McNemar p-value: discordant pairs against Binomial(b + c, 1/2)."""
    n, k = first_only + second_only, min(first_only, second_only)
    if n == 0:
        return 1.0
    tail = Fraction(2 * sum(math.comb(n, i) for i in range(k + 1)), 2**n)
    return float(min(Fraction(1), tail))


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    """Counts (true class, predicted class)."""
    out = np.zeros((classes, classes), np.int64)
    np.add.at(out, (np.asarray(labels, np.int64), np.asarray(predictions, np.int64)), 1)
    return out


def accuracy_summary(
    labels: np.ndarray, float_pred: np.ndarray, quant_pred: np.ndarray, classes: int, confidence: float = CONFIDENCE
) -> dict:
    """Both accuracies, their paired gap with its interval, agreement and confusion matrices."""
    labels, float_pred, quant_pred = (np.asarray(a).ravel() for a in (labels, float_pred, quant_pred))
    f_ok, q_ok = float_pred == labels, quant_pred == labels
    both, f_only = int(np.sum(f_ok & q_ok)), int(np.sum(f_ok & ~q_ok))
    q_only, neither = int(np.sum(~f_ok & q_ok)), int(np.sum(~f_ok & ~q_ok))
    n = labels.size
    agree = int(np.sum(float_pred == quant_pred))
    lo, hi = paired_difference_interval(f_only, q_only, n, confidence)
    return {
        "samples": n,
        "float": f_ok.mean() if n else 0.0,
        "quantized": q_ok.mean() if n else 0.0,
        "gap": (q_only - f_only) / n if n else 0.0,
        "gap_interval": [lo, hi],
        "confidence": confidence,
        "interval_method": CI_METHOD,
        "pairs": {
            "both_right": both,
            "float_only_right": f_only,
            "quantized_only_right": q_only,
            "both_wrong": neither,
        },
        "mcnemar_exact_p": mcnemar_exact_p(f_only, q_only),
        "agreement": agree / n if n else 0.0,
        "agreement_interval": list(wilson_interval(agree, n, confidence)),
        "disagreeing_samples": np.flatnonzero(float_pred != quant_pred).tolist(),
        "confusion": {
            "float": confusion_matrix(labels, float_pred, classes).tolist(),
            "quantized": confusion_matrix(labels, quant_pred, classes).tolist(),
        },
    }


@dataclass
class LayerActivity:
    """Running spike statistics of one layer on both sides, over aligned steps.

    ``add`` takes binary spikes (batch, steps, *shape) of the float model and of
    the integer network for the same samples and steps, batch after batch.
    """

    neurons: int
    elements: int = 0
    float_spikes: int = 0
    int_spikes: int = 0
    coincident: int = 0
    mismatched: int = 0
    float_active: np.ndarray = field(init=False)
    int_active: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.float_active = np.zeros(self.neurons, bool)
        self.int_active = np.zeros(self.neurons, bool)

    def add(self, float_spikes: np.ndarray, int_spikes: np.ndarray) -> None:
        f = np.asarray(float_spikes).astype(bool)
        s = np.asarray(int_spikes).astype(bool)
        if f.shape != s.shape:
            raise ValueError(f"float spikes {f.shape} and integer spikes {s.shape} differ in shape")
        f, s = f.reshape(f.shape[0], f.shape[1], -1), s.reshape(s.shape[0], s.shape[1], -1)
        self.elements += f.size
        self.float_spikes += int(f.sum())
        self.int_spikes += int(s.sum())
        self.coincident += int(np.sum(f & s))
        self.mismatched += int(np.sum(f != s))
        self.float_active |= f.any(axis=(0, 1))
        self.int_active |= s.any(axis=(0, 1))

    def merge(self, other: LayerActivity) -> None:
        """Add ``other``'s counts (the same layer on other samples): exact, in any order."""
        for name in ("elements", "float_spikes", "int_spikes", "coincident", "mismatched"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.float_active |= other.float_active
        self.int_active |= other.int_active

    def summary(self) -> dict:
        """Rates, their error, cosine similarity, mismatch fraction and dead neurons."""
        rate_f = self.float_spikes / self.elements if self.elements else 0.0
        rate_i = self.int_spikes / self.elements if self.elements else 0.0
        norm = math.sqrt(self.float_spikes * self.int_spikes)
        cosine = self.coincident / norm if norm else 1.0 if self.float_spikes == self.int_spikes else 0.0
        return {
            "neurons": self.neurons,
            "rate_float": rate_f,
            "rate_int": rate_i,
            "rate_error": rate_i - rate_f,
            "cosine": cosine,
            "mismatch": self.mismatched / self.elements if self.elements else 0.0,
            "dead_float": int(np.sum(~self.float_active)),
            "dead_int": int(np.sum(~self.int_active)),
            "dead_both": int(np.sum(~self.float_active & ~self.int_active)),
        }


def layer_rows(
    activities: list[LayerActivity], descriptions: list[str], counters: dict[str, list[int]], quant_facts: list[dict]
) -> list[dict]:
    """One row a neuron layer: activity summary, simulator counters and how it was quantized."""
    keep = ("scale", "weight_exp", "vth", "weights_clipped", "biases_clipped")
    rows = []
    for k, (act, desc, facts) in enumerate(zip(activities, descriptions, quant_facts)):
        row = {"layer": k, "description": desc, **act.summary()}
        row.update({name: int(values[k]) for name, values in counters.items()})
        row.update({name: facts[name] for name in keep if name in facts})
        rows.append(row)
    return rows


def hardware_summary(mapping, cost) -> dict:
    """Cores, chips, per-core utilization, energy and latency with the arithmetic lines."""
    cores = []
    for p in mapping.layers:
        for k, core in enumerate(p.cores):
            cores.append({"layer": p.index, "core": k, "neurons_held": core.neurons, "use": mapping.utilization(core)})
    return {
        "target": mapping.target.name,
        "target_description": mapping.target.description,
        "target_file": mapping.target.path,
        "cores": mapping.cores,
        "cores_per_chip": mapping.target.cores_per_chip,
        "chips": mapping.chips,
        "chips_needed": mapping.chips_needed(),
        "layers": [
            {
                "index": p.index,
                "description": p.description,
                "neurons": p.neurons,
                "synapses": p.synapses,
                "cores": len(p.cores),
            }
            for p in mapping.layers
        ],
        "core_use": cores,
        "chip_of_layer": {p.index: sorted({c.chip for c in p.cores}) for p in mapping.layers},
        "energy_pj": cost.energy_pj,
        "dynamic_energy_pj": cost.dynamic_pj,
        "energy_basis": cost.energy_basis,
        "chip_crossings": None if cost.crossing_term is None else cost.crossing_term.count,
        "latency_ns": cost.latency_ns,
        "latency_basis": cost.latency_basis,
        "cost_lines": cost.lines(),
    }


# --------------------------------------------------------------------------- Markdown


def _pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def _points(x: float) -> str:
    return f"{100 * x:+.2f}"


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _confusion_lines(matrix: list[list[int]]) -> list[str]:
    classes = len(matrix)
    header = ["true \\ predicted", *map(str, range(classes))]
    return _table(header, [[str(t), *row] for t, row in enumerate(matrix)])


def _accuracy_lines(acc: dict) -> list[str]:
    lo, hi = acc["gap_interval"]
    pairs = acc["pairs"]
    return [
        "## Accuracy",
        "",
        *_table(
            ["", "accuracy"], [["float (torch)", _pct(acc["float"])], ["quantized (integer)", _pct(acc["quantized"])]]
        ),
        "",
        f"- gap, quantized minus float: **{_points(acc['gap'])} points**, {100 * acc['confidence']:.0f}% interval "
        f"[{_points(lo)}, {_points(hi)}] points ({acc['interval_method']})",
        f"- paired outcomes: both right {pairs['both_right']}, float only {pairs['float_only_right']}, "
        f"quantized only {pairs['quantized_only_right']}, both wrong {pairs['both_wrong']}; exact McNemar "
        f"p = {acc['mcnemar_exact_p']:.3g}",
        f"- prediction agreement: **{_pct(acc['agreement'])}** ({acc['samples'] - len(acc['disagreeing_samples'])}"
        f" of {acc['samples']}; Wilson interval {_pct(acc['agreement_interval'][0])} .. "
        f"{_pct(acc['agreement_interval'][1])})",
        f"- samples where the predictions differ: {_sample_list(acc['disagreeing_samples'])}",
        "",
        "### Confusion matrix, float",
        "",
        *_confusion_lines(acc["confusion"]["float"]),
        "",
        "### Confusion matrix, quantized",
        "",
        *_confusion_lines(acc["confusion"]["quantized"]),
        "",
    ]


def _sample_list(indices: list[int], limit: int = 20) -> str:
    """The count, then the indices (the first ``limit`` of them)."""
    if not indices:
        return "**0**"
    which = "their indices" if len(indices) <= limit else f"the first {limit} of their indices"
    return f"**{len(indices)}**; {which}: {', '.join(map(str, indices[:limit]))}"


def _layer_lines(layers: list[dict], host: dict | None = None) -> list[str]:
    header = [
        "layer",
        "kind",
        "neurons",
        "rate float",
        "rate int",
        "rate error",
        "cosine",
        "mismatch",
        "dead float / int / both",
        "u wraps",
        "v saturations",
        "weights clipped",
        "biases clipped",
    ]
    rows = [
        [
            r["layer"],
            r["description"],
            r["neurons"],
            f"{r['rate_float']:.4f}",
            f"{r['rate_int']:.4f}",
            f"{r['rate_error']:+.4f}",
            f"{r['cosine']:.4f}",
            f"{r['mismatch']:.4f}",
            f"{r['dead_float']} / {r['dead_int']} / {r['dead_both']}",
            r.get("u_wraps", "n/a"),
            r.get("v_saturations", "n/a"),
            r.get("weights_clipped", "n/a"),
            r.get("biases_clipped", "n/a"),
        ]
        for r in layers
    ]
    return [
        "## Per layer",
        "",
        "Spike rates are spikes a neuron a step over the aligned steps (the float model's T steps; on the "
        "chip, layer k's steps from k + reset offset). Cosine: similarity of the two binary spike tensors; "
        "mismatch: fraction of (sample, step, neuron) entries that differ. Dead: never spikes on any sample. "
        "Wraps and saturations are counted over the whole run.",
        "",
        *_table(header, rows),
        "",
        *([host["note"], ""] if host else []),
    ]


def _hardware_lines(hw: dict, host: dict | None = None) -> list[str]:
    rows = [[p["index"], p["description"], p["neurons"], p["synapses"], p["cores"]] for p in hw["layers"]]
    need = ", ".join(f"{v} by {k}" for k, v in hw["chips_needed"].items())
    return [
        f"## On {hw['target']}",
        "",
        f"Target: {hw['target_description']} (`{hw['target_file']}`).",
        "",
        f"- cores used: **{hw['cores']}** (of {hw['cores_per_chip']} a chip); chips: **{hw['chips']}** ({need})",
        f"- energy per inference: **{si_format(hw['energy_pj'], 'J', 1e-12)}**{_provenance(hw, 'energy')}; latency per "
        f"inference: **{si_format(hw['latency_ns'], 's', 1e-9)}**{_provenance(hw, 'latency')}"
        + (
            f" (chip only: layer 0's {host['host_multiply_adds']:,} host multiply-adds a sample are not in them)"
            if host
            else ""
        ),
        "",
        *_table(["layer", "kind", "neurons", "synapses", "cores"], rows),
        "",
        "How the cost is computed (counts measured in the simulator on the compared samples):",
        "",
        "```",
        *hw["cost_lines"],
        "```",
        "",
    ]


def _provenance(hw: dict, name: str) -> str:
    """' (what the figures are)' beside an energy or latency that is known."""
    basis = hw.get(f"{name}_basis")
    return f" ({basis})" if basis and hw.get(f"{name}_pj" if name == "energy" else f"{name}_ns") is not None else ""


def _reference_lines(ref: dict | None) -> list[str]:
    if not ref:
        return []
    head = [f"## Cost with {ref['target']}'s figures", "", ref["note"] + ".", ""]
    if "error" in ref:
        return head + [f"Not placeable on {ref['target']}: {ref['error']}", ""]
    return head + [
        f"- cores: {ref['cores']}; chips: {ref['chips']}; energy per inference "
        f"{si_format(ref['energy_pj'], 'J', 1e-12)}{_provenance(ref, 'energy')}; latency per inference "
        f"{si_format(ref['latency_ns'], 's', 1e-9)}{_provenance(ref, 'latency')}",
        "",
        "```",
        *ref["cost_lines"],
        "```",
        "",
    ]


def _run_lines(report: dict) -> list[str]:
    run, rep = report["run"], report["reproduce"]
    return [
        "## Run conventions",
        "",
        f"- {run['steps']} float steps a sample; the chip runs {run['run_steps']} steps (one step of latency a "
        f"synaptic layer)",
        f"- reset interval {run['reset_interval']}, reset offset {run['reset_offset']}: neuron layer k resets at "
        f"steps t with t mod {run['reset_interval']} = (k + {run['reset_offset']}) mod {run['reset_interval']}",
        f"- output window: steps {run['output_window'][0]}..{run['output_window'][1] - 1}",
        f"- conventions: {run.get('conventions', 'lava')} (when resets fall and the v a trace shows on a spike "
        "step: lava as Lava's fixed_pt models, loihi2 as Loihi 2 silicon)",
        f"- input: {run['input']}",
        "",
        "## Reproduce the quantized accuracy",
        "",
        "```",
        rep["command"],
        "```",
        "",
        f"{rep['decoding']}. Labels: `{rep['files']['labels']}`. The same decoding in Python:",
        "",
        "```python",
        *rep["python"],
        "```",
        "",
    ]


def _fault_lines(found: dict | None) -> list[str]:
    """Numerical faults: clipping and wide thresholds (quantizer), wraps and saturations (simulator)."""
    if found is None:
        return []
    rows = [f"- {line}" for line in faults.lines(*faults.from_summary(found), nonzero=True)]
    head = f"{found['total']} in all (weights and biases clipped, thresholds beyond 17 bits, u wraps, v saturations)"
    return ["## Numerical faults", "", head + (":" if rows else "."), "", *rows] + ([""] if rows else [])


def _lava_lines(lava: dict | None) -> list[str]:
    if not lava:
        return []
    return [
        "## Lava cross-check",
        "",
        f"- {lava['samples']} samples run in Lava ({lava['backend']}): spikes identical to the simulator's in "
        f"{_pct(lava['spike_match'], 4)} of entries, predictions equal on {lava['prediction_match']} of "
        f"{lava['samples']}; Lava accuracy on them {_pct(lava['accuracy'])} (simulator {_pct(lava['sim_accuracy'])})",
        "",
    ]


def _sides(report: dict) -> str:
    """Where the quantized side ran, and on how many samples."""
    n, lava = report["accuracy"]["samples"], report.get("lava")
    text = f"quantized side run in the simulator on all {n} samples"
    return text + (f", and in Lava on {lava['samples']} of them (see the Lava cross-check)" if lava else "")


def render_markdown(report: dict) -> str:
    """The report as Markdown, every figure from ``report``."""
    src = report["source"]
    lines = [
        f"# neurodeploy compare: {Path(src['model']).name} on {report['hardware']['target']}",
        "",
        f"Model `{src['model']}` (rule {src.get('rule')}, encoding {src.get('encoding')}), "
        f"{report['accuracy']['samples']} samples of the {src['dataset']} {src['split']} split "
        f"(encoding seed {src['seed']}); {_sides(report)}.",
        "",
        *_accuracy_lines(report["accuracy"]),
        *_layer_lines(report["layers"], report.get("host_layer")),
        *_fault_lines(report.get("numerical_faults")),
        *_hardware_lines(report["hardware"], report.get("host_layer")),
        *_reference_lines(report.get("hardware_reference")),
        *_lava_lines(report.get("lava")),
        *_run_lines(report),
    ]
    if report.get("plots"):
        lines += ["## Plots", ""] + [f"![{name}]({path})" for name, path in report["plots"].items()] + [""]
    return "\n".join(lines)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_report(report: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.json`` and ``report.md`` into ``out_dir``, each atomically."""
    out_dir = Path(out_dir)
    paths = {name: out_dir / file for name, file in REPORT_FILES.items()}
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(_jsonable(report), indent=2) + "\n")
    with atomic_path(paths["markdown"]) as tmp:
        tmp.write_text(render_markdown(report))
    return paths

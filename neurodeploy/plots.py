"""The report's figures as PNG files (matplotlib, Agg backend): one function a figure.

Each function takes plain data (the report dict's sections, numpy arrays) and a
path, and writes through :func:`neurodeploy.atomic.atomic_path`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neurodeploy.atomic import atomic_path

FLOAT_COLOR, INT_COLOR, MISMATCH_COLOR = "#4C72B0", "#DD8452", "#C44E52"
DPI = 110
PLOT_FILES = {
    "accuracy": "accuracy.png",
    "layer_rates": "layer_rates.png",
    "weights": "weights.png",
    "raster": "raster.png",
    "core_utilization": "core_utilization.png",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)


def accuracy_range(values: list[tuple[float, float, float]], margin: float = 0.15) -> tuple[float, float]:
    """A y range in percent around (value, low, high) triples: zoomed to them, within [0, 100]."""
    lo, hi = min(v[1] for v in values), max(v[2] for v in values)
    pad = max(margin * (hi - lo), 0.5)
    return max(0.0, lo - pad), min(100.0, hi + pad)


def _spread(value: float, lo: float, hi: float) -> list[list[float]]:
    """Error bar lengths below and above ``value`` (never negative from rounding)."""
    return [[max(0.0, value - lo)], [max(0.0, hi - value)]]


def accuracy_bars(accuracy: dict, path: Path) -> None:
    """Left: float and quantized accuracy and the agreement with their intervals, on an axis zoomed to
    them (its range printed on the axis). Right: the paired gap in points, on its own axis through 0."""
    plt = _pyplot()
    from neurodeploy.report import wilson_interval

    n = accuracy["samples"]
    names = ["float", "quantized", "agreement"]
    points = []
    for name in names:
        value = accuracy[name]
        lo, hi = wilson_interval(round(value * n), n, accuracy["confidence"])
        points.append((100 * value, 100 * lo, 100 * hi))
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.5, 3.6), gridspec_kw={"width_ratios": [3, 1.4]})
    for k, ((value, lo, hi), color) in enumerate(zip(points, [FLOAT_COLOR, INT_COLOR, "#55A868"])):
        left.errorbar(k, value, yerr=_spread(value, lo, hi), fmt="o", color=color, capsize=5, markersize=7)
        left.annotate(f"{value:.2f}%", (k, value), xytext=(9, 0), textcoords="offset points", va="center", fontsize=9)
    bottom, top = accuracy_range(points)
    left.set_ylim(bottom, top)
    left.set_xlim(-0.5, len(names) - 0.3)
    left.set_xticks(range(len(names)), names)
    left.set_ylabel(f"% of {n} test samples\n(axis zoomed: {bottom:.1f} to {top:.1f}, not 0 to 100)", fontsize=8)
    left.set_title(f"accuracy and agreement, {100 * accuracy['confidence']:.0f}% Wilson intervals", fontsize=9)
    gap, (glo, ghi) = 100 * accuracy["gap"], (100 * v for v in accuracy["gap_interval"])
    right.errorbar(0, gap, yerr=_spread(gap, glo, ghi), fmt="s", color=INT_COLOR, capsize=5, markersize=7)
    right.axhline(0, color="grey", linewidth=0.8, linestyle="--")
    right.annotate(f"{gap:+.2f}", (0, gap), xytext=(9, 0), textcoords="offset points", va="center", fontsize=9)
    span = max(abs(glo), abs(ghi), 0.5) * 1.2
    right.set_ylim(-span, span)
    right.set_xlim(-0.6, 0.9)
    right.set_xticks([0], ["quantized\nminus float"])
    right.set_ylabel("points (percentage points)", fontsize=8)
    right.set_title(f"gap, {100 * accuracy['confidence']:.0f}% paired\ninterval [{glo:+.2f}, {ghi:+.2f}]", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def layer_rates(layers: list[dict], path: Path) -> None:
    """Spike rate a neuron a step per layer, float against integer, with the mismatch fraction."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.5, 1.4 * len(layers) + 2), 3.6))
    idx = np.arange(len(layers))
    width = 0.38
    ax.bar(idx - width / 2, [r["rate_float"] for r in layers], width, label="float", color=FLOAT_COLOR)
    ax.bar(idx + width / 2, [r["rate_int"] for r in layers], width, label="integer", color=INT_COLOR)
    for k, r in enumerate(layers):
        top = max(r["rate_float"], r["rate_int"])
        ax.annotate(
            f"mismatch {100 * r['mismatch']:.2f}%",
            (k, top),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 3),
            textcoords="offset points",
        )
    ax.set_xticks(idx, [f"{r['layer']}: {r['description']}" for r in layers], fontsize=8)
    ax.set_ylabel("spikes / neuron / step")
    ax.set_ylim(0, 1.2 * max([max(r["rate_float"], r["rate_int"]) for r in layers] + [0.01]))
    ax.legend(frameon=False)
    ax.set_title("Spike rate per layer (aligned steps)", fontsize=10)
    _save(fig, path)


def weight_histograms(grids: list[dict], path: Path, zoom: int = 4) -> None:
    """Per synaptic layer: float weights x scale (mantissa units) against the integer mantissas.

    Left, the whole range: both distributions. Right, levels -``zoom``..``zoom``:
    the float values finely binned against the integer grid they round to.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(
        len(grids), 2, figsize=(10, 2.8 * len(grids)), squeeze=False, gridspec_kw={"width_ratios": [3, 2]}
    )
    for (whole, near), grid in zip(axes, grids):
        scaled, mant = grid["scaled"], grid["mantissas"]
        lo, hi = min(scaled.min(), mant.min()), max(scaled.max(), mant.max())
        edges = np.linspace(lo - 0.5, hi + 0.5, 61)
        whole.hist(scaled, bins=edges, histtype="stepfilled", alpha=0.4, color=FLOAT_COLOR, label="float x scale")
        whole.hist(mant, bins=edges, histtype="step", linewidth=1.4, color=INT_COLOR, label="integer mantissa")
        whole.set_yscale("log")
        levels = np.unique(mant)
        rms = float(np.sqrt(np.mean((scaled - mant) ** 2)))
        whole.set_title(
            f"layer {grid['layer']}: {grid['description']}: {levels.size} levels used, rms rounding error {rms:.3f}",
            fontsize=9,
        )
        whole.legend(fontsize=7, frameon=False)
        whole.set_xlabel("weight in mantissa units (float weight x scale / 2**(6 + weight exp))", fontsize=8)
        _near_zero(near, scaled, levels, int(grid.get("step", 1)), zoom)
    fig.tight_layout()
    _save(fig, path)


def _near_zero(ax, scaled: np.ndarray, levels: np.ndarray, step: int, zoom: int) -> None:
    """The float weights nearest zero, finely binned, against the ``2 zoom + 1`` grid levels around 0."""
    reach = (zoom + 0.5) * step
    inside = scaled[np.abs(scaled) <= reach]
    ax.hist(
        inside,
        bins=np.linspace(-reach, reach, 10 * (2 * zoom + 1) + 1),
        color=FLOAT_COLOR,
        alpha=0.7,
        label="float weight x scale",
    )
    for k in range(-zoom, zoom + 1):
        used = k * step in levels
        ax.axvline(
            k * step,
            color=INT_COLOR,
            linewidth=1.2 if used else 0.8,
            linestyle="-" if used else ":",
            alpha=0.95 if used else 0.6,
        )
    ax.plot([], [], color=INT_COLOR, linestyle="-", label="grid level some weight rounds to")
    ax.plot([], [], color=INT_COLOR, linestyle=":", label="grid level no weight uses")
    ax.set_xlim(-reach, reach)
    ax.set_title(f"near zero: the {2 * zoom + 1} grid levels around 0 (step {step})", fontsize=9)
    ax.set_xlabel("weight in mantissa units, as on the left; a float value rounds to the nearest line", fontsize=8)
    ax.set_ylabel("weights a bin", fontsize=8)
    ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=1)


def raster(
    float_spikes: list[np.ndarray],
    int_spikes: list[np.ndarray],
    labels: list[str],
    path: Path,
    *,
    sample: dict | None = None,
) -> None:
    """One sample's spikes, layer by layer, float and integer side by side; mismatches marked.

    ``sample``: its ``index``, ``label`` and the ``float`` and ``quantized`` predictions, for the title.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(len(labels), 2, figsize=(9, 1.4 + 1.9 * len(labels)), squeeze=False, sharex=True)
    for row, (f, s, label) in enumerate(zip(float_spikes, int_spikes, labels)):
        f, s = f.reshape(f.shape[0], -1).astype(bool), s.reshape(s.shape[0], -1).astype(bool)
        for col, (mine, other, name, color) in enumerate(((f, s, "float", FLOAT_COLOR), (s, f, "integer", INT_COLOR))):
            ax = axes[row, col]
            t, n = np.nonzero(mine & other)
            ax.scatter(t, n, s=18, marker="|", color=color)
            t, n = np.nonzero(mine & ~other)
            ax.scatter(t, n, s=22, marker="x", color=MISMATCH_COLOR)
            ax.set_ylim(-0.5, f.shape[1] - 0.5)
            ax.set_xlim(-0.5, f.shape[0] - 0.5)
            ax.set_title(f"{name}: layer {label} ({int(mine.sum())} spikes)", fontsize=9)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if col == 0:
                ax.set_ylabel("neuron")
    for ax in axes[-1]:
        ax.set_xlabel("step (aligned: the float model's step)")
    handles = [
        plt.Line2D([], [], marker="|", linestyle="", color="grey", label="spike on both sides"),
        plt.Line2D([], [], marker="x", linestyle="", color=MISMATCH_COLOR, label="spike on this side only"),
    ]
    title = "One test sample, spikes per layer"
    if sample is not None:
        title = (
            f"Test sample {sample['index']}, label {sample['label']}: float predicts {sample['float']}, "
            f"integer predicts {sample['quantized']}; spikes per layer"
        )
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False, bbox_to_anchor=(0.5, -0.03))
    _save(fig, path)


def core_utilization(core_use: list[dict], path: Path) -> None:
    """Per core, the fraction of each per-core limit it uses (limits the target does not give are named)."""
    plt = _pyplot()
    kinds = [
        k
        for k in ("neurons", "input_axons", "output_axons", "synapse_memory")
        if any(c["use"][k] is not None for c in core_use)
    ]
    unknown = [k.replace("_", " ") for k in ("input_axons", "output_axons", "synapse_memory") if k not in kinds]
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(core_use) * len(kinds) + 2.5), 3.8))
    idx = np.arange(len(core_use))
    width = 0.8 / max(len(kinds), 1)
    for j, kind in enumerate(kinds):
        values = [100 * (c["use"][kind] or 0.0) for c in core_use]
        bars = ax.bar(idx + (j - (len(kinds) - 1) / 2) * width, values, width, label=kind.replace("_", " "))
        if len(core_use) <= 16:
            for bar, value in zip(bars, values):
                ax.annotate(
                    f"{value:.1f}%",
                    (bar.get_x() + bar.get_width() / 2, value),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    xytext=(0, 2),
                    textcoords="offset points",
                )
    ax.set_xticks(
        idx,
        [f"L{c['layer']}.{c['core']}\n{c['neurons_held']} n" for c in core_use],
        fontsize=8,
        rotation=90 if len(core_use) > 12 else 0,
    )
    ax.set_ylabel("% of the core's limit")
    top = max([100 * (c["use"][k] or 0.0) for c in core_use for k in kinds] + [1.0])
    ax.set_ylim(0, min(110, 1.25 * top) if top < 50 else 110)
    ax.set_xlabel("core (layer.core, neurons held)")
    ax.legend(fontsize=8, frameon=False)
    note = f"; target gives no limit for {', '.join(unknown)}" if unknown else ""
    ax.set_title(f"Core utilization, {len(core_use)} cores{note}", fontsize=9)
    _save(fig, path)


def write_plots(report: dict, raster_spikes, grids: list[dict], out_dir: str | Path) -> dict[str, str]:
    """Write every figure into ``out_dir/plots``; return name -> path relative to ``out_dir``."""
    out_dir = Path(out_dir)
    paths = {k: out_dir / "plots" / v for k, v in PLOT_FILES.items()}
    accuracy_bars(report["accuracy"], paths["accuracy"])
    layer_rates(report["layers"], paths["layer_rates"])
    if grids:
        weight_histograms(grids, paths["weights"])
    else:
        del paths["weights"]
    labels = [f"{r['layer']}: {r['description']}" for r in report["layers"]]
    float_spikes, int_spikes = raster_spikes
    raster(float_spikes, int_spikes, labels, paths["raster"], sample=report.get("raster_sample"))
    core_utilization(report["hardware"]["core_use"], paths["core_utilization"])
    return {k: str(p.relative_to(out_dir)) for k, p in paths.items()}

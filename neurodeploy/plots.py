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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)


def accuracy_bars(accuracy: dict, path: Path) -> None:
    """Float and quantized accuracy, the gap's interval and the agreement."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    names = ["float", "quantized", "agreement"]
    values = [100 * accuracy["float"], 100 * accuracy["quantized"], 100 * accuracy["agreement"]]
    bars = ax.bar(names, values, color=[FLOAT_COLOR, INT_COLOR, "#55A868"])
    for bar, value in zip(bars, values):
        ax.annotate(f"{value:.2f}%", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom",
                    xytext=(0, 2), textcoords="offset points")
    lo, hi = (100 * v for v in accuracy["gap_interval"])
    ax.set_title(f"gap {100 * accuracy['gap']:+.2f} points, {100 * accuracy['confidence']:.0f}% interval "
                 f"[{lo:+.2f}, {hi:+.2f}]", fontsize=10)
    ax.set_ylabel("% of test samples")
    ax.set_ylim(0, 110)
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
        ax.annotate(f"mismatch {100 * r['mismatch']:.2f}%", (k, top), ha="center", va="bottom", fontsize=8,
                    xytext=(0, 3), textcoords="offset points")
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
    fig, axes = plt.subplots(len(grids), 2, figsize=(10, 2.8 * len(grids)), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 2]})
    for (whole, near), grid in zip(axes, grids):
        scaled, mant = grid["scaled"], grid["mantissas"]
        lo, hi = min(scaled.min(), mant.min()), max(scaled.max(), mant.max())
        edges = np.linspace(lo - 0.5, hi + 0.5, 61)
        whole.hist(scaled, bins=edges, histtype="stepfilled", alpha=0.4, color=FLOAT_COLOR, label="float x scale")
        whole.hist(mant, bins=edges, histtype="step", linewidth=1.4, color=INT_COLOR, label="integer mantissa")
        whole.set_yscale("log")
        levels = np.unique(mant)
        rms = float(np.sqrt(np.mean((scaled - mant) ** 2)))
        whole.set_title(f"layer {grid['layer']}: {grid['description']}: {levels.size} levels used, "
                        f"rms rounding error {rms:.3f}", fontsize=9)
        whole.legend(fontsize=7, frameon=False)
        whole.set_xlabel("weight in mantissa units (float weight x scale / 2**(6 + weight exp))", fontsize=8)
        inside = scaled[np.abs(scaled) <= zoom + 0.5]
        near.hist(inside, bins=np.linspace(-zoom - 0.5, zoom + 0.5, 10 * (2 * zoom + 1) + 1),
                  color=FLOAT_COLOR, alpha=0.7)
        for level in range(-zoom, zoom + 1):
            near.axvline(level, color=INT_COLOR, linewidth=1.0, alpha=0.9 if level in levels else 0.25)
        near.set_xlim(-zoom - 0.5, zoom + 0.5)
        near.set_title("near zero: float values and the integer grid", fontsize=9)
        near.set_xlabel("mantissa units", fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def raster(float_spikes: list[np.ndarray], int_spikes: list[np.ndarray], labels: list[str], path: Path) -> None:
    """One sample's spikes, layer by layer, float and integer side by side; mismatches marked."""
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
    handles = [plt.Line2D([], [], marker="|", linestyle="", color="grey", label="spike on both sides"),
               plt.Line2D([], [], marker="x", linestyle="", color=MISMATCH_COLOR, label="spike on this side only")]
    fig.suptitle("One test sample, spikes per layer", fontsize=10)
    fig.tight_layout()
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False, bbox_to_anchor=(0.5, -0.03))
    _save(fig, path)


def core_utilization(core_use: list[dict], path: Path) -> None:
    """Per core, the fraction of each per-core limit it uses (limits the target does not give are named)."""
    plt = _pyplot()
    kinds = [k for k in ("neurons", "input_axons", "output_axons", "synapse_memory")
             if any(c["use"][k] is not None for c in core_use)]
    unknown = [k.replace("_", " ") for k in ("input_axons", "output_axons", "synapse_memory") if k not in kinds]
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(core_use) * len(kinds) + 2.5), 3.8))
    idx = np.arange(len(core_use))
    width = 0.8 / max(len(kinds), 1)
    for j, kind in enumerate(kinds):
        values = [100 * (c["use"][kind] or 0.0) for c in core_use]
        bars = ax.bar(idx + (j - (len(kinds) - 1) / 2) * width, values, width, label=kind.replace("_", " "))
        if len(core_use) <= 16:
            for bar, value in zip(bars, values):
                ax.annotate(f"{value:.1f}%", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom",
                            fontsize=7, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(idx, [f"L{c['layer']}.{c['core']}\n{c['neurons_held']} n" for c in core_use], fontsize=8,
                  rotation=90 if len(core_use) > 12 else 0)
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
    names = {"accuracy": "accuracy.png", "layer_rates": "layer_rates.png", "weights": "weights.png",
             "raster": "raster.png", "core_utilization": "core_utilization.png"}
    paths = {k: out_dir / "plots" / v for k, v in names.items()}
    accuracy_bars(report["accuracy"], paths["accuracy"])
    layer_rates(report["layers"], paths["layer_rates"])
    if grids:
        weight_histograms(grids, paths["weights"])
    else:
        del paths["weights"]
    labels = [f"{r['layer']}: {r['description']}" for r in report["layers"]]
    raster(*raster_spikes, labels, paths["raster"])
    core_utilization(report["hardware"]["core_use"], paths["core_utilization"])
    return {k: str(p.relative_to(out_dir)) for k, p in paths.items()}

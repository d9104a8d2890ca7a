"""Float model against its quantized netlist on the same encoded samples, and the report files.

The float side (torch) and the integer side (the simulator, optionally Lava on
a few samples) see inputs from one encoding draw a batch: batch ``b`` of
``batch_size`` samples is encoded with seed ``seed + b``. The integer side's
inputs are kept exactly as ``neurodeploy run`` takes them (spikes padded to the
run's steps, or input-layer biases) and written to ``inputs.npy`` beside the
netx file, so the quantized accuracy can be reproduced from the files alone.

Timing: neuron layer k's float step 0 is the chip's step ``k + reset_offset``;
predictions count the output layer's spikes over the netlist's output window, or,
for a netlist whose ``meta["readout"]`` is ``membrane``, take the argmax of the
output layer's v at the window's last step (its neurons never fire).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neurodeploy import budget, faults
from neurodeploy import fixed_point as fx
from neurodeploy.atomic import atomic_path, check_writable, refuse_existing, staged_outputs
from neurodeploy.cost import estimate_cost, measured_activity
from neurodeploy.counters import COUNTERS, FAULTS
from neurodeploy.errors import NeurodeployError
from neurodeploy.mapping import map_network
from neurodeploy.netlist import Conv, Dense, Netlist, describe_layer
from neurodeploy.quantize import Quantized, host_layer, layer_labels, run_steps
from neurodeploy.report import (
    DECODING,
    DECODING_MEMBRANE,
    LayerActivity,
    accuracy_summary,
    hardware_summary,
    layer_rows,
)
from neurodeploy.sim import Recording
from neurodeploy.simulators import Backend, find_backend, simulator

if TYPE_CHECKING:
    from neurodeploy.datasets import PackedSpikes
    from neurodeploy.export import FloatModel
    from neurodeploy.targets import Target

RASTER_SAMPLE = 0
RUN_FILES = {"netx": "{stem}.net", "inputs": "inputs.npy", "labels": "labels.npy"}


class CompareError(NeurodeployError):
    """A comparison that cannot run as asked (samples, backend, output folder)."""


@dataclass
class Comparison:
    """What one comparison measured, as plain arrays (the report is built from these)."""

    labels: np.ndarray
    float_pred: np.ndarray
    quant_pred: np.ndarray
    activities: list[LayerActivity]
    counters: dict[str, list[int]]
    recording: Recording  # counters summed over all samples (no traces), for the cost
    inputs: np.ndarray  # the integer side's inputs, as `neurodeploy run` takes them
    input_kind: str  # "spikes" or "bias"
    raster: tuple[list[np.ndarray], list[np.ndarray]] | None  # one sample's aligned spikes: float, integer
    lava: dict | None = field(default=None)
    conventions: str = "lava"  # the simulator's run conventions (fixed_point.CONVENTIONS)


def integer_inputs(q: Quantized, encoded: np.ndarray) -> tuple[np.ndarray, str]:
    """(inputs, kind): input biases (B, *shape) for the direct encoding, else spikes (B, run steps, *netlist
    input shape), zero after the float model's steps."""
    if q.input_transform is not None:
        return q.input_bias(encoded), "bias"
    steps, shape = run_steps(q), tuple(q.netlist.input_shape or ())
    padded = np.zeros((encoded.shape[0], steps) + shape, dtype=bool)
    padded[:, : encoded.shape[1]] = encoded.reshape(encoded.shape[:2] + shape)
    return padded, "spikes"


def simulate_inputs(
    net: Netlist,
    steps: int,
    inputs: np.ndarray,
    kind: str,
    *,
    record=("s",),
    conventions: str = "lava",
    device: str | None = None,
) -> Recording:
    """Run ``net`` on integer inputs of ``kind`` exactly as ``neurodeploy run`` does (torch's simulator
    on ``device`` if given)."""
    given = {"bias": inputs} if kind == "bias" else {"spikes": inputs}
    return simulator(device)(net, steps, record=record, conventions=conventions, **given)


def aligned_spikes(spikes: dict[int, np.ndarray], net: Netlist, steps: int) -> list[np.ndarray]:
    """Per neuron layer k, its spikes over the float model's ``steps`` steps from ``k + reset_offset``."""
    out = []
    for k, i in enumerate(net.neuron_layers):
        start = k + net.reset_offset
        out.append(spikes[i][:, start : start + steps])
    return out


def decode_predictions(output: np.ndarray, window: tuple[int, int], how: str = "spikes") -> np.ndarray:
    """Class per sample of the output layer's (batch, steps, *shape) spikes or v, ties to the lowest index.

    ``spikes``: argmax of the spike counts over ``window``; ``membrane``: argmax of v
    at the window's last step.
    """
    if how == "membrane":
        return output[:, window[1] - 1].reshape(output.shape[0], -1).argmax(axis=1)
    counts = output[:, window[0] : window[1]].reshape(output.shape[0], window[1] - window[0], -1)
    return counts.sum(axis=1).argmax(axis=1)


def quantized_predictions(rec: Recording, net: Netlist) -> np.ndarray:
    """Class per sample of a simulator run over the netlist's whole window, decoded as the netlist says."""
    if net.readout == "membrane":
        if rec.output_v is None:
            raise CompareError("a membrane readout needs the output layer's v, which this run did not record")
        return rec.output_v.reshape(rec.batch, -1).argmax(axis=1)
    return decode_predictions(rec.s[net.neuron_layers[-1]], net.window)


class Tally:
    """Batch after batch, what both sides did: predictions, per-layer activity, counters, inputs.

    Takes plain arrays: the float side's output spikes (B, T, classes) and layer
    spikes (B, T, ...), and the simulator's recording of the same samples. Tallies of
    different batches merge exactly (counts add, predictions and inputs go in batch
    order), so processes can share a comparison's batches.
    """

    def __init__(self, net: Netlist, float_steps: int, run_steps: int):
        self.net, self.float_steps = net, float_steps
        self.activities = [LayerActivity(int(np.prod(net.layers[i].shape))) for i in net.neuron_layers]
        self.total = Recording(steps=run_steps, batch=0)
        self.batches: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # b -> float, quantized pred, inputs
        self.raster: tuple[list[np.ndarray], list[np.ndarray]] | None = None  # from batch 0

    def add(
        self,
        float_out: np.ndarray,
        float_layers: list[np.ndarray],
        rec: Recording,
        inputs: np.ndarray,
        batch: int | None = None,
    ) -> None:
        """Tally one batch, the ``batch``-th of the comparison (default: the next one)."""
        b = len(self.batches) if batch is None else batch
        layers_i = aligned_spikes(rec.s, self.net, self.float_steps)
        for act, f, s in zip(self.activities, float_layers, layers_i):
            act.add(f, s)
        self._count(rec)
        float_pred = decode_predictions(float_out, (0, float_out.shape[1]), self.net.readout)
        self.batches[b] = (float_pred, quantized_predictions(rec, self.net), inputs)
        if b == 0:
            self.raster = ([f[RASTER_SAMPLE] for f in float_layers], [s[RASTER_SAMPLE] for s in layers_i])

    def merge(self, other: Tally) -> None:
        """Take in ``other``'s batches (others than this tally's, of the same comparison)."""
        if self.batches.keys() & other.batches.keys():
            raise ValueError(f"batches {sorted(self.batches.keys() & other.batches.keys())} tallied twice")
        for mine, theirs in zip(self.activities, other.activities):
            mine.merge(theirs)
        self._count(other.total)
        self.batches.update(other.batches)
        if self.raster is None:
            self.raster = other.raster

    def _count(self, rec: Recording) -> None:
        self.total.batch += rec.batch
        for name in COUNTERS:
            mine = getattr(self.total, name)
            for i, value in getattr(rec, name).items():
                mine[i] = mine.get(i, 0) + int(value)

    def comparison(self, labels: np.ndarray, input_kind: str) -> Comparison:
        counters = {name: [int(getattr(self.total, name).get(i, 0)) for i in self.net.neuron_layers] for name in FAULTS}
        float_pred, quant_pred, inputs = (
            np.concatenate(part) for part in zip(*map(self.batches.get, sorted(self.batches)))
        )
        return Comparison(
            np.asarray(labels),
            float_pred,
            quant_pred,
            self.activities,
            counters,
            self.total,
            inputs,
            input_kind,
            self.raster,
        )


@dataclass
class Shard:
    """One process's part of a comparison: both models, its samples, and the batches they form."""

    fm: FloatModel
    q: Quantized
    x: np.ndarray | PackedSpikes
    spans: list[tuple[int, int, int]]  # (batch index in the comparison, first sample in x, end)
    seed: int
    conventions: str
    device: str | None
    threads: int | None = None  # torch's CPU threads, when this process is one of several on the machine


def evaluate(shard: Shard) -> Iterator[tuple[int, Tally]]:
    """(batch index, the tally of that batch alone) for each of the shard's batches; batch ``b``'s
    samples are encoded with seed ``seed + b``, wherever it runs."""
    from neurodeploy.export import encoded_inputs, float_rates

    if shard.threads:
        import torch

        torch.set_num_threads(shard.threads)
    q, net, steps = shard.q, shard.q.netlist, run_steps(shard.q)
    for b, start, stop in shard.spans:
        encoded, enc = encoded_inputs(shard.fm, shard.x[start:stop], shard.seed + b)
        out_f, layers_f = float_rates(shard.fm, enc)
        ints, kind = integer_inputs(q, encoded)
        rec = simulate_inputs(net, steps, ints, kind, conventions=shard.conventions, device=shard.device)
        tally = Tally(net, q.steps, steps)
        tally.add(out_f, layers_f, rec, ints, batch=b)
        yield b, tally


def compare_model(
    fm: FloatModel,
    q: Quantized,
    x: np.ndarray | PackedSpikes,
    y: np.ndarray,
    *,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = True,
    conventions: str = "lava",
    device: str | None = None,
    workers: int = 1,
) -> Comparison | None:
    """Run the float model and the quantized netlist on ``x`` (same encoding draws) and measure both;
    the simulator under run ``conventions``, torch's on ``device`` if given (else numpy's).

    The batches are shared by ``workers`` local processes, or under torchrun by its
    processes (``workers`` must then be 1), whose rank 0 gets the comparison and the
    others None. Either way the comparison equals a single process's.
    """
    from tqdm import tqdm

    spans = [(b, start, min(start + batch_size, len(y))) for b, start in enumerate(range(0, len(y), batch_size))]
    shard = Shard(fm, q, x, spans, seed, conventions, device)
    ranks = int(os.environ.get("WORLD_SIZE", "1"))
    if ranks > 1 and workers > 1:
        raise CompareError(f"--workers {workers} under torchrun: its {ranks} processes share the batches already")
    shown = progress and os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0's bar alone
    with tqdm(total=len(spans), desc="compare", unit="batch", disable=None if shown else True, file=sys.stderr) as bar:
        if ranks > 1:
            tally = _tally_ranks(shard, bar)
        elif workers > 1 and len(spans) > 1:
            tally = _tally_pool(shard, min(workers, len(spans)), bar)
        else:
            tally = _tally(shard, bar)
    if tally is None:
        return None
    comparison = tally.comparison(y, "bias" if q.input_transform is not None else "spikes")
    comparison.conventions = conventions
    return comparison


def _tally(shard: Shard, bar) -> Tally:
    """The shard's batches, evaluated in this process."""
    tally = Tally(shard.q.netlist, shard.q.steps, run_steps(shard.q))
    for _, part in evaluate(shard):
        tally.merge(part)
        bar.update()
    return tally


def _tally_pool(shard: Shard, workers: int, bar) -> Tally:
    """The shard's batches shared by ``workers`` local processes (batch b to worker b % workers)."""
    from neurodeploy.pool import run_pool
    from neurodeploy.train import default_threads

    budget.require(shard.x.nbytes, f"the samples of {len(shard.spans)} batches, copied for {workers} workers")
    threads, jobs = max(1, default_threads() // workers), []
    for k in range(workers):  # each worker gets its batches' samples only, renumbered from 0
        mine = shard.spans[k::workers]
        rows = np.concatenate([np.arange(start, stop) for _, start, stop in mine])
        ends = np.cumsum([stop - start for _, start, stop in mine])
        spans = [(b, int(end - (stop - start)), int(end)) for (b, start, stop), end in zip(mine, ends)]
        jobs.append(dataclasses.replace(shard, x=shard.x.take(rows, axis=0), spans=spans, threads=threads))
    tally = Tally(shard.q.netlist, shard.q.steps, run_steps(shard.q))

    def take(_: int, part: Tally) -> None:
        tally.merge(part)
        bar.update()

    run_pool(evaluate, jobs, take)
    return tally


def _tally_ranks(shard: Shard, bar) -> Tally | None:
    """The shard's batches shared by torchrun's processes; the merged tally on rank 0, None elsewhere."""
    import torch

    from neurodeploy.distributed import start
    from neurodeploy.train import default_threads

    cuda = shard.device is not None and shard.device.startswith("cuda")
    world = start(torch.device("cuda" if cuda else "cpu"))
    try:
        q = world.broadcast(shard.q)  # every process runs rank 0's netlist
        mine = dataclasses.replace(
            shard,
            q=q,
            spans=world.shard(shard.spans),
            device=str(world.device) if cuda else shard.device,
            threads=max(1, default_threads() // world.local_size),
        )
        parts = world.gather(_tally(mine, bar))
    finally:
        world.close()
    if parts is None:
        return None
    tally, *rest = parts
    for part in rest:
        tally.merge(part)
    return tally


def reference_check(q: Quantized, comparison: Comparison, samples: int, reference: Backend) -> dict:
    """Run the first ``samples`` samples on the ``reference`` backend (Lava); compare its spikes and
    predictions with the simulator's."""
    net, steps = q.netlist, run_steps(q)
    n = min(samples, len(comparison.labels))
    inputs = comparison.inputs[:n]
    kwargs: dict[str, Any] = {"bias": inputs} if comparison.input_kind == "bias" else {"spikes": inputs}
    how = net.readout
    lava = reference.run(net, steps, record=("s", "v") if how == "membrane" else ("s",), **kwargs)
    sim = simulate_inputs(net, steps, inputs, comparison.input_kind)
    equal = sum(int(np.sum(lava.s[i] == sim.s[i])) for i in net.neuron_layers)
    size = sum(sim.s[i].size for i in net.neuron_layers)
    last = net.neuron_layers[-1]
    pred = decode_predictions((lava.v if how == "membrane" else lava.s)[last], net.window, how)
    labels = comparison.labels[:n]
    return {
        "backend": reference.label,
        "samples": n,
        "spike_match": equal / size if size else 1.0,
        "prediction_match": int(np.sum(pred == comparison.quant_pred[:n])),
        "accuracy": float(np.mean(pred == labels)) if n else 0.0,
        "sim_accuracy": float(np.mean(comparison.quant_pred[:n] == labels)) if n else 0.0,
    }


def weight_grids(fm, q: Quantized) -> list[dict]:
    """Per synaptic layer: float weights times the layer's scale (in mantissa units) and the integer mantissas."""
    from neurodeploy.fold import fold

    floats = fold(fm.graph)
    net = q.netlist
    out = []
    for k, i in enumerate(net.neuron_layers):
        layer = net.layers[i]
        if not isinstance(layer, (Dense, Conv)):
            continue
        facts = q.layers[k]
        scaled = floats[k].weight * facts.scale / (64 * 2.0**facts.weight_exp)
        step = 1 << (8 + (fx.sign_mode(layer.weight) == "mixed") - min(facts.weight_bits, 9))
        out.append(
            {
                "layer": k,
                "description": describe_layer(layer),
                "scaled": scaled.ravel(),
                "mantissas": np.asarray(layer.weight).ravel(),
                "step": max(step, 1),
            }
        )
    return out


def _source(model, fm, dataset: str, seed: int, backend: str, batch_size: int) -> dict:
    meta = fm.meta
    return {
        "model": str(model),
        "rule": meta.get("rule"),
        "encoding": (meta.get("encoding") or {}).get("name"),
        "dataset": dataset,
        "split": "test",
        "seed": seed,
        "batch_size": batch_size,
        "backend": backend,
        "checkpoint_float_test_accuracy": meta.get("float_test_accuracy"),
    }


def reproduce_section(files: dict[str, Path], net: Netlist, steps: int, kind: str, conventions: str) -> dict:
    """The ``neurodeploy run`` command that recomputes the quantized predictions, and how to decode them."""
    flag = "--input-bias" if kind == "bias" else "--input"
    out = files["inputs"].parent / "out.npz"
    start, stop = net.window
    last = net.neuron_layers[-1]
    var = "v" if net.readout == "membrane" else "s"
    decode = (
        f"pred = v[:, {stop - 1}].argmax(axis=1)"
        if var == "v"
        else f"pred = s[:, {start}:{stop}].sum(axis=1).argmax(axis=1)"
    )
    what = "membrane potentials" if var == "v" else "spikes"
    return {
        "files": {name: str(path) for name, path in files.items()},
        "argv": [
            "run",
            str(files["netx"]),
            "--steps",
            str(steps),
            flag,
            str(files["inputs"]),
            "--record",
            var,
            "--conventions",
            conventions,
            "-o",
            str(out),
        ],
        "command": f"neurodeploy run {files['netx']} --steps {steps} {flag} {files['inputs']} --record {var} "
        f"--conventions {conventions} -o {out}",
        "output_key": f"{var}{last}",
        "decoding": (DECODING_MEMBRANE if var == "v" else DECODING).format(start=start, last=stop - 1),
        "python": [
            "import numpy as np",
            f"{var} = np.load('{out}')['{var}{last}']  # output layer {what} (batch, steps, classes)",
            decode,
            f"accuracy = (pred == np.load('{files['labels']}')).mean()",
        ],
    }


def reference_cost(net: Netlist, activity, reference, target) -> dict:
    """Cores and cost on ``reference``'s figures for the same measured counts (a stand-in for ``target``)."""
    note = (
        f"{reference.name}'s per-operation figures applied to the operations measured on {target.name}'s "
        f"netlist, placed on {reference.name}: a comparison, not a {target.name} figure"
    )
    try:
        mapping = map_network(net, reference)
    except NeurodeployError as err:
        return {"target": reference.name, "note": note, "error": str(err)}
    return {**hardware_summary(mapping, estimate_cost(mapping, activity)), "note": note}


def build_report(
    q: Quantized, target, comparison: Comparison, source: dict, files: dict[str, Path], *, cost_reference=None
) -> dict:
    """The report dict: accuracy, per layer, hardware cost, run conventions and how to reproduce.

    ``cost_reference``: another target whose per-operation figures also price the
    measured operations (for a target that publishes none).
    """
    net = q.netlist
    mapping = map_network(net, target)
    activity = measured_activity(comparison.recording)
    cost = estimate_cost(mapping, activity)
    classes = int(np.prod(net.output_shape))
    descriptions = [describe_layer(net.layers[i]) for i in net.neuron_layers]
    host = host_layer(q)
    hardware = hardware_summary(mapping, cost)
    if host is not None:
        descriptions[0] = hardware["layers"][0]["description"] = host["description"]
    return {
        "source": source,
        "host_layer": host,
        "raster_sample": {
            "index": RASTER_SAMPLE,
            "label": int(comparison.labels[RASTER_SAMPLE]),
            "float": int(comparison.float_pred[RASTER_SAMPLE]),
            "quantized": int(comparison.quant_pred[RASTER_SAMPLE]),
        },
        "accuracy": accuracy_summary(comparison.labels, comparison.float_pred, comparison.quant_pred, classes=classes),
        "layers": layer_rows(comparison.activities, descriptions, comparison.counters, [f.as_dict() for f in q.layers]),
        "hardware": hardware,
        "numerical_faults": faults.summary(numerical_faults(q, comparison), layer_labels(q)),
        "hardware_reference": None if cost_reference is None else reference_cost(net, activity, cost_reference, target),
        "lava": comparison.lava,
        "run": {
            "steps": q.steps,
            "run_steps": run_steps(q),
            "reset_interval": net.reset_interval,
            "reset_offset": net.reset_offset,
            "output_window": list(net.window),
            "conventions": comparison.conventions,
            "input": "input-layer biases (direct encoding, computed on the host)"
            if comparison.input_kind == "bias"
            else "binary spikes into the first synaptic layer",
        },
        "reproduce": reproduce_section(files, net, run_steps(q), comparison.input_kind, comparison.conventions),
    }


def numerical_faults(q: Quantized, comparison: Comparison) -> faults.Counts:
    """Per neuron layer, the quantizer's counts and the simulator's over the compared samples."""
    measured = [{name: comparison.counters[name][k] for name in FAULTS} for k in range(len(q.layers))]
    return faults.merged(faults.quantizer_counts(q.layers), measured)


def write_run_files(q: Quantized, comparison: Comparison, out_dir: Path, stem: str) -> dict[str, Path]:
    """The netx file, the integer inputs and the labels, each written atomically."""
    from neurodeploy.exporters.netx import write_netx

    files = {name: out_dir / pattern.format(stem=stem) for name, pattern in RUN_FILES.items()}
    write_netx(q.netlist, files["netx"])
    for name, array in (("inputs", comparison.inputs), ("labels", comparison.labels)):
        with atomic_path(files[name]) as tmp, open(tmp, "wb") as fh:
            np.save(fh, array)
    return files


def compare_and_report(
    model,
    fm: FloatModel,
    q: Quantized,
    target: Target,
    x: np.ndarray | PackedSpikes,
    y: np.ndarray,
    out_dir: str | Path,
    dataset: str,
    *,
    seed: int = 0,
    backend: str = "sim",
    lava_samples: int = 8,
    batch_size: int = 256,
    plots: bool = True,
    progress: bool = True,
    cost_reference=None,
    conventions: str | None = None,
    force: bool = False,
    device: str | None = None,
    workers: int = 1,
) -> tuple[dict, dict[str, Path]]:
    """Compare, then write the run files, ``report.json``, ``report.md`` and the plots into ``out_dir``.

    The simulator runs under ``conventions``, by default the target's, on torch's ``device`` if given;
    Lava's check under Lava's. Existing outputs are refused unless ``force``, before anything runs.
    The batches are shared by ``workers`` local processes, or by torchrun's processes; the files are
    those of a single process. Under torchrun only rank 0 checks in Lava and writes; the others
    return ``({}, {})``.
    """
    from neurodeploy.drc import require
    from neurodeploy.plots import PLOT_FILES
    from neurodeploy.report import REPORT_FILES, write_report

    chosen = find_backend(backend)
    if len(y) == 0:
        raise CompareError(f"{dataset}: no samples to compare")
    expected = tuple(fm.meta.get("input_shape") or x.shape[1:])
    if tuple(x.shape[-len(expected) :]) != expected:
        raise CompareError(
            f"{model}: the model takes samples shaped {expected}, dataset {dataset} has {tuple(x.shape[1:])}"
        )
    require(q.netlist, target)
    out_dir = check_writable(out_dir, folder=True)
    names = [
        *(p.format(stem=Path(model).stem) for p in RUN_FILES.values()),
        *REPORT_FILES.values(),
        *(f"plots/{name}" for name in PLOT_FILES.values() if plots),
    ]
    refuse_existing([out_dir / name for name in names], force)
    comparison = compare_model(
        fm,
        q,
        x,
        y,
        seed=seed,
        batch_size=batch_size,
        progress=progress,
        conventions=conventions or target.conventions,
        device=device,
        workers=workers,
    )
    if comparison is None:
        return {}, {}
    if chosen.reference:
        comparison.lava = reference_check(q, comparison, lava_samples, chosen)
    with staged_outputs(out_dir):  # all of the files or none
        files = write_run_files(q, comparison, out_dir, Path(model).stem)
        source = _source(model, fm, dataset, seed, backend, batch_size)
        report = build_report(q, target, comparison, source, files, cost_reference=cost_reference)
        if plots:
            from neurodeploy.plots import write_plots

            report["plots"] = write_plots(report, comparison.raster, weight_grids(fm, q), out_dir)
        paths = {**files, **write_report(report, out_dir)}
    return report, paths


def load_test_samples(
    dataset: str, data_root: str | None, samples: int | None, **kwargs
) -> tuple[np.ndarray | PackedSpikes, np.ndarray]:
    """The first ``samples`` samples of the test split (all when ``None``)."""
    from neurodeploy.datasets import load_dataset

    if samples is not None and samples < 1:
        raise CompareError(f"--samples = {samples} must be >= 1")
    x, y = load_dataset(dataset, root=data_root, split="test", **kwargs)
    return (x, y) if samples is None else (x[:samples], y[:samples])

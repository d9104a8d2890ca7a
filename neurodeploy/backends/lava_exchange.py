"""The Lava exchange format: a run (:class:`LavaCase`) and its recordings as a ``.npz`` file of
plain arrays and one JSON string (no pickle), written by one interpreter and read by another
(the caller's and Lava's Python 3.10, :mod:`neurodeploy.backends.lava_worker`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.counters import COUNTERS
from neurodeploy.errors import NeurodeployError
from neurodeploy.netlist import (
    Conv,
    CubaNeuron,
    DeltaNeuron,
    Dense,
    Flatten,
    Input,
    Netlist,
    RecurrentDense,
    SigmaDeltaNeuron,
    SigmaNeuron,
)
from neurodeploy.sim import RECORDABLE, Recording

LAYER_KINDS = {cls.kind: cls for cls in (Input, Dense, RecurrentDense, Conv, Flatten)}
NEURON_KINDS = {cls.__name__: cls for cls in (CubaNeuron, DeltaNeuron, SigmaDeltaNeuron, SigmaNeuron)}


class LavaError(NeurodeployError):
    """A run Lava cannot do, or a Lava run that failed."""


@dataclass
class LavaCase:
    """One run: a netlist with its inputs, the arguments of :func:`neurodeploy.sim.simulate`."""

    net: Netlist
    steps: int
    spikes: np.ndarray | None = None  # (batch, steps, *input shape)
    bias: np.ndarray | None = None  # input layer bias mantissas, optionally per sample
    record: tuple[str, ...] = ("s",)
    reset_interval: int | None = -1  # -1: the netlist's own

    def resolved_reset(self) -> int | None:
        return self.net.reset_interval if self.reset_interval == -1 else self.reset_interval

    def batch(self) -> int:
        if self.spikes is not None:
            return int(self.spikes.shape[0])
        first = self.net.layers[0]
        if self.bias is not None and isinstance(first, Input) and np.ndim(self.bias) > len(first.shape):
            return int(np.shape(self.bias)[0])
        return 1


def save_exchange(path: Path, spec: dict, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
        np.savez(fh, __spec__=np.array(json.dumps(spec)), **arrays)  # type: ignore[arg-type]  # numpy's stub lets **arrays fill allow_pickle


def load_exchange(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return json.loads(str(arrays.pop("__spec__"))), arrays


def _plain(value):
    """A dataclass field as JSON: ints, strings, lists; ``None`` kept."""
    if isinstance(value, (np.integer, int)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, bool)):
        return value
    raise LavaError(f"cannot pass a netlist field of type {type(value).__name__} to Lava")


def encode_netlist(net: Netlist, prefix: str, arrays: dict[str, np.ndarray]) -> dict:
    """The netlist as a JSON-able spec; its arrays go into ``arrays`` under ``prefix``."""
    layers = []
    for i, layer in enumerate(net.layers):
        entry: dict[str, Any] = {"kind": layer.kind}
        for f in fields(layer):
            value = getattr(layer, f.name)
            if isinstance(value, np.ndarray):
                arrays[f"{prefix}/{i}/{f.name}"] = value
                entry[f.name] = {"array": f"{prefix}/{i}/{f.name}"}
            elif is_dataclass(value):
                entry[f.name] = {k.name: _plain(getattr(value, k.name)) for k in fields(value)}
                entry[f.name]["class"] = type(value).__name__
            else:
                entry[f.name] = _plain(value)
        layers.append(entry)
    spec = {f.name: _plain(getattr(net, f.name)) for f in fields(net) if f.name not in ("layers", "meta")}
    return {"layers": layers, **spec}


def decode_netlist(spec: dict, arrays: dict[str, np.ndarray]) -> Netlist:
    """Inverse of :func:`encode_netlist`."""
    layers = []
    for entry in spec["layers"]:
        cls = LAYER_KINDS[entry["kind"]]
        kwargs = {}
        for f in fields(cls):
            value = entry.get(f.name)
            if isinstance(value, dict) and "array" in value:
                value = arrays[value["array"]]
            elif f.name == "neuron":
                value = dict(value)
                value = NEURON_KINDS[value.pop("class", "CubaNeuron")](**value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
        layers.append(cls(**kwargs))
    net_fields = {f.name for f in fields(Netlist)} - {"layers", "meta"}
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items() if k in net_fields}
    return Netlist(layers, **kwargs)


def write_cases(path: Path, cases: Sequence[LavaCase]) -> None:
    arrays: dict[str, np.ndarray] = {}
    specs = []
    for k, case in enumerate(cases):
        spec = {
            "net": encode_netlist(case.net, f"c{k}/net", arrays),
            "steps": int(case.steps),
            "record": list(case.record),
            "reset_interval": case.resolved_reset(),
        }
        for name in ("spikes", "bias"):
            value = getattr(case, name)
            if value is not None:
                arrays[f"c{k}/{name}"] = np.asarray(value)
        specs.append(spec)
    save_exchange(path, {"cases": specs}, arrays)


def read_cases(path: Path) -> list[LavaCase]:
    spec, arrays = load_exchange(path)
    return [
        LavaCase(
            net=decode_netlist(c["net"], arrays),
            steps=c["steps"],
            spikes=arrays.get(f"c{k}/spikes"),
            bias=arrays.get(f"c{k}/bias"),
            record=tuple(c["record"]),
            reset_interval=c["reset_interval"],
        )
        for k, c in enumerate(spec["cases"])
    ]


def write_recordings(path: Path, recs: Sequence[Recording]) -> None:
    arrays: dict[str, np.ndarray] = {}
    specs = []
    for k, rec in enumerate(recs):
        for name in RECORDABLE:
            for i, arr in getattr(rec, name).items():
                arrays[f"r{k}/{name}/{i}"] = arr
        if rec.output_counts is not None:
            arrays[f"r{k}/output_counts"] = rec.output_counts
        specs.append(
            {
                "steps": rec.steps,
                "batch": rec.batch,
                "spike_count": {str(i): int(c) for i, c in rec.spike_count.items()},
            }
        )
    save_exchange(path, {"recordings": specs}, arrays)


def read_recordings(path: Path) -> list[Recording]:
    spec, arrays = load_exchange(path)
    recs = []
    for k, r in enumerate(spec["recordings"]):
        rec = Recording(steps=r["steps"], batch=r["batch"], output_counts=arrays.get(f"r{k}/output_counts"))
        rec.spike_count = {int(i): c for i, c in r["spike_count"].items()}
        for i in rec.spike_count:
            for counter in COUNTERS:  # Lava's models count spikes only
                getattr(rec, counter).setdefault(i, 0)
        for key, arr in arrays.items():
            parts = key.split("/")
            if parts[0] == f"r{k}" and parts[1] in RECORDABLE:
                getattr(rec, parts[1])[int(parts[2])] = arr
        recs.append(rec)
    return recs

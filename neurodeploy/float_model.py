"""The float side of a deployment: a trained network's graph, how its inputs are encoded, and
the torch model, loaded from a checkpoint (``.pt``) or a NIR graph of any framework (``.nir``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurodeploy.atomic import staged_path
from neurodeploy.errors import InputFileError, NeurodeployError


class NotDeployableError(NeurodeployError):
    """A model whose neurons the chip cannot run (BPSA's graded variant)."""


@dataclass
class FloatModel:
    """A float network ready to quantize: its graph, how inputs are encoded, and the torch model."""

    graph: list[dict]
    meta: dict
    model: Any = None  # the torch module, when the source is a checkpoint

    @property
    def steps(self) -> int:
        return int(self.meta["steps"])


def load_float_model(
    path: str | Path, dt: float | None = None, steps: int | None = None, copies: int | None = None
) -> FloatModel:
    """A checkpoint (``.pt``) or a NIR graph written by any framework (``.nir``; ``copies``: see
    :func:`float_model_from_nir`)."""
    path = Path(path)
    if path.suffix == ".nir":
        return float_model_from_nir(path, dt=dt, steps=steps, copies=copies)
    from neurodeploy.models import float_graph, load_checkpoint

    model, meta = load_checkpoint(staged_path(path))
    if not meta.get("deployable", True):
        raise NotDeployableError(
            f"{path}: the model is marked not deployable ({meta.get('rule')} {meta.get('variant')})"
        )
    return FloatModel(float_graph(model), meta, model)


def float_model_from_nir(
    path: str | Path, dt: float | None = None, steps: int | None = None, copies: int | None = None
) -> FloatModel:
    """A float model from a NIR file written by any framework; ``steps`` is required. The chip holds
    each recurrent layer that another layer follows in ``copies`` copies (None: the import's default,
    ``nir_import.RECURRENT_COPIES``)."""
    from neurodeploy.nir_import import float_graph_from_nir, nir_to_float_graph

    if not steps or steps < 1:
        raise InputFileError(f"{path}: a NIR graph does not say how many steps a sample runs; pass --steps")
    ops = nir_to_float_graph(str(path), dt=dt)
    graph = float_graph_from_nir(ops, dt, str(path), copies)
    meta = {"rule": "nir", "steps": int(steps), "encoding": {"name": "rate"}, "dataset": None, "source": str(path)}
    return FloatModel(graph, meta)

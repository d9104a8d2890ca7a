r"""NIR graphs from other frameworks, discretised into the float graph the quantizer folds.

NIR's neurons are continuous-time; with time step ``dt`` (forward Euler, as the
NIR reference simulators do) they become CUBA neurons with reset to zero:

* ``LIF``: :math:`v \leftarrow (1 - dt/\tau) v + (dt/\tau) (v_{leak} + R I)`, ``I`` the
  weighted input of the step: current cleared each step (``current_decay = 1``).
* ``CubaLIF``: :math:`I \leftarrow (1 - dt/\tau_{syn}) I + (dt/\tau_{syn}) w_{in} x`,
  :math:`v \leftarrow (1 - dt/\tau_{mem}) v + (dt/\tau_{mem}) (v_{leak} + R I)`.
  An affine bias enters ``I`` in NIR; the chip adds biases to ``v``, so it is
  applied at its steady-state value (exact after the first ~tau_syn steps).
* ``IF``: :math:`v \leftarrow v + dt\,R I`.

Per-neuron ``R``, ``w_in`` and thresholds fold into the rows of the weights
(a neuron's v is scaled so that every threshold becomes the layer's one);
decays must be uniform within a layer, and ``v_reset`` must be 0.
"""

from __future__ import annotations

import numpy as np

from neurodeploy.errors import InputFileError


def _uniform(values: np.ndarray, what: str, where: str) -> float:
    values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if not np.all(np.isfinite(values)) or np.ptp(values) > 1e-9 * max(1.0, float(np.abs(values).max())):
        raise InputFileError(
            f"{where}: {what} must be one finite value for the whole layer, got {np.unique(values)[:4]}"
        )
    return float(values.flat[0])


def _time_constant(values: np.ndarray, what: str, where: str) -> float:
    tau = _uniform(values, what, where)
    if tau <= 0:
        raise InputFileError(f"{where}: {what} = {tau} must be > 0")
    return tau


def _per_neuron(values, n: int, what: str, where: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 1:
        arr = np.full(n, arr[0])
    if arr.size % n or not np.all(np.isfinite(arr)):
        raise InputFileError(f"{where}: {what} has {arr.size} values for {n} neurons (or is not finite)")
    return arr.reshape(n, -1)[:, 0] if arr.size != n else arr


def _neuron(op: dict, syn: dict, dt: float | None, where: str) -> dict:
    """The CUBA neuron op for a NIR neuron; folds per-neuron gains into ``syn`` (modified)."""
    model = op["model"]
    if model != "if" and dt is None:
        raise InputFileError(f"{where}: a {model.upper()} neuron needs a time step: the graph has no dt; pass --dt")
    dt = 1.0 if dt is None else dt
    n = syn["weight"].shape[0]
    if np.any(np.asarray(op.get("v_reset", 0.0)) != 0):
        raise InputFileError(f"{where}: v_reset must be 0 (the chip resets v to zero)")
    theta = _per_neuron(op["v_threshold"], n, "v_threshold", where)
    if np.any(theta <= 0):
        raise InputFileError(f"{where}: v_threshold must be > 0")
    r = _per_neuron(op.get("r", 1.0), n, "r", where)
    if model == "if":
        cd, vd, gain, leak = 1.0, 0.0, dt * r, np.zeros(n)
    else:
        vd = dt / _time_constant(op["tau_mem"], "tau_mem", where)
        leak = vd * _per_neuron(op.get("v_leak", 0.0), n, "v_leak", where)
        gain = vd * r
        cd = 1.0
        if model == "cuba":
            cd = dt / _time_constant(op["tau_syn"], "tau_syn", where)
            gain = gain * cd * _per_neuron(op.get("w_in", 1.0), n, "w_in", where)
    if (not 0 < vd <= 1 and model != "if") or not 0 < cd <= 1:
        raise InputFileError(f"{where}: dt = {dt} does not fit the time constants (decays {cd:.3g}, {vd:.3g})")
    # Scale each neuron's v by 1/theta: thresholds become 1, gains and biases follow.
    shape = (-1,) + (1,) * (syn["weight"].ndim - 1)
    bias = syn["bias"] if syn.get("bias") is not None else np.zeros(n)
    steady = 1.0 / cd if model == "cuba" else 1.0  # the bias's steady state through the current
    with np.errstate(all="ignore"):  # overflow is checked below, by name
        syn["weight"] = syn["weight"] * (gain / theta).reshape(shape)
        syn["bias"] = (bias * gain * steady + leak) / theta
    for name in ("weight", "bias"):
        if not np.all(np.isfinite(syn[name])):
            raise InputFileError(
                f"{where}: the synapses' {name}s scaled by r, w_in, dt / tau and 1 / v_threshold "
                "leave the range of float64 (inf or NaN)"
            )
    return {
        "op": "neuron",
        "model": "cuba",
        "vth": 1.0,
        "current_decay": cd,
        "voltage_decay": vd,
        "input_scale": 1.0,
        "drive": "synaptic",
        "spike": "binary",
        "rule": f"nir-{model}",
    }


def _pool(op: dict, where: str) -> tuple[dict, float]:
    kh, kw = op["kernel"]
    if (kh, kw) != tuple(op["stride"]) or kh != kw or any(op.get("padding", (0, 0))):
        raise InputFileError(f"{where}: pooling must be square, unpadded, with stride equal to the kernel")
    return {"op": "sumpool", "kernel": kh, "stride": kh}, (1.0 / (kh * kw) if op["op"] == "avgpool" else 1.0)


def float_graph_from_nir(ops: list[dict], dt: float | None, source: str) -> list[dict]:
    """Translate ``nir_to_float_graph`` ops into the quantizer's float graph."""
    if not ops or ops[0]["op"] != "input" or ops[0].get("shape") is None:
        raise InputFileError(f"{source}: the graph must start with an input node of known shape")
    graph = [{"op": "input", "kind": "spikes", "shape": tuple(ops[0]["shape"])}]
    syn, scale = None, 1.0
    for op in ops[1:]:
        where = f"{source}: node {op.get('name', op['op'])!r}"
        if op["op"] in ("dense", "conv"):
            syn = {k: v for k, v in op.items() if k not in ("name", "shape")}
            syn["weight"] = syn["weight"] * scale
            graph.append(syn)
            scale = 1.0
        elif op["op"] in ("sumpool", "avgpool"):
            pool, scale = _pool(op, where)
            graph.append(pool)
        elif op["op"] == "flatten":
            graph.append({"op": "flatten"})
        elif op["op"] == "neuron":
            if syn is None:
                raise InputFileError(f"{where}: a neuron needs synapses (Affine, Linear or Conv2d) before it")
            graph.append(_neuron(op, syn, op.get("dt", dt), where))
            syn = None
    if syn is not None:
        raise InputFileError(f"{source}: the graph ends with synapses that have no neurons")
    return graph

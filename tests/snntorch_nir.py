"""snnTorch's own run of a NIR graph beside the integer network's, and how often their spikes agree.

snnTorch 1.0's ``import_from_nir`` turns each node into a module (recurrent loops
into ``RLeaky``/``RSynaptic``) and wires them with nirtorch; nirtorch 2.6 cannot
wire the nested graph it makes of a loop (AttributeError), and a hidden-state
``RSynaptic`` built with ``reset_delay=False`` fails on its first step (TypeError).
So :func:`snntorch_spikes` takes the modules snnTorch's importer builds, node by
node, and steps them along the chain with explicit states.

Run by hand on a file, from the repository root:
``PYTHONPATH=$PWD python tests/snntorch_nir.py graph.nir --steps 100 --dt 1e-4 --rate 0.3 [--reset-now] [--copies K]``;
``--perturb REL`` and ``--round-weights`` run snnTorch against itself instead (see docs/nir.md).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
from pathlib import Path

import numpy as np
from neurodeploy.export import quantize_model
from neurodeploy.exporters.nir import chain
from neurodeploy.float_model import float_model_from_nir
from neurodeploy.quantize import Quantized, run_quantized
from neurodeploy.targets import load_target


def snntorch_spikes(graph, x: np.ndarray, reset_now: bool = False) -> list[np.ndarray]:
    """Spikes (B, T, n) of each neuron node of ``graph`` on input spikes ``x`` (B, T, n_in), run by snnTorch.

    ``reset_now``: zero a recurrent neuron's v in the step it spikes, as the importer's
    ``reset_delay=False`` asks and snnTorch's ``Synaptic`` and ``Leaky`` do; its ``RSynaptic``
    and ``RLeaky`` apply that reset to a local copy only, so they zero v one step later
    (the whole of that step's integration is lost).
    """
    import snntorch as snn
    import torch
    from snntorch import import_nir

    with contextlib.redirect_stdout(io.StringIO()):  # the importer prints its progress
        graph = import_nir._replace_rnn_subgraph_with_nirgraph(copy.deepcopy(graph))
        keys = chain(graph, "snnTorch's graph")[1:-1]
        modules = [import_nir._nir_to_snntorch_module(graph.nodes[k], init_hidden=False) for k in keys]
    recurrent = (snn.RLeaky, snn.RSynaptic)
    neurons = [m for m in modules if isinstance(m, (snn.Leaky, snn.Synaptic, *recurrent))]
    states: dict[int, tuple] = {}
    out: list[list[np.ndarray]] = [[] for _ in neurons]
    with torch.no_grad():
        for t in range(x.shape[1]):
            h = torch.as_tensor(x[:, t], dtype=torch.float32)
            for m in modules:
                if m not in neurons:
                    h = m(h)
                    continue
                k = neurons.index(m)
                if k not in states:  # all zero before the first step
                    zero = torch.zeros_like(h)
                    states[k] = (zero,) * (3 if isinstance(m, (snn.Synaptic, snn.RSynaptic)) else 2)
                given = states[k] if isinstance(m, recurrent) else states[k][1:]
                states[k] = m(h, *given)
                h = states[k][0]
                if reset_now and isinstance(m, recurrent):
                    states[k] = (*states[k][:-1], states[k][-1] * (1 - h))
                out[k].append(h.numpy() > 0)
    return [np.stack(s, axis=1) for s in out]


def chip_spikes(q: Quantized, x: np.ndarray) -> list[np.ndarray]:
    """Spikes (B, T, n) of each neuron layer of the integer network, aligned with the float steps."""
    rec = run_quantized(q, x)
    net, steps = q.netlist, x.shape[1]
    return [
        rec.s[i][:, k + net.reset_offset : k + net.reset_offset + steps].reshape(x.shape[0], steps, -1)
        for k, i in enumerate(net.neuron_layers)
    ]


def agreement(
    path: str | Path,
    steps: int,
    dt: float,
    rate: float,
    batch: int = 64,
    seed: int = 0,
    reset_now: bool = False,
    copies: int | None = None,
) -> list[dict]:
    """Per neuron layer: the share of entries where chip and snnTorch agree, both spike rates, and the
    agreement among entries where either spikes; on Bernoulli(``rate``) input spikes. ``copies``: of
    each recurrent layer, as ``neurodeploy export --copies`` (None: its default)."""
    import nir

    fm = float_model_from_nir(path, dt=dt, steps=steps, copies=copies)
    q = quantize_model(fm, load_target("loihi2"), calibrate=0)
    n_in = int(np.prod(q.netlist.input_shape))
    x = np.random.default_rng(seed).random((batch, steps, n_in)) < rate
    ours, theirs = chip_spikes(q, x), snntorch_spikes(nir.read(path), x.astype(np.float32), reset_now)
    rows = []
    for a, b in zip(ours, theirs):
        a = a[..., : b.shape[-1]]  # copy 0 comes first; its always-on neuron, if any, is its last
        either = a | b
        rows.append(
            {
                "agree": float(np.mean(a == b)),
                "entries": int(a.size),
                "chip_rate": float(a.mean()),
                "snntorch_rate": float(b.mean()),
                "agree_where_spiking": float(np.mean(a[either] == b[either])) if either.any() else 1.0,
            }
        )
    return rows


def sensitivity(path: str | Path, steps: int, rate: float, rel: float, batch: int = 64, seed: int = 0) -> list[float]:
    """Per neuron layer, how often snnTorch's spikes agree with its own run of the graph whose weights are
    multiplied by 1 + ``rel`` N(0, 1): the agreement a float network keeps under a small weight error."""
    import nir

    graph = nir.read(path)
    source = next(n for n in graph.nodes.values() if isinstance(n, nir.Input))
    x = np.random.default_rng(seed).random((batch, steps, int(np.prod(source.output_type["output"])))) < rate
    rng = np.random.default_rng(seed + 1)
    noisy = copy.deepcopy(graph)
    for node in noisy.nodes.values():
        if type(node).__name__ in ("Affine", "Linear"):
            node.weight = (node.weight * (1 + rel * rng.standard_normal(node.weight.shape))).astype(np.float32)
    runs = [snntorch_spikes(g, x.astype(np.float32), reset_now=True) for g in (graph, noisy)]
    return [float(np.mean(a == b)) for a, b in zip(*runs)]


def rounding_floor(path: str | Path, steps: int, rate: float, batch: int = 64, seed: int = 0) -> list[float]:
    """Per neuron layer, how often snnTorch's spikes agree with its own run of the graph whose weights are
    rounded as an 8-bit chip holds them, and nothing else changed: each neuron's incoming weight nodes
    (its recurrent ones among them) share one scale, their largest magnitude at the top of the mixed-sign
    grid (-128..127 steps, Loihi's 8-bit mantissas -256..254 in steps of 2)."""
    import nir

    graph = nir.read(path)
    source = next(n for n in graph.nodes.values() if isinstance(n, nir.Input))
    x = np.random.default_rng(seed).random((batch, steps, int(np.prod(source.output_type["output"])))) < rate
    rounded = copy.deepcopy(graph)
    weighted = {k for k, n in rounded.nodes.items() if type(n).__name__ in ("Affine", "Linear")}
    for target in {dst for src, dst in rounded.edges if src in weighted}:
        group = [rounded.nodes[src] for src, dst in rounded.edges if dst == target and src in weighted]
        unit = max(float(np.abs(n.weight).max()) for n in group) / 127
        for node in group:
            node.weight = (np.clip(np.rint(node.weight / unit), -128, 127) * unit).astype(np.float32)
    runs = [snntorch_spikes(g, x.astype(np.float32), reset_now=True) for g in (graph, rounded)]
    return [float(np.mean(a == b)) for a, b in zip(*runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graph")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--dt", type=float, default=1e-4)
    parser.add_argument("--rate", type=float, default=0.3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reset-now", action="store_true", help="recurrent neurons reset in the step they spike")
    parser.add_argument("--copies", type=int, help="copies of each recurrent layer on the chip (default: export's)")
    parser.add_argument("--perturb", type=float, help="instead: snnTorch against itself, weights * (1 + REL N(0,1))")
    parser.add_argument(
        "--round-weights", action="store_true", help="instead: snnTorch against itself, weights rounded to 8 bits"
    )
    args = parser.parse_args()
    if args.round_weights:
        for k, agree in enumerate(rounding_floor(args.graph, args.steps, args.rate, args.batch, args.seed)):
            print(f"layer {k}: snnTorch agrees with itself on 8-bit weights on {agree:.4f}")
        return
    if args.perturb is not None:
        for k, agree in enumerate(sensitivity(args.graph, args.steps, args.rate, args.perturb, args.batch, args.seed)):
            print(f"layer {k}: snnTorch agrees with itself under a {args.perturb:g} weight error on {agree:.4f}")
        return
    rows = agreement(args.graph, args.steps, args.dt, args.rate, args.batch, args.seed, args.reset_now, args.copies)
    for k, row in enumerate(rows):
        print(
            f"layer {k}: agree {row['agree']:.4f}  spike rate chip {row['chip_rate']:.4f} "
            f"snntorch {row['snntorch_rate']:.4f}  agree where either spikes {row['agree_where_spiking']:.4f}"
        )
    pooled = sum(row["agree"] * row["entries"] for row in rows) / sum(row["entries"] for row in rows)
    print(f"all layers: agree {pooled:.4f}")


if __name__ == "__main__":
    main()

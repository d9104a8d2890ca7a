"""Run by Lava's interpreter: build networks from lava-dl's SLAYER blocks and write them with export_hdf5.

Usage: python slayer_nets.py OUT_DIR. Writes OUT_DIR/<name>.net for each network in NETWORKS, whose
(C, H, W) input shape the files do not hold (export_hdf5 writes no input layer).
"""

from __future__ import annotations

import sys
from pathlib import Path

import h5py
import torch
from lava.lib.dl import slayer


def _neuron(rng: torch.Generator) -> dict:
    """CUBA parameters drawn at random (threshold, decays), fixed by the generator."""

    def draw(lo: float, hi: float) -> float:
        return float(lo + (hi - lo) * torch.rand(1, generator=rng))

    return {
        "threshold": draw(0.3, 1.2),
        "current_decay": draw(0.0, 0.6),
        "voltage_decay": draw(0.0, 0.3),
        "tau_grad": 0.03,
        "scale_grad": 3,
        "requires_grad": False,
    }


def _blocks(name: str, rng: torch.Generator) -> list:
    cuba = slayer.block.cuba
    if name == "dense":
        return [cuba.Dense(_neuron(rng), 30, 24, weight_scale=2), cuba.Dense(_neuron(rng), 24, 6, weight_scale=2)]
    if name == "conv_flatten_dense":
        return [
            cuba.Conv(_neuron(rng), 2, 6, 3, weight_scale=2),
            cuba.Flatten(),
            cuba.Dense(_neuron(rng), 6 * 7 * 9, 5, weight_scale=2),
        ]
    if name == "stride_padding":
        return [
            cuba.Conv(_neuron(rng), 2, 8, 3, stride=2, padding=1, weight_scale=2),
            cuba.Conv(_neuron(rng), 8, 6, (3, 2), stride=(1, 2), padding=(0, 1), weight_scale=2),
            cuba.Flatten(),
            cuba.Dense(_neuron(rng), 6 * 3 * 4, 4, weight_scale=2),
        ]
    raise ValueError(name)


NETWORKS = {"dense": (30,), "conv_flatten_dense": (2, 9, 11), "stride_padding": (2, 9, 11)}  # name: input shape
STEPS = 8


def write(name: str, path: Path, seed: int) -> None:
    rng = torch.Generator().manual_seed(seed)
    blocks = _blocks(name, rng)
    for block in blocks:  # random weights over most of the 8-bit range
        synapse = getattr(block, "synapse", None)
        if synapse is not None:
            synapse.weight.data = torch.randn(synapse.weight.shape, generator=rng) * 1.5
    x = (torch.rand((1,) + NETWORKS[name] + (STEPS,), generator=rng) < 0.4).float()
    with torch.no_grad():  # a forward pass sets each block's shape, as training does
        for block in blocks:
            x = block(x)
    with h5py.File(path, "w") as h5:
        layer = h5.create_group("layer")
        for i, block in enumerate(blocks):
            block.export_hdf5(layer.create_group(str(i)))


if __name__ == "__main__":
    out = Path(sys.argv[1])
    for seed, name in enumerate(NETWORKS):
        write(name, out / f"{name}.net", seed)

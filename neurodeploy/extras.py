"""The optional parts of neurodeploy, and which pip extra brings each module they import.

The core (netlist, simulator, netx, ``map``, ``run``, ``inspect``) needs numpy and h5py
alone; training, plots, NIR, ONNX and Lava come with ``pip install "neurodeploy[EXTRA]"``.
"""

from __future__ import annotations

EXTRA_OF_MODULE = {
    "torch": "train",
    "sklearn": "train",
    "tqdm": "train",
    "matplotlib": "plots",
    "nir": "nir",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "lava": "lava",
}


def missing_extra(err: ModuleNotFoundError) -> str | None:
    """The extra that installs the module ``err`` names, or None when it is no optional one."""
    top = (err.name or "").partition(".")[0]
    return EXTRA_OF_MODULE.get(top)

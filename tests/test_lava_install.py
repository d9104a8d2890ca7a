"""``run --backend lava`` from a wheel installed into a fresh venv of Python 3.13 (numpy 2, no torch)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from neurodeploy.exporters.netx import write_netx
from neurodeploy.netlist import CubaNeuron, Dense, Netlist
from neurodeploy.sim import simulate

REPO = Path(__file__).resolve().parents[1]
RUNTIME = ("numpy", "h5py", "threadpoolctl", "tqdm")  # what `run` needs; torch and the rest are left out


def _python313() -> str:
    found = shutil.which("pyenv")
    done = found and subprocess.run(
        [found, "which", "python"],
        env={**os.environ, "PYENV_VERSION": "3.13"},
        capture_output=True,
        text=True,
        check=False,
    )
    if not done or done.returncode != 0:
        pytest.skip("no Python 3.13 from pyenv (PYENV_VERSION=3.13 pyenv which python)")
    return done.stdout.strip()


def _check(cmd: list[str], **kwargs) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=600, **kwargs)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


@pytest.mark.lava
def test_run_backend_lava_from_a_wheel_on_python_313(tmp_path, lava_exe):
    python313 = _python313()
    src = tmp_path / "src"  # a copy, so that the build leaves nothing in the checkout
    shutil.copytree(REPO / "neurodeploy", src / "neurodeploy", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    _check(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(src)]
    )
    (wheel,) = tmp_path.glob("neurodeploy-*.whl")
    venv = tmp_path / "venv"
    _check([python313, "-m", "venv", str(venv)])
    _check([str(venv / "bin/pip"), "install", "-q", "--no-deps", str(wheel)])
    _check([str(venv / "bin/pip"), "install", "-q", *RUNTIME])

    rng = np.random.default_rng(5)
    net = Netlist(
        [
            Dense(rng.integers(-80, 120, (12, 10)), CubaNeuron(4, 200, 300, 6)),
            Dense(rng.integers(-60, 110, (4, 12)), CubaNeuron(3, 100, 200, 6)),
        ],
        input_shape=(10,),
    )
    write_netx(net, tmp_path / "net.net")
    spikes = rng.random((3, 16, 10)) < 0.5
    np.save(tmp_path / "in.npy", spikes.astype(np.int8))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing from this checkout
    env["NEURODEPLOY_LAVA_PYTHON"] = lava_exe
    _check(
        [
            str(venv / "bin/neurodeploy"),
            "run",
            "net.net",
            "--steps",
            "16",
            "--input",
            "in.npy",
            "--backend",
            "lava",
            "-o",
            "out.npz",
        ],
        cwd=tmp_path,
        env=env,
    )
    expected = simulate(net, 16, spikes=spikes)
    with np.load(tmp_path / "out.npz") as saved:
        assert expected.s[1].any()
        assert np.array_equal(saved["s1"], expected.s[1])

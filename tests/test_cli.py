"""The ``neurodeploy`` command's own habits: --version, missing extras, closed pipes."""

import subprocess
import sys

import pytest
from neurodeploy import __version__

SHARED_NET = "import sys; sys.modules[{mod!r}] = None; from neurodeploy.cli import main; sys.exit(main({argv!r}))"


def _cli(*argv: str, block: str | None = None, **kw) -> subprocess.CompletedProcess:
    code = SHARED_NET.format(mod=block, argv=list(argv)) if block else None
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "neurodeploy", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def test_version_is_the_package_version():
    run = _cli("--version")
    assert run.returncode == 0 and run.stdout.strip() == f"neurodeploy {__version__}"


def test_a_missing_extra_is_named_in_one_line(tmp_path):
    pytest.importorskip("torch")
    from test_export import _checkpoint

    model = _checkpoint(tmp_path / "m.pt")
    run = _cli("export", str(model), "--format", "nir", "--calibrate", "0", "-o", str(tmp_path / "out"), block="nir")
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install "neurodeploy[nir]"' in lines[0] and "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()


def test_an_unrelated_missing_module_is_not_blamed_on_an_extra(conformance_dir):
    run = _cli("inspect", str(conformance_dir / "tiny.net"), block="h5py")
    assert run.returncode == 1 and "ModuleNotFoundError" in run.stderr


def test_a_closed_pipe_ends_quietly(conformance_dir):
    net = str(conformance_dir / "gts" / "pilotnet_lif" / "network.net")
    cmd = [sys.executable, "-m", "neurodeploy", "inspect", net]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read().decode()
        proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_help_shows_each_options_default():
    pytest.importorskip("torch")  # export's options come with the train extra
    run = _cli("export", "--help")
    assert run.returncode == 0
    assert "(default: loihi2)" in " ".join(run.stdout.split())

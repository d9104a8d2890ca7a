"""scripts/get-conformance.sh: its checksum step against the golden files in ../shared (no network here)."""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "get-conformance.sh"
MANIFEST = SCRIPT.with_name("conformance.sha256")


def _check(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), "--check", str(folder)], capture_output=True, text=True, check=False, timeout=120
    )


def _names() -> list[str]:
    return [line.split(maxsplit=1)[1] for line in MANIFEST.read_text().splitlines()]


def test_the_manifest_lists_every_golden_file(conformance_dir):
    held = sorted(
        str(p.relative_to(conformance_dir)) for p in conformance_dir.rglob("*") if p.is_file() and p.name != "README.md"
    )
    assert sorted(_names()) == held


def test_the_golden_files_pass_the_check(conformance_dir):
    done = _check(conformance_dir)
    assert done.returncode == 0, done.stderr
    assert f"all {len(_names())} files" in done.stdout


def test_a_changed_or_missing_file_fails_the_check(conformance_dir, tmp_path):
    for name in _names():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).symlink_to(conformance_dir / name)
    changed = tmp_path / "tiny.net"
    data = bytearray(changed.read_bytes())
    data[-1] ^= 1
    changed.unlink()
    changed.write_bytes(bytes(data))
    (tmp_path / "gts/dense/out.npy").unlink()
    done = _check(tmp_path)
    assert done.returncode == 1
    assert f"MISMATCH {changed}" in done.stderr and "MISSING" in done.stderr and "gts/dense/out.npy" in done.stderr
    assert "2 of" in done.stderr

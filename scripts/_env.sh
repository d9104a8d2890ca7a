# Shared by the set-up scripts (sourced, not run): builds the project's environment.
# NEURODEPLOY_PYTHON picks the interpreter (default: python3, which must be >= 3.10);
# NEURODEPLOY_TORCH the torch requirement installed first (default: a CPU-friendly pin).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${NEURODEPLOY_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

ensure_venv() {
  local base="${NEURODEPLOY_PYTHON:-python3}"
  if [ ! -x "$PY" ]; then
    "$base" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || {
      echo "neurodeploy needs Python >= 3.10; set NEURODEPLOY_PYTHON to one" >&2; exit 1; }
    echo "== creating $VENV with $("$base" --version)"
    "$base" -m venv "$VENV"
  fi
  if ! "$PY" -c 'import torch' 2>/dev/null; then
    echo "== installing ${NEURODEPLOY_TORCH:-torch==2.13.0}"
    "$PY" -m pip install -q "${NEURODEPLOY_TORCH:-torch==2.13.0}"
  fi
  if ! "$PY" -c 'import neurodeploy, nir, onnxruntime, hypothesis, ruff, mypy' 2>/dev/null \
     || [ "$ROOT/pyproject.toml" -nt "$VENV/.neurodeploy-installed" ]; then
    echo "== installing neurodeploy and its test dependencies"
    "$PY" -m pip install -q -e "$ROOT[dev]"
    touch "$VENV/.neurodeploy-installed"
  fi
}

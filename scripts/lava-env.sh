#!/usr/bin/env bash
# Builds the optional Lava reference environment (Lava needs Python 3.10 and numpy < 2)
# outside the clone, once: ${XDG_CACHE_HOME:-~/.cache}/neurodeploy/lava-py310.
# Finds Python 3.10 as NEURODEPLOY_PYTHON310, python3.10 on PATH, or through pyenv.
# Prints the environment's python on success; exits 3 when no Python 3.10 exists.
set -euo pipefail
DIR="${XDG_CACHE_HOME:-$HOME/.cache}/neurodeploy/lava-py310"
STAMP="$DIR/.lava-ready"

find_python310() {
  local cand
  for cand in "${NEURODEPLOY_PYTHON310:-}" "$(command -v python3.10 || true)" \
              "$(PYENV_VERSION=3.10 pyenv which python 2>/dev/null || true)"; do
    if [ -n "$cand" ] && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  return 1
}

if [ ! -f "$STAMP" ]; then
  PY310="$(find_python310)" || { echo "no Python 3.10 found (python3.10, pyenv, NEURODEPLOY_PYTHON310)" >&2; exit 3; }
  echo "== building the Lava environment in $DIR with $PY310 (once; a few minutes, ~6 GB)" >&2
  rm -rf "$DIR"
  "$PY310" -m venv "$DIR"
  "$DIR/bin/python" -m pip install -q lava-nc==0.10.0 lava-dl==0.6.0 tomli >&2
  "$DIR/bin/python" -c 'import lava.magma, lava.lib.dl.netx' >/dev/null 2>&1
  touch "$STAMP"
fi
echo "$DIR/bin/python"

#!/usr/bin/env bash
# Runs the whole test suite: builds .venv (and the Lava environment where Python 3.10 exists).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
ensure_venv
if LAVA_PY="$(bash "$ROOT/scripts/lava-env.sh")"; then
  export NEURODEPLOY_LAVA_PYTHON="$LAVA_PY"
  echo "== Lava reference tests run with $LAVA_PY"
else
  echo "########################################################################"
  echo "##  NO PYTHON 3.10 FOUND: the Lava reference tests are SKIPPED.        ##"
  echo "##  Install Python 3.10 (python3.10 or pyenv) to run them.             ##"
  echo "########################################################################"
fi
cd "$ROOT"
exec "$PY" -m pytest -q -p no:cacheprovider "$@"

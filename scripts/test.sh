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
GOLDEN="${NEURODEPLOY_CONFORMANCE:-$ROOT/../shared/conformance/lava-dl}"
if [ -f "$GOLDEN/tiny.net" ]; then
  echo "== lava-dl golden data from $GOLDEN"
else
  echo "########################################################################"
  echo "##  NO LAVA-DL GOLDEN DATA at $GOLDEN"
  echo "##  The conformance tests against lava-dl's files are SKIPPED.         ##"
  echo "##  Get them: bash scripts/get-conformance.sh DIR, then                ##"
  echo "##  export NEURODEPLOY_CONFORMANCE=DIR and run this script again.      ##"
  echo "########################################################################"
fi
cd "$ROOT"
exec "$PY" -m pytest -q -p no:cacheprovider "$@"

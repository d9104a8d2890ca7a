#!/usr/bin/env bash
# The main job on the embedded digits data: train, export to loihi2, compare, report.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
ensure_venv
cd "$ROOT"
exec "$PY" -m neurodeploy demo "$@"

#!/usr/bin/env bash
# Lint, format and type checks over the package, tests and benchmarks; any finding fails.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
ensure_venv
cd "$ROOT"
"$PY" -m ruff check neurodeploy tests benchmarks
"$PY" -m ruff format --check neurodeploy tests benchmarks
"$PY" -m mypy neurodeploy

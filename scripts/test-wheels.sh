#!/usr/bin/env bash
# Installs neurodeploy from a freshly built wheel, as a user would, away from the source tree:
# - the core alone (no torch) on Python 3.10 with numpy 1.x, 3.12 and 3.13, each in a fresh venv,
#   running the tests that need no extra and no Lava there;
# - the wheel with every extra on the main Python, running `neurodeploy demo` for one epoch.
# Pythons come from pyenv (or NEURODEPLOY_PYTHON310/312/313); a missing one is a failure.
# The last line lists each run; the exit status is non-zero when any failed.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
ensure_venv
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export NEURODEPLOY_CONFORMANCE="${NEURODEPLOY_CONFORMANCE:-$(dirname "$ROOT")/shared/conformance/lava-dl}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

"$PY" -m pip wheel -q --no-deps -w "$WORK/dist" "$ROOT" >/dev/null || { echo "wheel build failed"; exit 1; }
WHEEL="$(ls "$WORK"/dist/neurodeploy-*.whl)"
mkdir -p "$WORK/suite" && cp -r "$ROOT/tests" "$ROOT/scripts" "$ROOT/pyproject.toml" "$WORK/suite/"  # no package source beside them

python_for() {  # $1: version such as 3.12
  local var="NEURODEPLOY_PYTHON${1/./}"
  if [ -n "${!var:-}" ]; then echo "${!var}"; else PYENV_VERSION="$1" pyenv which python 2>/dev/null; fi
}

summary=()
failed=0
core_run() {  # $1: Python version, $2...: extra pip requirements
  local version="$1"; shift
  local base venv="$WORK/core-$version" log="$WORK/core-$version.log" line
  base="$(python_for "$version")" || true
  if [ -z "$base" ]; then summary+=("$version: no interpreter"); failed=1; return; fi
  echo "== core wheel on Python $version $*"
  if ! { "$base" -m venv "$venv" && "$venv/bin/pip" install -q "$WHEEL" pytest hypothesis "$@"; } >"$log" 2>&1; then
    tail -5 "$log"; summary+=("$version: install failed"); failed=1; return
  fi
  if "$venv/bin/python" -c 'import torch' 2>/dev/null; then summary+=("$version: torch was installed"); failed=1; return; fi
  (cd "$WORK/suite" && "$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not lava" tests) >"$log" 2>&1
  local status=$?
  line="$(grep -E '[0-9]+ (passed|failed)' "$log" | tail -1 | tr -d '=' | xargs)"
  [ $status -eq 0 ] || { tail -30 "$log"; failed=1; }
  local numpy; numpy="$("$venv/bin/python" -c 'import numpy; print(numpy.__version__)')"
  summary+=("$version (numpy $numpy): ${line:-no result}")
  echo "   $line"
}

core_run 3.10 "numpy<2"
core_run 3.12
core_run 3.13

echo "== wheel with every extra on $("$PY" --version): neurodeploy demo, 1 epoch"
full="$WORK/full"
if "$PY" -m venv "$full" && "$full/bin/pip" install -q "${NEURODEPLOY_TORCH:-torch==2.13.0}" "$WHEEL[all]" >"$WORK/full.log" 2>&1 \
   && (cd "$WORK" && "$full/bin/neurodeploy" demo --epochs 1 --no-progress -o "$WORK/demo") >>"$WORK/full.log" 2>&1 \
   && [ -f "$WORK/demo/report/report.md" ]; then
  summary+=("wheel demo: ok")
else
  tail -20 "$WORK/full.log"; summary+=("wheel demo: FAILED"); failed=1
fi

line="$(printf '%s; ' "${summary[@]}")"
echo "wheel installs: ${line%; }"
exit $failed

#!/usr/bin/env bash
# Downloads lava-dl's golden conformance files (BSD-3-Clause, github.com/lava-nc/lava-dl) at the
# pinned commit into DIR and checks each file's sha256 against scripts/conformance.sha256.
#   scripts/get-conformance.sh DIR           download, check, then move the files into DIR
#   scripts/get-conformance.sh --check DIR   only check the files already in DIR
# Then: export NEURODEPLOY_CONFORMANCE=DIR (or use DIR = ../shared/conformance/lava-dl beside the clone).
set -euo pipefail
COMMIT=d825ac506eb9bb91ea2b945116fb45a40e775451
BASE="https://raw.githubusercontent.com/lava-nc/lava-dl/$COMMIT"
MANIFEST="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/conformance.sha256"

usage() { echo "usage: $0 [--check] DIR" >&2; exit 2; }

# Where a manifest name lives in lava-dl's repository.
source_path() {
  case "$1" in
    trained/bootstrap_mnist.net) echo "tutorials/lava/lib/dl/bootstrap/mnist/Trained/network.net" ;;
    *) echo "tests/lava/lib/dl/netx/$1" ;;
  esac
}

sha256() { if command -v sha256sum >/dev/null; then sha256sum "$@"; else shasum -a 256 "$@"; fi; }

# Every manifest file present in $1 with its listed hash; prints each mismatch, counts them.
check() {
  local dir="$1" bad=0 want name got
  while read -r want name; do
    if [ ! -f "$dir/$name" ]; then
      echo "MISSING  $dir/$name" >&2; bad=$((bad + 1)); continue
    fi
    got="$(sha256 "$dir/$name" | cut -d' ' -f1)"
    if [ "$got" != "$want" ]; then
      echo "MISMATCH $dir/$name: sha256 $got, expected $want" >&2; bad=$((bad + 1))
    fi
  done < "$MANIFEST"
  local total; total="$(wc -l < "$MANIFEST" | tr -d ' ')"
  if [ "$bad" -ne 0 ]; then
    echo "$bad of $total files in $dir fail the check" >&2; return 1
  fi
  echo "all $total files in $dir match $MANIFEST"
}

download() {
  local dir="$1" staging name
  mkdir -p "$dir"
  staging="$(mktemp -d "$dir/.get-conformance.XXXXXX")"
  trap 'rm -rf "$staging"' EXIT
  while read -r _ name; do
    mkdir -p "$staging/$(dirname "$name")"
    curl -fsSL --retry 3 -o "$staging/$name" "$BASE/$(source_path "$name")" \
      || { echo "cannot download $BASE/$(source_path "$name")" >&2; exit 1; }
  done < "$MANIFEST"
  check "$staging" || { echo "nothing was written to $dir" >&2; exit 1; }
  (cd "$staging" && find . -type f) | while read -r name; do
    mkdir -p "$dir/$(dirname "$name")"
    mv "$staging/$name" "$dir/$name"
  done
  echo "lava-dl golden files (commit ${COMMIT:0:7}) are in $dir"
}

case "${1:-}" in
  --check) [ $# -eq 2 ] || usage; check "$2" ;;
  -*|"") usage ;;
  *) [ $# -eq 1 ] || usage; download "$1" ;;
esac

#!/usr/bin/env bash
# Runs every test: Rust unit and end-to-end tests (real scheduler and executor processes), then
# the pytest suites against a standalone and a multi-process cluster. `scripts/test.sh rust` or
# `scripts/test.sh python` runs one half.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
which="${1:-all}"
status=0

if [ "$which" = all ] || [ "$which" = rust ]; then
  printf '\n== Rust tests\n'
  start=$SECONDS
  cargo test --workspace -- --test-threads=1 || status=1
  echo "Rust tests: $((SECONDS - start)) s"
fi

if [ "$which" = all ] || [ "$which" = python ]; then
  printf '\n== Python tests\n'
  start=$SECONDS
  .venv/bin/python -m pytest -q -p no:cacheprovider tests/python \
    --doctest-modules python-client/python/pickleball --timeout=600 --timeout-method=thread || status=1
  echo "Python tests: $((SECONDS - start)) s"
fi
exit $status

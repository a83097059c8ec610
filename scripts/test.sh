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

  # The executor must also build and run against a CPython without own-GIL sub-interpreters
  # (< 3.12), running row-wise UDFs in the main interpreter: its unit tests and lane test
  # against 3.11 where one is installed, in a target dir of its own, dependencies unoptimized
  # (they are built only for this, and the tests are small).
  python311=$(python_minor 11)
  if [ -n "$python311" ] && [ -x "$PICKLEBALL_VENV_PY311/bin/python" ]; then
    printf '\n== The executor against Python 3.11\n'
    start=$SECONDS
    PICKLEBALL_VENV="$PICKLEBALL_VENV_PY311" CARGO_TARGET_DIR="$PICKLEBALL_TARGET_PY311" \
      PYO3_PYTHON="$python311" cargo test -p pickleball-executor --lib --test lanes \
      --config 'profile.dev.package."*".opt-level=0' -- --test-threads=1 || status=1
    echo "Python 3.11 executor tests: $((SECONDS - start)) s"
  else
    echo "no Python 3.11 (or no venv for it) here: the executor without sub-interpreters is not tested"
  fi
fi

if [ "$which" = all ] || [ "$which" = python ]; then
  printf '\n== Python tests\n'
  start=$SECONDS
  .venv/bin/python -m pytest -q -p no:cacheprovider tests/python \
    --doctest-modules python-client/python/pickleball --timeout=600 --timeout-method=thread || status=1
  echo "Python tests: $((SECONDS - start)) s"
fi
exit $status

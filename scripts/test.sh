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

  # The executor must also build against a CPython without own-GIL sub-interpreters (< 3.12),
  # where it runs row-wise UDFs in the main interpreter; checked (not linked) against 3.11 when
  # one is installed, in a target dir of its own.
  python311=$(command -v python3.11 || true)
  if command -v pyenv >/dev/null && prefix=$(pyenv prefix 3.11 2>/dev/null); then
    python311="$(echo "$prefix" | head -1)/bin/python3.11"
  fi
  if [ -n "$python311" ] && [ -x "$python311" ]; then
    printf '\n== The executor against Python 3.11 (cargo check)\n'
    start=$SECONDS
    CARGO_TARGET_DIR="$PICKLEBALL_CACHE/target-py311" PYO3_PYTHON="$python311" \
      cargo check -p pickleball-executor --lib --bins --tests || status=1
    echo "Python 3.11 check: $((SECONDS - start)) s"
  else
    echo "no Python 3.11 here: the executor's build against Python < 3.12 is not checked"
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

#!/usr/bin/env bash
# Everything `make demo` and `make test` need, installed only where missing:
# a CPython >= 3.12 (3.13 preferred), a venv and a cargo target dir in the cache dir, the pinned
# Python packages, one dev-profile build of the whole workspace, and the pickleball package
# installed into the venv (with .venv in the clone pointing at it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
mkdir -p "$PICKLEBALL_CACHE"

step() { printf '\n== %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing; install a Rust toolchain (rustup) first" >&2
  exit 1
fi

if [ ! -x "$PICKLEBALL_VENV/bin/python" ]; then
  step "creating the venv in $PICKLEBALL_VENV"
  python=$(scripts/find-python.sh)
  "$python" -m venv "$PICKLEBALL_VENV"
fi
ln -sfn "$PICKLEBALL_VENV" .venv

stamp="$PICKLEBALL_VENV/.requirements-$(sha1sum requirements-dev.txt | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  step "installing Python packages"
  "$PICKLEBALL_VENV/bin/pip" install -q --disable-pip-version-check -r requirements-dev.txt
  touch "$stamp"
fi

# Optional venvs of older Pythons, skipped where that Python is not installed: 3.12 for the
# cross-version test, 3.11 for the executor built without sub-interpreters (scripts/test.sh).
older_venv() {  # minor, venv dir, requirements file, what for
  local python stamp
  python=$(python_minor "$1")
  [ -n "$python" ] || return 0
  stamp="$2/.requirements-$(sha1sum "$3" | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    step "creating the Python 3.$1 venv $4"
    # Optional: where it cannot be made, it is removed and the tests that use it are skipped.
    if "$python" -m venv "$2" && "$2/bin/pip" install -q --disable-pip-version-check -r "$3"
    then
      touch "$stamp"
    else
      echo "setup: the Python 3.$1 venv could not be made; the tests using it are skipped" >&2
      rm -rf "$2"
    fi
  fi
}
older_venv 12 "$PICKLEBALL_VENV_PY312" requirements-py312.txt "for the cross-version test"
older_venv 11 "$PICKLEBALL_VENV_PY311" requirements-py311.txt "for the executor without sub-interpreters"

step "building the workspace (dev profile, shared by tests, binaries and the extension)"
start=$SECONDS
cargo build --workspace --all-targets
echo "cargo build: $((SECONDS - start)) s"

step "installing the pickleball package into the venv"
start=$SECONDS
(cd python-client && VIRTUAL_ENV="$PICKLEBALL_VENV" "$PICKLEBALL_VENV/bin/maturin" develop \
  --profile dev -q)
"$PICKLEBALL_VENV/bin/python" -c "import pickleball" 
echo "maturin develop: $((SECONDS - start)) s"

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

# Optional: a Python 3.12 venv for the cross-version test; skipped where no 3.12 exists.
python312=$(command -v python3.12 || true)
if command -v pyenv >/dev/null && prefix=$(pyenv prefix 3.12 2>/dev/null); then
  python312="$(echo "$prefix" | head -1)/bin/python3.12"
fi
if [ -n "$python312" ] && [ -x "$python312" ]; then
  stamp312="$PICKLEBALL_VENV_PY312/.requirements-$(sha1sum requirements-py312.txt | cut -c1-12)"
  if [ ! -f "$stamp312" ]; then
    step "creating the Python 3.12 venv for the cross-version test"
    "$python312" -m venv "$PICKLEBALL_VENV_PY312"
    "$PICKLEBALL_VENV_PY312/bin/pip" install -q --disable-pip-version-check \
      -r requirements-py312.txt && touch "$stamp312"
  fi
fi

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

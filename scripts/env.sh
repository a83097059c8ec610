# Shared settings of the set-up and test scripts; sourced, not run.
# The cargo target dir and the venv live in a cache dir outside the clone, so a fresh clone
# (CI) reuses earlier builds.
export PICKLEBALL_CACHE="${PICKLEBALL_CACHE:-$HOME/.cache/pickleball}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PICKLEBALL_CACHE/target}"
export PICKLEBALL_VENV="${PICKLEBALL_VENV:-$PICKLEBALL_CACHE/venv-py313}"
export PYO3_PYTHON="$PICKLEBALL_VENV/bin/python"
# Python 3.12 venv of the cross-version test (optional).
export PICKLEBALL_VENV_PY312="${PICKLEBALL_VENV_PY312:-$PICKLEBALL_CACHE/venv-py312}"
# Python 3.11 venv and target dir of the executor built without sub-interpreters (optional).
export PICKLEBALL_VENV_PY311="${PICKLEBALL_VENV_PY311:-$PICKLEBALL_CACHE/venv-py311}"
export PICKLEBALL_TARGET_PY311="${PICKLEBALL_TARGET_PY311:-$PICKLEBALL_CACHE/target-py311}"
export PICKLEBALL_BIN_DIR="$CARGO_TARGET_DIR/debug"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Prints the path of an installed CPython 3.MINOR (pyenv's, else on PATH), or nothing.
python_minor() {
  local found prefix
  found=$(command -v "python3.$1" || true)
  if command -v pyenv >/dev/null && prefix=$(pyenv prefix "3.$1" 2>/dev/null); then
    found="$(echo "$prefix" | head -1)/bin/python3.$1"
  fi
  if [ -n "$found" ] && [ -x "$found" ]; then echo "$found"; fi
}

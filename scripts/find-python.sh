#!/usr/bin/env bash
# Prints the path of a CPython >= 3.12 (3.13 preferred) built with a shared libpython, which
# the executor needs to embed Python. Builds 3.13 from Debian's source package as a last
# resort (about 7 minutes on 2 cores).
set -euo pipefail

usable() {
  "$1" - <<'PY' 2>/dev/null
import sys, sysconfig
ok = sys.version_info >= (3, 12) and sysconfig.get_config_var("Py_ENABLE_SHARED") == 1
sys.exit(0 if ok else 1)
PY
}

candidates=()
[ -n "${PICKLEBALL_PYTHON:-}" ] && candidates+=("$PICKLEBALL_PYTHON")
for minor in 13 12; do
  for dir in "$HOME"/.pyenv/versions/3."$minor"*/bin /usr/local/bin /usr/bin "${PICKLEBALL_CACHE:-$HOME/.cache/pickleball}/python-3.$minor/bin"; do
    [ -x "$dir/python3.$minor" ] && candidates+=("$dir/python3.$minor")
  done
  command -v "python3.$minor" >/dev/null 2>&1 && candidates+=("$(command -v "python3.$minor")")
done
for py in "${candidates[@]}"; do
  if usable "$py"; then echo "$py"; exit 0; fi
done

# Last resort: build CPython 3.13 with a shared libpython from Debian's source package.
prefix="${PICKLEBALL_CACHE:-$HOME/.cache/pickleball}/python-3.13"
echo "find-python: no CPython >= 3.12 with a shared libpython; building 3.13 into $prefix" >&2
work=$(mktemp -d)
(
  cd "$work"
  apt-get update -qq >&2
  apt-get install -y -qq dpkg-dev build-essential libssl-dev libffi-dev zlib1g-dev libbz2-dev \
    liblzma-dev libsqlite3-dev libreadline-dev >&2
  grep -q '^deb-src .*trixie' /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null || \
    echo "deb-src http://deb.debian.org/debian trixie main" > /etc/apt/sources.list.d/pickleball-src.list
  apt-get update -qq >&2
  apt-get source --download-only python3.13 >&2
  dpkg-source -x python3.13_*.dsc src >&2
  cd src
  ./configure --enable-shared --prefix="$prefix" LDFLAGS="-Wl,-rpath,$prefix/lib" >&2
  make -j"$(nproc)" >&2
  make install >&2
)
rm -rf "$work"
usable "$prefix/bin/python3.13" && echo "$prefix/bin/python3.13"

#!/usr/bin/env bash
# Style gates: cargo fmt, clippy with warnings as errors, ruff.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
.venv/bin/ruff check python-client/python tests/python benchmarks
.venv/bin/ruff format --check python-client/python tests/python benchmarks

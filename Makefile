# Two commands do everything on a fresh machine:
#   make demo   install what is missing, build, run the main job on a standalone cluster
#   make test   the same set-up, then every test
.PHONY: setup demo test test-rust test-python lint fmt

setup:
	@scripts/setup.sh

demo: setup
	@.venv/bin/pickleball demo

test: setup
	@scripts/test.sh

test-rust:
	@scripts/test.sh rust

test-python:
	@scripts/test.sh python

lint: setup
	@scripts/lint.sh

fmt:
	@. scripts/env.sh && cargo fmt --all && .venv/bin/ruff format python-client/python tests/python benchmarks

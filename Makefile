# Everything runs from .venv, created on first use with only a system Python.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# What the demo needs: qllm and the server extra, not the development tools.
RUNTIME := $(VENV)/.runtime

.PHONY: demo test test-serial lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(RUNTIME): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[server]'
	touch $(RUNTIME)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP) $(RUNTIME)

# The demo works in a file of its own, examples/demo.db, and prints where it is.
demo: $(RUNTIME)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

# The suite mostly waits (on servers, fsyncs, subprocesses), so it runs in JOBS
# worker processes (pytest-xdist); docs/development.md has the measurements.
# loadscope: a module's tests run on one worker (its module fixtures start once), in
# file order. Then the tests marked alone (they measure time) run by themselves.
JOBS ?= 3
test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) --dist loadscope --no-loadscope-reorder -m "not alone" --durations=15
	$(BIN)/python -m pytest -p no:xdist -m alone

# One process, in file order: for -x, --pdb and reading a failure's output.
test-serial: $(STAMP)
	$(BIN)/python -m pytest -p no:xdist

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/bench.py
	$(BIN)/python bench/http_bench.py
	$(BIN)/python bench/pg_bench.py
	$(BIN)/python bench/training_bench.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis

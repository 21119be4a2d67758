# Everything runs from .venv, created on first use with only a system Python.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-serial lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

# The suite mostly waits (on servers, fsyncs, subprocesses), so it runs in JOBS
# worker processes (pytest-xdist); README's Tests section has the measurements.
# loadgroup: tests marked xdist_group(name) run on one worker; in file order,
# with the alone tests last (tests/conftest.py), not the biggest group first.
JOBS ?= 3
test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) --dist loadgroup --no-loadscope-reorder

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

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis

# gistsync: `make run` brings the suite up, `make test` proves it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint lock clean bench

$(STAMP): pyproject.toml requirements-dev.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

install: $(STAMP)

## Start the three services (and the simulators when no API tokens are set).
run: install
	$(BIN)/python -m sandbox.launch

## The whole test suite, lint and type checks included.
test: install lint
	$(BIN)/pytest

## What a sync costs, how fast it is, how it grows (about 12 minutes; see BENCHMARKS.md).
bench: install
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## Re-pin the dependencies after changing pyproject.toml.
lock: install
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url -o requirements.lock pyproject.toml
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --extra dev -o requirements-dev.lock pyproject.toml

clean:
	rm -rf $(VENV) .run .pytest_cache .mypy_cache .ruff_cache

# gistsync: `make run` brings the suite up, `make test` proves it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test test-fast test-deploy lint lock clean bench

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

## Everything that needs no broker, browser or process and no long fuzzing: seconds, on
## every core (pytest-xdist).
test-fast: install
	$(BIN)/pytest -q -n auto -m "not broker and not browser and not processes and not slow"

## The compose stack on a real Docker engine of its own (about 10 minutes; root, see README).
test-deploy: install
	bash tests/deploy/compose/run.sh

## What a sync costs, how fast it is, how it grows (about 12 minutes; see BENCHMARKS.md).
bench: install
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/zizmor --offline --quiet --min-severity low .github

## Re-pin the dependencies (with hashes) after changing pyproject.toml; PyPI only.
LOCK := PIP_FIND_LINKS= PIP_CONFIG_FILE=/dev/null $(BIN)/pip-compile --quiet --strip-extras \
	--generate-hashes --allow-unsafe --no-emit-index-url --no-emit-find-links
lock: install
	$(LOCK) -o requirements.lock pyproject.toml
	$(LOCK) --extra dev -o requirements-dev.lock pyproject.toml
	echo "hatchling==$$(sed -nE 's/.*"hatchling==([^"]+)".*/\1/p' pyproject.toml)" \
		| $(LOCK) -o requirements-build.lock -

clean:
	rm -rf $(VENV) .run .pytest_cache .mypy_cache .ruff_cache

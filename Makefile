# Antrian — developer entry points.
#
#   make run        start the queue service with $(CONFIG)
#   make test       run the test suite (extra pytest flags via PYTEST_ARGS=...)
#   make test-fast  the suite without the tests marked slow (tests/conftest.py says which)
#
# Both bootstrap .venv on first use and reinstall it whenever pyproject.toml changes:
# `run` (and `demo`, `check-config`) install what running needs (`pip install -e .`),
# `test` (and `test-fast`, `lint`, `format`, `bench`, `audit`) the test and lint tools too
# ('.[dev]').

PYTHON      ?= python3
VENV        ?= .venv
CONFIG      ?= config/example-hall.toml
PYTEST_ARGS ?=
SPEED       ?= 30

BIN       := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.DEFAULT_GOAL := help

.PHONY: help venv run demo test test-fast lint format bench audit check-config clean

help:
	@echo "make run           start the service (CONFIG=$(CONFIG))"
	@echo "make demo          the service plus a simulated hall day (SPEED=30)"
	@echo "make test          run pytest (PYTEST_ARGS='...')"
	@echo "make test-fast     pytest without the slow tests (faults, soak, fuzzing, live tools)"
	@echo "make lint          ruff check, ruff format --check, mypy"
	@echo "make format        apply ruff format and ruff --fix"
	@echo "make bench         run the benchmark (python -m bench)"
	@echo "make audit         known vulnerabilities in the dependencies (needs pypi.org)"
	@echo "make check-config  validate CONFIG without starting the service"
	@echo "make clean         remove .venv, caches and build output"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# What running needs: the [project] dependencies.
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e .
	@touch $@

# What testing needs as well: the dev extra (pytest, ruff, mypy, playwright, ...). It
# includes everything running needs, so it stands for the run stamp too.
$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	@touch $@ $(RUN_STAMP)

venv: $(DEV_STAMP)

run: $(RUN_STAMP)
	$(BIN)/queue-service run --config $(CONFIG)

demo: $(RUN_STAMP)
	$(BIN)/python scripts/demo.py --speed $(SPEED)

test: $(DEV_STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test-fast: $(DEV_STAMP)
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(DEV_STAMP)
	$(BIN)/python -m bench

# pip-audit asks PyPI's vulnerability data over the network; --strict fails when it cannot,
# so an offline machine never reports "no known vulnerabilities" by accident.
audit: $(DEV_STAMP)
	$(BIN)/python -m pip install --quiet 'pip-audit>=2.10'
	$(BIN)/pip-audit --strict --progress-spinner off --skip-editable

check-config: $(RUN_STAMP)
	$(BIN)/queue-service check-config $(CONFIG)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

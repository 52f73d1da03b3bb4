# wslbench: every target sets itself up (virtual environment, pinned install) when needed.
# Setup is idempotent: a stamp per extra, redone only when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_WORKERS ?= 2
HOST ?= 127.0.0.1
PORT ?= 8866

.PHONY: setup setup-dev chromium demo test test-fast lab dashboards lint clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.stamp-base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

$(VENV)/.stamp-dev: pyproject.toml $(VENV)/.stamp-base
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.stamp-base
setup-dev: $(VENV)/.stamp-dev

# Debian's chromium for the browser tests (never `playwright install`).
chromium:
	@bash .ci/ensure-chromium.sh

## The main job: run every notebook's demo preset into runs/ and print a summary.
demo: $(VENV)/.stamp-base
	$(BIN)/wslbench demo

## The whole test suite (unit, notebooks in smoke mode, browser tests).
test: $(VENV)/.stamp-dev chromium
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup

test-fast: $(VENV)/.stamp-dev
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -m "not browser and not notebook and not slow"

lab: $(VENV)/.stamp-base
	$(BIN)/jupyter lab --ip=$(HOST) notebooks

dashboards: $(VENV)/.stamp-base
	$(BIN)/wslbench dashboards --host $(HOST) --port $(PORT)

lint: $(VENV)/.stamp-dev
	$(BIN)/ruff check wslbench tests benchmarks

clean-venv:
	rm -rf $(VENV)

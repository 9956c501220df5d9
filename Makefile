# Two commands do all set-up on a fresh machine:
#   make lab   - virtual environment, install, demo checkpoint (cached), JupyterLab on notebooks/
#   make test  - virtual environment if missing, install (always: an undeclared dependency fails here), all tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The demo checkpoint the lessons use; OFFLOAD_LAB_SIZE overrides it for lessons and `make lab` alike.
OFFLOAD_LAB_SIZE ?= 1GB
PYTEST_ARGS ?=

.PHONY: lab test install checkpoint lint sync-lessons benchmark screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -e ".[dev]"

checkpoint: install
	OFFLOAD_LAB_SIZE=$(OFFLOAD_LAB_SIZE) $(BIN)/offload-lab make-checkpoint --demo

# 127.0.0.1 only, and Jupyter's own token auth (it prints the URL with the token).
lab: checkpoint
	OFFLOAD_LAB_SIZE=$(OFFLOAD_LAB_SIZE) $(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=notebooks

# Without a browser the browser tests are skipped and the run ends saying so and how to get them; CI (.ci/run)
# sets OFFLOAD_LAB_REQUIRE_BROWSER=1 so that there a missing browser fails. One part alone:
#   make test PYTEST_ARGS="-m browser"   or   PYTEST_ARGS="tests/test_memory.py"   or   PYTEST_ARGS="widgetlib"
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .

sync-lessons: install
	$(BIN)/jupytext --sync lessons/*.py

# Refresh the README's pictures (taken by the browser tests mid-load).
screenshots: install
	OFFLOAD_LAB_SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest tests/browser -m browser -q

benchmark: install
	$(BIN)/python benchmarks/bench_loaders.py

clean:
	rm -rf $(VENV) .pytest_cache

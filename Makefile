# Two commands do all set-up on a fresh machine:
#   make lab   - virtual environment, Offload Lab and its runtime dependencies only, both demo checkpoints
#                (safetensors and .bin, cached), JupyterLab on notebooks/
#   make test  - virtual environment if missing, install with the dev extra (always: an undeclared dependency
#                fails here), all tests
#   make site  - every lesson executed at a small size, rendered read-only to site/ (figures included)
#   make vm-check - lesson 05 and the limit tests as a normal user in a Debian 12 VM (systemd, cgroup v2; KVM)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The demo checkpoint the lessons use; OFFLOAD_LAB_SIZE overrides it for lessons and `make lab` alike.
OFFLOAD_LAB_SIZE ?= 1GB
PYTEST_ARGS ?=
# make site: the checkpoint size the lessons run with (small: the pages show the figures, not a benchmark).
SITE_SIZE ?= 60MB

.PHONY: vm-check lab test install install-lab checkpoint site lint sync-lessons benchmark screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

# What a learner needs and nothing else (no test tools, no browser driver).
install-lab: $(BIN)/python
	$(BIN)/python -m pip install -e .

# Everything, the dev extra included: what the tests, lint, the site and the benchmarks use.
install: $(BIN)/python
	$(BIN)/python -m pip install -e ".[dev]"

# Both demo checkpoints the lessons load (03 and 04 also load the .bin one), each with a progress bar; an
# existing complete build in the cache is reused, not rebuilt.
checkpoint: install-lab
	OFFLOAD_LAB_SIZE=$(OFFLOAD_LAB_SIZE) $(BIN)/offload-lab make-checkpoint --demo
	OFFLOAD_LAB_SIZE=$(OFFLOAD_LAB_SIZE) $(BIN)/offload-lab make-checkpoint --demo --format bin

# Jupyter refuses to start as root unless told to; in a container root is often the only user, so say so and go on.
AS_ROOT := $(shell [ "$$(id -u 2>/dev/null)" = 0 ] && echo yes)

# 127.0.0.1 only, and Jupyter's own token auth (it prints the URL with the token).
lab: checkpoint
	@$(if $(AS_ROOT),echo "make lab: running as root (a container?): starting JupyterLab with --allow-root;" \
		"as a normal user it is not needed.")
	OFFLOAD_LAB_SIZE=$(OFFLOAD_LAB_SIZE) $(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=notebooks \
		$(if $(AS_ROOT),--allow-root)

# Without a browser the browser tests are skipped and the run ends saying so and how to get them; CI (.ci/run)
# sets OFFLOAD_LAB_REQUIRE_BROWSER=1 so that there a missing browser fails. One part alone:
#   make test PYTEST_ARGS="-m browser"   or   PYTEST_ARGS="tests/test_memory.py"   or   PYTEST_ARGS="widgetlib"
test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Read-only pages of every lesson, executed here at SITE_SIZE, with static copies of the live figures.
site: install
	OFFLOAD_LAB_SIZE=$(SITE_SIZE) $(BIN)/python tools/build_site.py --out site

lint: install
	$(BIN)/ruff check .

sync-lessons: install
	$(BIN)/jupytext --sync lessons/[0-9][0-9]_*.py

# Refresh the README's pictures (taken by the browser tests mid-load).
screenshots: install
	OFFLOAD_LAB_SCREENSHOTS_DIR=docs/screenshots $(BIN)/python -m pytest tests/browser -m browser -q

benchmark: install
	$(BIN)/python benchmarks/bench_loaders.py

clean:
	rm -rf $(VENV) .pytest_cache site

# Lesson 05 and the limit tests as a normal user on a Debian 12 VM (systemd, cgroup v2), booted with KVM: not
# part of `make test` (it needs /dev/kvm and minutes). The image is built once, cached outside the repository.
# VM_PYTHON=/path/to/venv/bin/python uses that environment instead of installing .venv.
VM_PYTHON ?=
vm-check: $(if $(VM_PYTHON),,install)
	VM_PYTHON=$(or $(VM_PYTHON),$(abspath $(BIN))/python) tools/vm_check.sh

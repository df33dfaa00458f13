# The two commands of the README: `make demo` and `make test`.
# Each creates .venv when missing (with uv inside it when uv is absent), syncs the lock, then runs.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null || echo $(VENV)/bin/uv)
# A directory of local wheels (pip's find-links) holds the CPU build of torch on machines that have one.
export UV_FIND_LINKS ?= $(PIP_FIND_LINKS)
export UV_PROJECT_ENVIRONMENT := $(VENV)
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1

.PHONY: demo test test-slow venv bench lint clean-outputs gpu-check

$(VENV)/.synced: pyproject.toml uv.lock
	@test -x $(PY) || python3 -m venv $(VENV)
	@command -v uv >/dev/null 2>&1 || test -x $(VENV)/bin/uv || $(PY) -m pip install --quiet uv
	@if $(UV) sync --frozen --quiet 2>/dev/null; then :; else \
	  echo "locked local torch wheel not found here: installing torch==2.13.0 from the registry"; \
	  $(PY) -m pip install --quiet torch==2.13.0 && $(UV) sync --frozen --quiet --inexact --no-install-package torch; fi
	@touch $@

venv: $(VENV)/.synced

demo: venv
	$(VENV)/bin/drivefine retrain

# The suite without the long end-to-end runs (marked slow); test-slow runs those; .ci/run runs both.
test: venv
	$(PY) -m pytest -q -m "not slow"

test-slow: venv
	$(PY) -m pytest -q -m slow

# ruff (rules and per-file exceptions in pyproject.toml) and pyright in basic mode over its include list.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pyright

bench: venv
	for b in bench/*.py; do \
	  if [ "$$b" = bench/navsim_conformance.py ] && [ -z "$$NAVSIM_REF_PYTHON" ]; then \
	    echo "skipping $$b: set NAVSIM_REF_PYTHON to a NAVSIM v1.1 environment's python to run it"; continue; fi; \
	  if [ "$$b" = bench/gpu_check.py ]; then echo "skipping $$b: make gpu-check runs it on a CUDA machine"; continue; fi; \
	  case "$$b" in bench/_*) continue;; bench/validation_recipe.py|bench/rl_probe.py|bench/rl_signal.py|bench/gpu_ladder.py) \
	    echo "skipping $$b: it reads a ladder clone (bench/ladder.py --dest DIR), run it with --data DIR"; continue;; esac; \
	  $(PY) $$b || exit 1; done

# On a CUDA machine: SFT / RL steps at a realistic size in bf16, decode latency per mode, the scorer; one table.
# Without CUDA it says so and fails (no numbers); `$(PY) bench/gpu_check.py --device cpu --small` tests the path.
gpu-check: venv
	$(PY) bench/gpu_check.py

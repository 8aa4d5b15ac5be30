# The two commands a learner needs: `make lab` and `make test`. Each builds .venv on first use
# (and again whenever requirements.txt or pyproject.toml is newer than the venv).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements-installed
LAB_ARGS ?=
# Jupyter refuses to run as root (containers, some VMs) unless told it is deliberate.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)
PYTEST_ARGS ?=

# The kernel's debugger otherwise warns about frozen modules on every start.
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: lab test lint outputs exercises bench clean

$(STAMP): requirements.txt pyproject.toml jupyter/overrides.json jupyter/jupyter_server_config.json
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "This course needs Python 3.11 or newer, and $(PYTHON) is " + sys.version.split()[0] + ". Try: make PYTHON=python3.11 ...")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m coursetools.jupyter_setup
	touch $@

## make lab: open the course in JupyterLab (start with notebooks/00_asyncio_in_jupyter.ipynb)
lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=. $(ALLOW_ROOT) $(LAB_ARGS)

## make test: lint, server and checker unit tests, notebooks under nbval, exercises executed
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

## make outputs: re-execute lessons and solutions in place, then regenerate the exercises
outputs: $(STAMP)
	$(BIN)/python -m coursetools.execute notebooks solutions
	$(BIN)/python -m coursetools.make_exercises

## make exercises: regenerate exercises/ from solutions/ (no execution)
exercises: $(STAMP)
	$(BIN)/python -m coursetools.make_exercises

## make bench: time every notebook and the server (a benchmark, not a test)
bench: $(STAMP)
	$(BIN)/python -m coursetools.bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

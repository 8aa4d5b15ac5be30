# The two commands a learner needs: `make lab` and `make test`. Each builds .venv on first use
# (and again whenever requirements.txt, pyproject.toml or the Jupyter settings are newer than
# the venv). The work is done by course.py, which Windows learners run directly:
# `py course.py lab`.

PYTHON ?= python3
COURSE := $(PYTHON) course.py
LAB_ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup lab test lint outputs exercises site bench clean

## make setup: build (or refresh) .venv only
setup:
	$(COURSE) setup

## make lab: open the course in JupyterLab, on lesson 00
lab:
	$(COURSE) lab $(LAB_ARGS)

## make test: lint, server and checker unit tests, notebooks under nbval, exercises executed
test:
	$(COURSE) test $(PYTEST_ARGS)

lint:
	$(COURSE) lint

## make outputs: re-execute lessons and solutions in place, then regenerate the exercises
outputs:
	$(COURSE) outputs

## make exercises: regenerate exercises/ from solutions/ (no execution)
exercises:
	$(COURSE) exercises

## make site: build the course website from the stored notebooks into _build/site
site:
	$(COURSE) site

## make bench: time every notebook, the server and a workshop's load (a benchmark, not a test)
bench:
	$(COURSE) bench

clean:
	$(COURSE) clean

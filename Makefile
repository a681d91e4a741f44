# One-command entry points for a fresh machine: `make run` (the synthesis pipeline on the bundled
# sample images) and `make test` (the test suite). Each creates the virtual environment first, with
# the exact versions of requirements.lock (`make lock` refreshes it; see README "Exact versions").
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LOCK := requirements.lock
# torch is installed on its own, at the locked version: the CPU build this machine type ships by
# default; a GPU user sets TORCH_SPEC to a CUDA build of the same version (see README).
TORCH_VERSION := $(shell sed -n 's/^torch==\([^ ]*\).*/\1/p' $(LOCK))
TORCH_SPEC ?= torch==$(TORCH_VERSION)
PIP_VERSION := $(shell sed -n 's/^pip==\([^ ]*\).*/\1/p' $(LOCK))
# The project's own build runs with the lock's setuptools too. setuptools prints a 13-line notice
# ("Editable installation") in every editable mode and has no setting for it; it is a UserWarning, so
# this one step filters that category.
QUIET_EDITABLE := PYTHONWARNINGS=ignore::UserWarning

.PHONY: setup run test test-slow test-all lint report bench lock
setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "pip==$(PIP_VERSION)"
	$(PY) -m pip install -q -c $(LOCK) $(TORCH_SPEC)
	$(QUIET_EDITABLE) $(PY) -m pip install -q -c $(LOCK) --build-constraint $(LOCK) -e ".[dev,dataflow]"
	touch $@

run: setup
	$(PY) -m pipelines.synthesize --runner=DirectRunner
	@echo "look at it: $(VENV)/bin/spac report data/SYNTH-PEDES --output data/SYNTH-PEDES-report.html  (or: make report)"

# a page about the corpus of `make run`: contact sheet, plots, job counters, accuracy against the samples' labels
report: setup
	$(VENV)/bin/spac report data/SYNTH-PEDES --output data/SYNTH-PEDES-report.html --labels spac/assets/samples/labels.jsonl

# the suite but the tests marked slow (each trains for more than 30 s) or end_to_end, so a change is checked in
# minutes; CI (.ci/run) runs `make test` and then `make test-slow`
test: setup
	$(PY) -m pytest -q -m "not slow and not end_to_end"

test-slow: setup
	$(PY) -m pytest -q -m "slow or end_to_end"

test-all: test test-slow

# ruff: lint and the format check (pyproject.toml); `$(VENV)/bin/ruff format .` applies the format
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# every stage against its limit, measured in one process (ratios, medians of alternated rounds); a few minutes
bench: setup
	$(PY) benchmarks/caption_throughput.py
	$(PY) benchmarks/shards_throughput.py
	$(PY) benchmarks/pipeline_throughput.py
	$(PY) benchmarks/pretrain_loader.py
	$(PY) benchmarks/mllm_throughput.py
	$(PY) benchmarks/neural_captioner_throughput.py

# refresh the lock: the newest releases inside setup.cfg's ranges and requirements.in's pins (torch's
# local build label dropped, so a CUDA build of the same version satisfies it too)
lock: setup
	$(PY) -m pip install -q -c $(LOCK) pip-tools
	$(PY) -m piptools compile -q --upgrade --strip-extras --allow-unsafe --extra dev --extra dataflow \
		--no-emit-index-url --no-emit-find-links -o $(LOCK) setup.cfg requirements.in
	sed -i 's/^torch==\([^+ ]*\)+[^ ]*/torch==\1/' $(LOCK)
	@echo "the worker image's Beam SDK tag follows the lock: docker/Dockerfile ARG BEAM_VERSION (tests/test_lock.py checks)"

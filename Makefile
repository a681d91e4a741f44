# One-command entry points for a fresh machine: `make run` (the synthesis pipeline on the bundled
# sample images) and `make test` (the test suite). Each creates the virtual environment first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# This machine type ships a CPU build of torch 2.13.0; a GPU user can set TORCH_SPEC (see README).
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup run test report bench
setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev,dataflow]"
	touch $@

run: setup
	$(PY) -m pipelines.synthesize --runner=DirectRunner
	@echo "look at it: $(VENV)/bin/spac report data/SYNTH-PEDES --output data/SYNTH-PEDES-report.html  (or: make report)"

# a page about the corpus of `make run`: contact sheet, plots, job counters, accuracy against the samples' labels
report: setup
	$(VENV)/bin/spac report data/SYNTH-PEDES --output data/SYNTH-PEDES-report.html --labels spac/assets/samples/labels.jsonl

test: setup
	$(PY) -m pytest -q

# every stage against its limit, measured in one process (ratios, medians of alternated rounds); a few minutes
bench: setup
	$(PY) benchmarks/caption_throughput.py
	$(PY) benchmarks/shards_throughput.py
	$(PY) benchmarks/pipeline_throughput.py
	$(PY) benchmarks/pretrain_loader.py

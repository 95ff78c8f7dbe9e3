# paretonas: `make quickstart` sets up and runs a quick search; `make test` runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch: `torch==X` prefers a local +cpu wheel when pip's find-links has one;
# elsewhere set TORCH_INDEX=https://download.pytorch.org/whl/cpu to avoid the CUDA build.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
# `make setup EXTRAS=gpu,test` on an NVIDIA machine (onnxruntime-gpu instead of onnxruntime).
EXTRAS ?= cpu,test

.PHONY: setup quickstart test lint benchmark clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -qq --upgrade pip
	$(PY) -m pip install -qq "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -qq -e ".[$(EXTRAS)]"
	touch $@

quickstart: setup
	$(VENV)/bin/paretonas run configs/quickstart.yaml --overwrite

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

benchmark: setup
	$(PY) benchmarks/quickstart_overhead.py

clean:
	rm -rf $(VENV) paretonas-results mlflow.db mlartifacts mlruns

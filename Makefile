# Everything runs from a local virtual environment that the first target creates.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

PYTEST_ARGS ?=
UNPINNED := .venv-unpinned

.PHONY: install quickstart test test-slow test-notebooks test-all test-unpinned lint ui benchmark

$(STAMP): pyproject.toml requirements/constraints.txt requirements/reference.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements/constraints.txt -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps -r requirements/reference.txt  # parity-test references only
	touch $(STAMP)

install: $(STAMP)

## The main job, offline on the embedded shapes backbone (minutes on a CPU): collect a small NPD (or reuse it), train
## NPNet, compare it with Gaussian, CFG, the shipped NPNet and NoiseRefine and search methods; then `make ui`.
quickstart: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m goldennoise fit --config configs/quickstart.yaml

## The fast test suite (offline, CPU, a few minutes).
test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

## Only the slow tests (real-size architectures, the long effect and convergence checks; real weights skip if absent).
test-slow: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m "slow and not gpu" $(PYTEST_ARGS)

## The notebooks, executed top to bottom in a fresh kernel (about a minute).
test-notebooks: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m notebooks $(PYTEST_ARGS)

## Everything, the slow and GPU tests included.
test-all: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m "" $(PYTEST_ARGS)

## The fast suite in a fresh environment from pyproject.toml alone: no constraints, no parity references (they skip).
test-unpinned:
	rm -rf $(UNPINNED)
	$(PYTHON) -m venv $(UNPINNED)
	$(UNPINNED)/bin/python -m pip install -q --upgrade pip
	$(UNPINNED)/bin/python -m pip install -q -e '.[dev]'
	HF_HUB_OFFLINE=1 $(UNPINNED)/bin/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check goldennoise tests benchmarks

## Compare runs in the MLflow UI at http://127.0.0.1:5055 (the "Machine learning" view: runs, not GenAI traces)
ui: $(STAMP)
	@$(BIN)/python -m goldennoise.mlflow_ui sqlite:///mlruns.db http://127.0.0.1:5055 2>/dev/null
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --backend-store-uri sqlite:///mlruns.db \
		--workers 1 --host 127.0.0.1 --port 5055

benchmark: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/sampling_vs_diffusers.py

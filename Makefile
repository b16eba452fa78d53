# The two README commands: `make demo` and `make test`. Both install first (idempotent).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dcsched-installed
export HF_HUB_OFFLINE := 1

.PHONY: install install-gpu demo test test-slow experiments-quick bench gpu-check docs clean

install: $(STAMP)

# torch is installed alone first, exactly 2.13.0 (the local CPU wheel): never let pip pick a CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q "torch==2.13.0"
	$(BIN)/pip install --disable-pip-version-check -q -e ".[test,ray,docs]"
	$(BIN)/python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 'wrong torch ' + torch.__version__)"
	touch $(STAMP)

# Train the hybrid agent for 40 batches (recipes/demo.yaml: 194 s with the LP bound and the evaluation), evaluate it on 7 paper3
# test days against the rules, the planners and the LP bound, print the table and write the plots
# under runs/demo-*/eval/; then the paper's DRESS-SAC is one command (printed at the end).
demo: install
	$(BIN)/dcsched train recipes/demo.yaml
	@echo "the paper's method (DRESS-SAC, quick budget): $(BIN)/dcsched train recipes/quick/dress_sac.yaml"

test: install
	WANDB_MODE=disabled $(BIN)/python -m pytest -q

# The long integration tests kept out of the default suite (pytest -m slow; CI runs them too).
test-slow: install
	WANDB_MODE=disabled $(BIN)/python -m pytest -q -m slow

# Every experiment of recipes/experiments/ in its quick version (minutes each; CI runs this).
QUICK_OUT ?= runs/experiments-quick
experiments-quick: install
	WANDB_MODE=disabled $(BIN)/dcsched experiment all tier=quick wandb_mode=disabled out_dir=$(QUICK_OUT)

# The documentation site into site/ (strict: a broken link or a page missing from the nav fails).
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: install
	$(BIN)/python benchmarks/env_throughput.py
	$(BIN)/python benchmarks/train_throughput.py

# On a CUDA machine, with ITS python and torch (never the CPU venv): the project and its pure-Python
# dependencies, keeping that torch (requirements-gpu.txt names everything but torch).
GPU_PYTHON ?= python3
install-gpu:
	$(GPU_PYTHON) -m pip install --no-deps -e .
	$(GPU_PYTHON) -m pip install -r requirements-gpu.txt
	$(GPU_PYTHON) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'torch ' + torch.__version__ + ' sees no CUDA device')"

# CUDA == CPU, env throughput, SAC / DRESS-SAC training and the digits calibration with NVML energy:
# runs/gpu-check/gpu_check.{json,md} (under 6 minutes on one H100/H200; docs/performance.md).
gpu-check:
	WANDB_MODE=disabled $(GPU_PYTHON) -m pytest -q -m cuda tests/test_kernels.py tests/test_placement.py
	WANDB_MODE=disabled $(GPU_PYTHON) -m dcsched.cli bench gpu --out runs/gpu-check

clean:
	rm -rf runs build *.egg-info

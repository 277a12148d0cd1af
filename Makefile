# limner: `make serve` runs the service, `make test` runs the tests. Both install what they need first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.limner-installed
export LIMNER_MODEL_CACHE ?= $(CURDIR)/.cache/models
export LIMNER_DATA_DIR ?= $(CURDIR)/var
export RAY_USAGE_STATS_ENABLED ?= 0
# Keep in step with pipelines/tiny.py (_BUILD_VERSION, TINY_SEED).
TINY_MODEL := $(LIMNER_MODEL_CACHE)/tiny-sdxl-v1-s1234/model_index.json
TINY_CONTROLNET := $(LIMNER_MODEL_CACHE)/tiny-controlnet-v1-s1234/config.json

.PHONY: install model serve test bench lint migrate gc clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch goes first and stays pinned by constraints.txt: any other torch spec pulls a CUDA build.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(STAMP)

$(TINY_MODEL) $(TINY_CONTROLNET) &: $(STAMP)
	$(BIN)/python -m pipelines.tiny --controlnet --cache-dir $(LIMNER_MODEL_CACHE)

model: $(TINY_MODEL) $(TINY_CONTROLNET)

serve: model
	$(BIN)/serve run configs/serve.yaml

test: model
	$(BIN)/python -m tests $(PYTEST_ARGS)

bench: model
	$(BIN)/python load_tests/run_all.py

migrate: install
	$(BIN)/python -m serve_app.cli migrate

gc: install
	$(BIN)/python -m serve_app.cli gc

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .cache var

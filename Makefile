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

.PHONY: install model serve test coverage bench lint migrate gc clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch goes first and stays pinned by constraints.txt: any other torch spec pulls a CUDA build.
# skia-python (overlay drawing) loads libEGL and libGL, which its wheel does not bundle: Debian's libegl1 and
# libgl1, installed here when missing (as root, or with sudo).
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	@if ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1' || ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libGL.so.1'; then \
	  echo "installing libegl1 libgl1 (skia-python needs them)"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -q && \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q libegl1 libgl1; \
	fi
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

# Branch coverage of serve_app/, deployments/ and pipelines/ over the whole suite, in every process it starts:
# the `serve run` subprocesses of tests/e2e and their Ray replicas included (settings: [tool.coverage.*] in
# pyproject.toml). A Ray worker never runs atexit, so a .pth hook (tests/coverage_autosave.py, inert unless
# coverage runs) saves each replica's data every second. About twice as slow as `make test`.
# Prints the total; the HTML report is $(COVERAGE_DIR)/html/index.html, the XML one $(COVERAGE_DIR)/coverage.xml.
COVERAGE_DIR := build/coverage

coverage: model
	@site=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))') && \
	  cp tests/coverage_autosave.py "$$site/limner_coverage_autosave.py" && \
	  echo 'import os; (os.environ.get("COVERAGE_PROCESS_CONFIG") or os.environ.get("COVERAGE_PROCESS_START")) and __import__("limner_coverage_autosave")' > "$$site/zz_limner_coverage.pth"
	rm -rf $(COVERAGE_DIR) && mkdir -p $(COVERAGE_DIR)
	export COVERAGE_FILE=$(CURDIR)/$(COVERAGE_DIR)/.coverage; \
	  $(BIN)/python -m tests --cov --cov-report= $(PYTEST_ARGS); status=$$?; \
	  sleep 3; \
	  find $(COVERAGE_DIR) -name '.coverage.*' -size 0 -delete; \
	  if compgen -G '$(COVERAGE_DIR)/.coverage.*' >/dev/null; then $(BIN)/coverage combine -q --append; fi; \
	  $(BIN)/coverage report --sort=cover && \
	  $(BIN)/coverage xml -q && $(BIN)/coverage html -q && \
	  echo "coverage report: $(COVERAGE_DIR)/html/index.html" || status=1; \
	  exit $$status

bench: model
	$(BIN)/python load_tests/run_all.py

migrate: install
	$(BIN)/python -m serve_app.cli migrate

gc: install
	$(BIN)/python -m serve_app.cli gc

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .cache var $(COVERAGE_DIR)

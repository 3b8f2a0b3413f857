# Two commands set up and run everything on a fresh machine:
#   make demo   create .venv, install, then train-all (smoke protocol, embedded synthetic data),
#               profile and report
#   make test   create .venv, install with the test tools, run the test suite
#   make lint   ruff (lint and format check) and the import-linter layer contract, as .ci/run
#   make docs   the documentation site (docs/, mkdocs.yml) built with --strict into site/, as .ci/run;
#               make docs-serve serves it at http://127.0.0.1:8000 and rebuilds on every edit
# TORCH selects the PyTorch build: the default is the CPU wheel this project is developed on.

VENV ?= .venv
TORCH ?= torch==2.13.0
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hgbench-installed

.PHONY: install demo test lint docs docs-serve lspet lspet-real

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# The demo runs the original network's four depths; DEMO_VARIANTS= (empty) runs the whole registry.
DEMO_VARIANTS ?= hg1,hg2,hg4,hg8
demo: install
	$(VENV)/bin/hgbench train-all --protocol smoke --variants "$(DEMO_VARIANTS)"
	$(VENV)/bin/hgbench profile --variants "$(DEMO_VARIANTS)"
	$(VENV)/bin/hgbench report

test: install
	$(PY) -m pytest

# Read-only checks ([tool.ruff], [tool.importlinter] in pyproject.toml); `ruff format .` fixes the format.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# The docs extra (MkDocs Material, mkdocstrings) on top of the test install. NO_MKDOCS_2_WARNING
# silences a banner about MkDocs 2 (mkdocs is pinned below 2 in the extra); warnings still fail.
DOCS_STAMP := $(VENV)/.hgbench-docs-installed
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

docs-serve: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

# Real photos (LSPET; DATA_ROOT holds joints.mat and images/), in results/lspet:
#   make lspet                      the demo's four variants, smoke protocol (a pipeline check, ~5 min)
#   make lspet LSPET_VARIANTS=      the whole registry, smoke protocol (~30 min on 2 cores)
#   make lspet-real                 hg1 trained for real under lspet-cpu (~25 min on 2 cores), then
#                                   evaluated, profiled and reported next to the committed reference
DATA_ROOT ?= ../shared/data/lspet
LSPET_VARIANTS ?= $(DEMO_VARIANTS)
lspet: install
	$(VENV)/bin/hgbench train-all --protocol smoke --dataset lspet --data-root $(DATA_ROOT) --variants "$(LSPET_VARIANTS)" --results results/lspet
	$(VENV)/bin/hgbench profile --variants "$(LSPET_VARIANTS)" --results results/lspet
	$(VENV)/bin/hgbench report --results results/lspet

REAL_VARIANTS ?= hg1
lspet-real: install
	$(VENV)/bin/hgbench train-all --protocol lspet-cpu --dataset lspet --data-root $(DATA_ROOT) --variants "$(REAL_VARIANTS)" --results results/lspet-cpu
	$(VENV)/bin/hgbench profile --variants "$(REAL_VARIANTS)" --results results/lspet-cpu --backend eager,onnxruntime --batch-size 1
	$(VENV)/bin/hgbench report --results results/lspet-cpu

# Everything runs from the pinned .venv; nothing needs to be activated first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# DVC runs each stage's `python -m mlrepo...` through the shell: put the venv first on PATH.
export PATH := $(BIN):$(PATH)
unexport VIRTUAL_ENV PYTHONPATH

.DEFAULT_GOAL := help
.PHONY: help setup repro test test-fast lint format requirements plots bench serve report clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps \
		--no-build-isolation -e .
	touch $@

setup: $(VENV)/.installed ## Build .venv from the pinned requirements.txt and install mlrepo

repro: setup ## Run the pipeline (dvc repro): generate, validate, featurize, train, evaluate
	$(BIN)/dvc repro

test: setup ## Run the whole test suite (unit + real DVC in temporary git repositories)
	$(BIN)/python -m pytest

test-fast: setup ## Run the tests that do not drive DVC
	$(BIN)/python -m pytest -m "not dvc"

lint: setup ## ruff (lint + format check) and mypy
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

format: setup ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

requirements: ## Re-compile requirements.txt from requirements.in (pip-compile)
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links \
		-o requirements.txt requirements.in

# The template inlines vega (no CDN), so the page works offline; .dvc/config names it too, for a
# plain `dvc plots show` or `dvc plots diff`.
plots: setup ## Render every plot to dvc_plots/index.html (works offline)
	$(BIN)/dvc plots show --html-template .dvc/plots_offline.html

bench: setup ## Run the benchmarks and rewrite benchmarks/RESULTS.md
	$(BIN)/python benchmarks/pipeline.py

# `make serve MODEL=model@v1.2.0 PORT=9000` (command-line values win over these defaults);
# DATABASE_URL picks the prediction-log database.
HOST := 127.0.0.1
PORT := 8000
serve: setup ## Serve the production model (or MODEL=ref) over HTTP on HOST:PORT; docs at /docs
	$(BIN)/mlrepo serve --host $(HOST) --port $(PORT) $(if $(MODEL),--model $(MODEL))

BASE := main
report: setup ## Write report/report.md: params, metrics, validation, drift, plots vs BASE (main)
	$(BIN)/mlrepo report --base $(BASE) --out report

clean: ## Remove caches (not .venv, not DVC's cache)
	rm -rf .pytest_cache .ruff_cache .mypy_cache dvc_plots

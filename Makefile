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
.PHONY: app audit cluster cluster-down push pull

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

# BENCH_ARGS re-measures a subset: `make bench BENCH_ARGS="--only scaling --models xgboost
# --sizes 1000000"` replaces those results; the table and plot are re-rendered from all of them.
bench: setup ## Run the pipeline benchmarks; re-render benchmarks/RESULTS.md and scaling.png
	$(BIN)/python benchmarks/pipeline.py $(BENCH_ARGS)

# A local Dask cluster (README "Scaling out"): WORKERS processes x THREADS threads on 127.0.0.1.
# train sends its CV and search fits there when DASK_SCHEDULER_ADDRESS names the scheduler.
WORKERS ?= 2
THREADS ?= 1
DASK_PORT ?= 8786
cluster: setup ## Start a Dask scheduler + WORKERS workers on 127.0.0.1; prints the address
	$(BIN)/python -m mlrepo.cluster up --workers $(WORKERS) --threads $(THREADS) --port $(DASK_PORT)

cluster-down: ## Stop the cluster `make cluster` started
	$(BIN)/python -m mlrepo.cluster down

# The DVC remote of .dvc/config (default: a directory beside the repository); REMOTE=name picks
# another. The run cache travels too, so a clone that pulls can skip stages already run anywhere.
push: setup ## dvc push --run-cache, plus the run cache's metrics: outputs and run cache to the remote
	$(BIN)/dvc push --run-cache $(if $(REMOTE),--remote $(REMOTE))
	$(BIN)/python -m mlrepo.run_cache push $(if $(REMOTE),--remote $(REMOTE))

pull: setup ## dvc pull --run-cache: the committed model and data, no training
	$(BIN)/dvc pull --run-cache $(if $(REMOTE),--remote $(REMOTE))

# `make serve MODEL=model@v1.2.0 PORT=9000` (command-line values win over these defaults);
# DATABASE_URL picks the prediction-log database.
HOST := 127.0.0.1
PORT := 8000
serve: setup ## Serve the production model (or MODEL=ref) over HTTP on HOST:PORT; docs at /docs
	$(BIN)/mlrepo serve --host $(HOST) --port $(PORT) $(if $(MODEL),--model $(MODEL))

# `make app` talks to the service `make serve` starts (MLREPO_SERVICE_URL overrides it) and reads
# the prediction log through DATABASE_URL, as the service does.
APP_PORT ?= 8501
app: setup ## The web app (Streamlit) on HOST:APP_PORT (8501), for the service on HOST:PORT
	MLREPO_SERVICE_URL="$${MLREPO_SERVICE_URL:-http://$(HOST):$(PORT)}" \
	$(BIN)/streamlit run src/mlrepo/app/main.py --server.address $(HOST) \
		--server.port $(APP_PORT) --server.headless true --browser.gatherUsageStats false \
		--server.fileWatcherType none --client.toolbarMode viewer

audit: setup ## pip-audit of requirements.txt: fails only on a vulnerability that has a fix
	$(BIN)/python .ci/audit.py requirements.txt

BASE := main
report: setup ## Write report/report.md: params, metrics, validation, drift, plots vs BASE (main)
	$(BIN)/mlrepo report --base $(BASE) --out report

clean: ## Remove caches (not .venv, not DVC's cache)
	rm -rf .pytest_cache .ruff_cache .mypy_cache dvc_plots

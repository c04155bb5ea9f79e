# Data Aggregator Platform: `make demo` and `make test` do all set-up themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

SERVICES_DIR ?= /tmp/aggregator-services
WITH_SERVICES := set -a && . $(SERVICES_DIR)/env && set +a &&

.PHONY: help setup services services-stop demo test test-fast test-vault lint format clean bench

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv and install the package with its extras (fast when nothing changed)

services: ## Start PostgreSQL, MariaDB and Redis on loopback ports for the tests (idempotent)
	AGGREGATOR_SERVICES_DIR=$(SERVICES_DIR) scripts/services.sh start

services-stop: ## Stop the test services
	AGGREGATOR_SERVICES_DIR=$(SERVICES_DIR) scripts/services.sh stop

demo: setup ## Run the demo pipeline (3 sources -> DuckDB) on embedded defaults; run twice to see incremental loads
	$(BIN)/python examples/demo/demo.py

lint: setup ## Ruff (lint + format check) and mypy
	$(BIN)/ruff check src tests examples
	$(BIN)/ruff format --check src tests examples
	$(BIN)/mypy

test: setup lint services ## Lint, start the services, then every test with coverage (Vault tests: make test-vault)
	$(WITH_SERVICES) $(BIN)/pytest -m "not vault" --cov --cov-report=term:skip-covered --cov-report=xml -p no:cacheprovider

test-vault: setup ## Build a Vault server from the Go module proxy (about an hour the first time) and run the Vault backend tests
	AGGREGATOR_TEST_VAULT_BIN="$$(scripts/build-vault.sh)" $(BIN)/pytest -m vault -q -p no:cacheprovider

test-fast: setup services ## Tests without the slow reliability suite
	$(WITH_SERVICES) $(BIN)/pytest -m "not slow and not vault" -q

bench: setup ## Benchmark against peers (PostgreSQL, dlt, connectorx, ADBC); BENCH_QUICK=1: small data, 1 run
	$(BIN)/python bench/run.py $(if $(BENCH_QUICK),--quick)

format: setup ## Format the code
	$(BIN)/ruff format src tests examples
	$(BIN)/ruff check --fix src tests examples

clean: ## Remove the virtualenv, caches and demo output
	rm -rf $(VENV) .demo .aggregator .pytest_cache .mypy_cache .ruff_cache .coverage* coverage.xml

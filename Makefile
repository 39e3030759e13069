# Tenantry: `make dev` serves the API locally, `make test` runs every check CI runs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 3000
TENANTRY_HOME ?= .tenantry
TENANTS ?=
export SAM_CLI_TELEMETRY := 0
export SAM_CLI_CONTAINER_CONNECTION_TIMEOUT := 1

.PHONY: help venv dev dev-reset test lint typecheck validate build unit integration openapi bench clean

help:
	@echo "make dev        serve the API on http://$(HOST):$(PORT) (embedded DynamoDB, local gateway)"
	@echo "make test       lint, typecheck, sam validate --lint, sam build, pytest"
	@echo "make bench      run the benchmarks under bench/"
	@echo "make openapi    regenerate docs/openapi.json"
	@echo "make dev-reset  wipe the local state in $(TENANTRY_HOME)"

$(STAMP): pyproject.toml layers/core/requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

dev: $(STAMP)
	$(BIN)/tenantry dev --host $(HOST) --port $(PORT) --home $(TENANTRY_HOME) $(if $(TENANTS),--tenants $(TENANTS))

dev-reset:
	rm -rf $(TENANTRY_HOME)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

validate: $(STAMP)
	$(BIN)/sam validate --lint --region us-east-1

build: $(STAMP)
	$(BIN)/sam build --build-dir .aws-sam/build

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

openapi: $(STAMP)
	$(BIN)/python -m local.openapi --write docs/openapi.json

test: lint typecheck validate build
	$(BIN)/pytest

bench: $(STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache

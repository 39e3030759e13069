# Tenantry: `make dev` serves the API locally, `make test` runs every check CI runs.
SHELL := /bin/bash
# Lambda runs python3.13; the venv runs the same Python. PYTHON may name one; otherwise the first
# 3.13 found on PATH or under pyenv (whose bare `python3.13` shim fails without PYENV_VERSION).
PYTHON ?= $(shell for c in python3.13 $$(pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13 \
	/usr/local/bin/python3.13 /usr/bin/python3.13; do \
	"$$c" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && { echo "$$c"; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 3000
TENANTRY_HOME ?= .tenantry
TENANTS ?=
FAULTS ?=
# Template parameters for make dev, space-separated NAME=VALUE, e.g. PARAMS=CorsAllowOrigin=http://localhost:5173
PARAMS ?=
export SAM_CLI_TELEMETRY := 0
export SAM_CLI_CONTAINER_CONNECTION_TIMEOUT := 1

.PHONY: help venv dev dev-reset test lint lint-openapi typecheck validate checkov checkov-lock build unit integration browser screenshots openapi bench clean lock lock-dev e2e

help:
	@echo "make dev        serve the API on http://$(HOST):$(PORT) (embedded DynamoDB, local gateway)"
	@echo "                FAULTS='conflict=20%,throttle=20%' injects AWS's failures (docs/local-stack.md)"
	@echo "                PARAMS='CorsAllowOrigin=http://localhost:5173' sets template parameters"
	@echo "make test       lint, typecheck, sam validate --lint, cfn-lint, checkov, sam build, unit tests,"
	@echo "                the integration suite (make e2e, locally) and the IAM check of every AWS call"
	@echo "make e2e API_URL=https://…/v1 ADMIN_KEY=…   the integration suite against a deployed stage"
	@echo "make bench      run the benchmarks under bench/"
	@echo "make openapi    regenerate docs/openapi.json"
	@echo "make lint-openapi  lint docs/openapi.json with Spectral and Redocly (npm; make test runs it)"
	@echo "make lock       re-resolve the layer's lock (layers/core/requirements.txt) from requirements.in"
	@echo "make lock-dev   re-resolve the dev lock (requirements-dev.txt) from pyproject.toml; UPGRADE=1 for newest"
	@echo "make checkov    checkov on the translated template, against tooling/checkov/baseline.yaml"
	@echo "make checkov-lock  re-resolve checkov's own hashed lock (tooling/checkov/requirements.txt)"
	@echo "make screenshots  regenerate docs/console-*.png (needs /usr/bin/chromium)"
	@echo "make dev-reset  wipe the local state in $(TENANTRY_HOME)"

# The dev lock: every package the venv holds (the layer's runtime set included, at the layer lock's
# versions), pinned with its hashes for this machine's platform and Python 3.13 (make lock-dev).
DEV_LOCK := requirements-dev.txt

define require_python
	@test -n "$(PYTHON)" || { echo "Python 3.13 is required (Lambda's python3.13). Install it, e.g." \
		"'pyenv install 3.13' or your OS package python3.13, or run make PYTHON=/path/to/python3.13."; exit 1; }
	@"$(PYTHON)" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null || { \
		echo "$(PYTHON) is not Python 3.13; Lambda runs python3.13 and so must the venv."; exit 1; }
	@if test -d $(VENV) && ! $(BIN)/python -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; \
		then echo "Recreating $(VENV): it is not Python 3.13"; rm -rf $(VENV); fi
	test -d $(VENV) || "$(PYTHON)" -m venv $(VENV)
endef

$(STAMP): pyproject.toml layers/core/requirements.txt $(DEV_LOCK)
	$(require_python)
	$(BIN)/pip install --progress-bar on --require-hashes -r $(DEV_LOCK)
	$(BIN)/pip install --progress-bar on --no-deps --no-build-isolation -e .
	@$(BIN)/python -m tooling.dev_lock || { echo "pyproject.toml changed: run make lock-dev"; exit 1; }
	touch $(STAMP)

# uv resolves both locks; it is the one tool installed before them, at the dev lock's version.
$(BIN)/uv:
	$(require_python)
	$(BIN)/pip install --progress-bar on "uv==$$(sed -n 's/^uv==\([^ ]*\).*/\1/p' $(DEV_LOCK))"

venv: $(STAMP)

dev: $(STAMP)
	@# python -m: each sandbox the fork server starts imports a script __main__ (the console script) again
	$(BIN)/python -m tenantry_cli dev --host $(HOST) --port $(PORT) --home $(TENANTRY_HOME) $(if $(TENANTS),--tenants $(TENANTS)) \
		$(if $(FAULTS),--faults '$(FAULTS)') $(foreach param,$(PARAMS),--parameter '$(param)')

dev-reset:
	rm -rf $(TENANTRY_HOME)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# docs/openapi.json through Spectral's oas ruleset and Redocly's recommended rules (npm, pinned by
# tooling/openapi-lint/package-lock.json, installed once into .cache/).
lint-openapi:
	tooling/openapi-lint/run docs/openapi.json

typecheck: $(STAMP)
	$(BIN)/mypy

validate: $(STAMP)
	$(BIN)/sam validate --lint --region us-east-1
	@# What CloudFormation receives after the SAM transform, linted too (sam validate lints the SAM form).
	$(BIN)/python -m tooling.sam_translate --write .aws-sam/translated.json
	$(BIN)/cfn-lint .aws-sam/translated.json

# checkov pins its own dependencies exactly (boto3 among them), which clash with the project's:
# it lives in a venv of its own under .cache/, installed from its hashed lock on first use.
CHECKOV_VENV := .cache/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov

$(CHECKOV): tooling/checkov/requirements.txt
	@test -n "$(PYTHON)" || { echo "Python 3.13 is required for checkov's venv."; exit 1; }
	rm -rf $(CHECKOV_VENV)
	"$(PYTHON)" -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --progress-bar on --require-hashes --no-deps -r tooling/checkov/requirements.txt
	touch $(CHECKOV)

checkov-lock: $(STAMP)
	$(BIN)/uv pip compile tooling/checkov/requirements.in --python-version 3.13 --generate-hashes \
		--custom-compile-command "make checkov-lock" --quiet -o tooling/checkov/requirements.txt

# Every finding is fixed or accepted with its reason in tooling/checkov/baseline.yaml. Offline: no
# download of Prisma Cloud's guidelines.
checkov: $(STAMP) $(CHECKOV)
	$(BIN)/python -m tooling.sam_translate --write .aws-sam/translated.json
	$(CHECKOV) -f .aws-sam/translated.json --framework cloudformation --quiet --soft-fail --skip-download \
		-o json > .aws-sam/checkov.json
	$(BIN)/python -m tooling.checkov.baseline .aws-sam/checkov.json tooling/checkov/baseline.yaml

build: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/sam build --build-dir .aws-sam/build

# The tiers run on pytest-xdist workers: the unit tests are CPU-bound (one per core); the HTTP
# suite mostly waits on its stacks and streams, so two workers overlap those waits.
UNIT_WORKERS ?= auto
E2E_WORKERS ?= 2

unit: $(STAMP)
	$(BIN)/pytest -n $(UNIT_WORKERS) tests/unit

integration: $(STAMP)
	$(BIN)/pytest -n $(E2E_WORKERS) tests/integration

# The HTTP integration suite: against a deployed stage with API_URL (…/v1) and ADMIN_KEY, else
# against a local stack it starts itself (what make test runs).
e2e: $(STAMP)
	TENANTRY_API_URL="$(API_URL)" TENANTRY_ADMIN_KEY="$(ADMIN_KEY)" $(BIN)/pytest -n $(E2E_WORKERS) tests/integration

# The layer's lock: every dependency of layers/core/requirements.in pinned with its hashes, resolved
# for Lambda's python3.13 on arm64 (manylinux2014_aarch64) whatever machine runs this.
lock: $(BIN)/uv
	$(BIN)/uv pip compile layers/core/requirements.in --python-version 3.13 \
		--python-platform aarch64-manylinux2014 --generate-hashes --custom-compile-command "make lock" \
		--quiet -o layers/core/requirements.txt

# The dev lock: pyproject.toml's dependencies and its dev extra, under the layer lock's versions,
# for Python 3.13 on x86_64 Linux (this machine's platform). Versions already locked stay as they
# are (uv keeps the output file's pins): after adding a dependency, this adds it and its own.
# UPGRADE=1 re-resolves everything to the newest versions the ranges admit.
lock-dev: $(BIN)/uv
	$(BIN)/uv pip compile pyproject.toml --extra dev -c layers/core/requirements.txt \
		--python-version 3.13 --python-platform x86_64-manylinux_2_28 --generate-hashes \
		$(if $(UPGRADE),--upgrade) --custom-compile-command "make lock-dev" --quiet -o $(DEV_LOCK)

browser: $(STAMP)
	$(BIN)/pytest tests/browser

screenshots: $(STAMP)
	$(BIN)/python -m tests.browser.screenshots

openapi: $(STAMP)
	$(BIN)/python -m tooling.openapi --write docs/openapi.json

# make test records every AWS call the functions make here; tests/iam then checks them against
# each function's role in the translated template.
AWS_CALLS := $(CURDIR)/.aws-sam/aws-calls

test: lint lint-openapi typecheck validate checkov build
	rm -rf $(AWS_CALLS)
	TENANTRY_AWS_CALLS=$(AWS_CALLS) $(BIN)/pytest -n $(UNIT_WORKERS) tests/unit
	TENANTRY_AWS_CALLS=$(AWS_CALLS) $(MAKE) --no-print-directory e2e API_URL= ADMIN_KEY=
	TENANTRY_AWS_CALLS=$(AWS_CALLS) $(BIN)/pytest tests/browser
	TENANTRY_AWS_CALLS=$(AWS_CALLS) $(BIN)/pytest tests/iam

bench: $(STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .cache

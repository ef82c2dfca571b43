# Atalaya: two commands.
#   make run   set up everything (venv, install, migrate, demo data) and start web + Celery worker + beat
#   make test  the whole suite: lint, migrations check, types, deploy check, security scans, unit, API,
#              integration, browser
#              on the backends named by DATABASE_URL, CELERY_BROKER_URL and CACHE_URL (default: embedded)
#   make test-postgres  the same suite on PostgreSQL and Redis, started on loopback by .ci/services (root)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# The training extra (torch, transformers, peft) is installed too: the local job runner and the trainer
# tests need it. The constraints file pins torch (deploy/trainer/README.md, "Installing").
CONSTRAINTS := deploy/trainer/constraints.txt
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_WORKERS ?= 2

.PHONY: run test test-postgres install lint typecheck checks security unit e2e bench bench-load messages vendor-static clean

$(STAMP): pyproject.toml sdk/python/pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,train]" -e ./sdk/python -c $(CONSTRAINTS)
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) manage.py migrate --no-input
	ATALAYA_BASE_URL=$${ATALAYA_BASE_URL:-http://$(HOST):$(PORT)} $(PY) manage.py seed_demo
	$(PY) scripts/run_local.py --host $(HOST) --port $(PORT)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

checks: install
	DJANGO_SETTINGS_MODULE=console.settings.test $(PY) manage.py makemigrations --check --dry-run
	DJANGO_SETTINGS_MODULE=console.settings.production \
	  DJANGO_SECRET_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(64))')" \
	  DJANGO_ALLOWED_HOSTS=atalaya.example.com \
	  $(PY) manage.py check --deploy --fail-level WARNING

# bandit over our code (config in pyproject.toml [tool.bandit]; each accepted finding is marked
# `# nosec Bxxx # why` where it is), and pip-audit over the installed packages (it asks PyPI).
security: install
	$(VENV)/bin/bandit -c pyproject.toml -r apps console workers sdk/python/src -q
	$(PY) scripts/pip_audit.py $(PY)

unit: install
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) -m "not e2e"

e2e: install
	$(VENV)/bin/pytest -m e2e

test: lint checks typecheck security
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS)

test-postgres:
	eval "$$(.ci/services)" && $(MAKE) test

bench: install
	$(PY) bench/resolve.py
	$(PY) bench/ingest.py
	$(PY) bench/dashboards.py
	$(PY) bench/jobs.py
	$(PY) bench/annotate.py
	$(PY) bench/evaluate.py
	$(PY) bench/sdk.py

bench-load: install
	$(PY) bench/load.py

messages: install
	$(PY) manage.py makemessages -l es -i ".venv*" -i var -i node_modules -i static
	$(PY) manage.py compilemessages -l es

vendor-static:
	scripts/vendor-static.sh

clean:
	rm -rf var .pytest_cache .ruff_cache .mypy_cache

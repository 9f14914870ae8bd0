# ClawTrace: `make run` to start everything, `make test` to test it. `make help` lists the rest.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# The local agent's page and API (`clawtrace serve --port`, started by the Procfile).
AGENT_PORT ?= 19898
PIP := $(PY) -m pip --disable-pip-version-check -q
# Production-like environment for `make check-deploy` (never used to serve anything).
DEPLOY_ENV := DEBUG=False ALLOWED_HOSTS=clawtrace.example \
	SECRET_KEY=check-deploy-$$(head -c 48 /dev/urandom | base64 | tr -d '/+=\n') \
	DATABASE_URL=sqlite:///$(CURDIR)/.data/check-deploy.sqlite3 CACHE_URL=redis://127.0.0.1:6379/1

.PHONY: help run demo web worker beat agent test test-site test-agent test-services test-browser lint fmt check-deploy bench clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ClawTrace needs Python 3.11 or newer (found " + sys.version.split()[0] + ")")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: requirements.txt agent/pyproject.toml | $(PY)
	$(PIP) install -r requirements.txt -e ./agent
	@touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt agent/pyproject.toml | $(PY)
	$(PIP) install -r requirements-dev.txt -e './agent[dev]'
	@touch $@ $(VENV)/.installed-run

setup: $(VENV)/.installed-run ## Create .venv, install pinned deps, migrate, collect static files
	$(PY) manage.py ensure_local_dirs
	$(PY) manage.py migrate --noinput -v0
	$(VENV)/bin/honcho run $(PY) manage.py init_from_env
	$(PY) manage.py collectstatic --noinput -v0

run: setup ## Set up and start web, Celery worker and beat (Ctrl-C stops all)
	@$(PY) manage.py ensure_local_admin
	@echo ""
	@echo "  ClawTrace is starting:"
	@echo "    site        http://127.0.0.1:$(PORT)/"
	@echo "    admin       http://127.0.0.1:$(PORT)/admin/"
	@echo "    health      http://127.0.0.1:$(PORT)/readyz"
	@echo "    local page  http://127.0.0.1:$(AGENT_PORT)/  (clawtrace serve: your own usage)"
	@echo "  Ctrl-C stops everything."
	@echo ""
	@CLAWTRACE_WEB_PORT=$(PORT) CLAWTRACE_AGENT_PORT=$(AGENT_PORT) exec $(VENV)/bin/honcho -f Procfile start

web: setup ## Start only the web server
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

worker: setup ## Start only a Celery worker
	$(VENV)/bin/celery -A clawtrace_site worker --loglevel=INFO --pool=threads --concurrency=2

beat: setup ## Start only Celery beat
	$(VENV)/bin/celery -A clawtrace_site beat --loglevel=INFO --schedule=.data/celerybeat-schedule

test: $(VENV)/.installed-dev ## Run the whole test suite on SQLite (hosted side, then the agent)
	$(PY) -m pytest -q
	cd agent && ../$(PY) -m pytest -q

test-site: $(VENV)/.installed-dev ## Hosted-side tests only
	$(PY) -m pytest -q

test-agent: $(VENV)/.installed-dev ## Agent tests only
	cd agent && ../$(PY) -m pytest -q

test-services: $(VENV)/.installed-dev ## Hosted suite on PostgreSQL and Redis (real Celery worker)
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} \
	REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/15} \
	$(PY) -m pytest -q -m "not browser"

test-browser: $(VENV)/.installed-dev ## Browser tests only (Debian's /usr/bin/chromium)
	$(PY) -m pytest -q -m browser; rc=$$?; [ $$rc -eq 0 -o $$rc -eq 5 ]
	cd agent && ../$(PY) -m pytest -q -m browser; rc=$$?; [ $$rc -eq 0 -o $$rc -eq 5 ]

lint: $(VENV)/.installed-dev ## ruff check and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: $(VENV)/.installed-dev ## Apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

check-deploy: $(VENV)/.installed-run ## Django's deployment checks with production settings
	@mkdir -p .data
	$(DEPLOY_ENV) $(PY) manage.py check --deploy --fail-level WARNING

bench: $(VENV)/.installed-dev ## Agent scan benchmark against ccusage and the floor (slow; by hand)
	$(PY) bench/agent_scan.py --turns 100000

clean: ## Remove the virtualenv, local data and collected static files
	rm -rf $(VENV) .data staticfiles test-artifacts

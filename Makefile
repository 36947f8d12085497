# Two commands work on a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi
STAMP := $(VENV)/.installed-stamp

CATALOGS := intake/translations/es/LC_MESSAGES/messages.mo

.PHONY: run run-prod test test-long test-postgres install lint bench lint-forms translations clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools
	$(BIN)/pip install --quiet -e '.[test,dev]'
	@touch $(STAMP)

install: $(STAMP) $(CATALOGS)

## The UI's Spanish catalog is compiled in the build (the .mo is not in git).
%.mo: %.po $(STAMP)
	$(BIN)/pybabel compile -i $< -o $@

## axe-core for the browser tests (npm registry; the tests skip, saying why, without npm or Chromium).
AXE := node_modules/axe-core/axe.min.js
$(AXE): package.json package-lock.json
	@if command -v npm >/dev/null; then npm ci --no-audit --no-fund --silent && touch $@; \
	else echo "npm not found: the browser tests will skip (apt-get install nodejs npm chromium)"; fi

## After changing UI text: extract it and merge it into the catalog (then translate the new entries).
translations: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l --no-location --sort-output -o $(VENV)/messages.pot .
	$(BIN)/pybabel update -i $(VENV)/messages.pot -d intake/translations --ignore-obsolete --no-fuzzy-matching

## Serve on http://127.0.0.1:5000 with the embedded default (SQLite in ./instance, demo patient).
run: $(STAMP) $(CATALOGS)
	$(FLASK) intake init-db
	$(FLASK) intake lint-forms
	$(FLASK) intake demo
	$(FLASK) run --host 127.0.0.1 --port 5000

## Production shape on this machine: gunicorn + Celery worker + beat (Procfile, via honcho) on the
## local PostgreSQL and Redis. Each setting can be overridden from the environment (README "Production").
run-prod: export DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/intake
run-prod: export INTAKE_CELERY_BROKER_URL ?= redis://127.0.0.1:6379/0
run-prod: export INTAKE_JOBS = celery
run-prod: $(STAMP) $(CATALOGS)
	$(FLASK) intake init-db --create-database
	$(FLASK) intake lint-forms
	$(BIN)/honcho start -f Procfile

## The test suite (SQLite; set INTAKE_TEST_DATABASE_URL to run it on PostgreSQL), on three
## pytest-xdist workers (TEST_WORKERS=0 runs it in this process). Three, not one per CPU: a third of
## the suite waits on other processes (gunicorn, Chromium, Node, Celery), so on two cores a third
## worker fills the waits; each worker has a Redis database of its own for the Celery tests
## (13, 14, 15: tests/support/celery_processes.py), so more than three would share one.
TEST_WORKERS ?= 3
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile
test: $(STAMP) $(CATALOGS) $(AXE)
	$(PYTEST)

## The full-size runs `make test` leaves out or samples: the durability tests (marker `long`) and
## the generated-input tests (marker `sized`) at full size (Hypothesis profile `ci`), one at a
## time (the durability tests measure timing under load of their own). CI runs both.
## LONG_MARKS=long runs the durability tests alone (CI does so on its second database: the
## full-size generated inputs do not depend on the database and `make test` runs them there at the
## small size).
LONG_MARKS ?= long or sized
test-long: $(STAMP) $(CATALOGS)
	$(BIN)/python -m pytest -m "$(LONG_MARKS)" --hypothesis-profile=ci

test-postgres: $(STAMP) $(CATALOGS) $(AXE)
	INTAKE_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test $(PYTEST)

## Static checks (pyproject.toml): ruff, mypy (strict on intake/core), the import-linter layer contracts.
lint: $(STAMP)
	$(BIN)/ruff check intake tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP) $(CATALOGS)
	$(BIN)/python bench/pages.py

lint-forms: $(STAMP)
	$(FLASK) intake lint-forms

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache .import_linter_cache

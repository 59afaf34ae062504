# rezcourse — the two commands a newcomer needs: `make run` and `make test`.
# Both create their own virtual environment (.venv) from the requirements files.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test fuzz lint docs screenshots venv venv-dev migrate demo worker clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.run-deps: requirements.txt | $(BIN)/python
	@echo "Installing runtime dependencies into $(VENV) ..."
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

$(VENV)/.dev-deps: requirements.txt requirements-dev.txt | $(BIN)/python
	@echo "Installing test dependencies into $(VENV) ..."
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@ $(VENV)/.run-deps

venv: $(VENV)/.run-deps
venv-dev: $(VENV)/.dev-deps

migrate: venv
	$(BIN)/python manage.py migrate --noinput

demo: migrate
	$(BIN)/python manage.py load_demo

# The service with demo data on the embedded defaults (SQLite, filesystem broker,
# e-mail to files under var/mail/): web server + one Celery worker with embedded
# beat. Ctrl-C stops both; if either dies, the other is stopped too.
run: demo
	@echo ""
	@echo "rezcourse: web app at http://$(HOST):$(PORT)/ (e.g. coord.north / demo-coord.north)"
	@echo "           API docs at http://$(HOST):$(PORT)/api/docs/  admin at http://$(HOST):$(PORT)/admin/"
	@echo "Ctrl-C stops the web server and the worker."
	@$(BIN)/celery -A config worker -B --loglevel=INFO --concurrency=1 \
		--schedule=var/celerybeat-schedule & worker=$$!; \
	$(BIN)/python manage.py runserver --noreload $(HOST):$(PORT) & web=$$!; \
	trap 'kill $$worker $$web 2>/dev/null; wait; exit 0' INT TERM; \
	wait -n; kill $$worker $$web 2>/dev/null; wait

worker: venv
	$(BIN)/celery -A config worker -B --loglevel=INFO --concurrency=1 --schedule=var/celerybeat-schedule

# The whole test suite. Service-backed tests skip without DATABASE_URL/REDIS_URL
# unless REZCOURSE_REQUIRE_SERVICES=1 (as in .ci/run), where they must pass.
test: venv-dev
	$(BIN)/pytest $(PYTEST_ARGS)

# The schemathesis run of tests/test_api_fuzz.py with a longer budget than the suite's:
# every phase (the coverage phase too) and FUZZ_EXAMPLES cases per operation and mode.
# Against PostgreSQL: DATABASE_URL=postgres://... make fuzz. About 15 minutes (200 cases).
FUZZ_EXAMPLES ?= 200
fuzz: venv-dev
	REZCOURSE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) REZCOURSE_FUZZ_TIMEOUT=7200 \
	REZCOURSE_FUZZ_PHASES=examples,coverage,fuzzing,stateful \
		$(BIN)/pytest -p no:cacheprovider tests/test_api_fuzz.py $(PYTEST_ARGS)

lint: venv-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Generated documentation (never edited by hand; tests fail when it is stale).
docs: venv
	@mkdir -p docs
	$(BIN)/python manage.py protocols docs --output docs/protocols.md
	$(BIN)/python manage.py course_states --output docs/course-states.md
	$(BIN)/python manage.py alert_rules --output docs/alerts.md

# PNG screenshots of the web app's main pages from the demo data, into docs/screenshots/
# (a temporary database and server; Debian's chromium through Playwright, as the
# browser tests use it).
screenshots: venv-dev
	$(BIN)/python -m bench.screenshots --output docs/screenshots

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache

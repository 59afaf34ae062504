# rezcourse — the two commands a newcomer needs: `make run` and `make test`.
# Both create their own virtual environment (.venv) from the requirements files.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

# The installer: uv (pinned; several times faster than pip for the scientific stack)
# bootstrapped into $(VENV)/uv-<version> with $(PYTHON)'s pip, or pip itself when uv
# cannot be had (no pip for $(PYTHON), no wheel for this platform) or INSTALLER=pip.
INSTALLER ?= uv
UV_VERSION ?= 0.13.9
UV := $(VENV)/uv-$(UV_VERSION)/bin/uv

# `make run HOST=... PORT=...`: links in e-mails (and the iCal feed) point where the
# demo serves unless REZCOURSE_BASE_URL says otherwise, and the host of the URLs it
# prints is allowed (added to DJANGO_ALLOWED_HOSTS, whether that is set or not).
# BIND_HOST is runserver's address ([::1] for IPv6); URL_HOST the host in URLs, where
# a wildcard address (0.0.0.0, ::) is reached on this machine as the loopback.
comma := ,
BIND_HOST := $(if $(findstring :,$(HOST)),[$(HOST)],$(HOST))
URL_HOST := $(if $(filter 0.0.0.0,$(HOST)),127.0.0.1,$(if $(filter ::,$(HOST)),[::1],$(BIND_HOST)))
URL := http://$(URL_HOST):$(PORT)
REZCOURSE_BASE_URL ?= $(URL)
DJANGO_ALLOWED_HOSTS ?= 127.0.0.1,localhost
ALLOWED_HOSTS := $(DJANGO_ALLOWED_HOSTS)$(if $(filter $(URL_HOST),$(subst $(comma), ,$(DJANGO_ALLOWED_HOSTS))),,$(comma)$(URL_HOST))

# Where the demo's e-mails go (never printing EMAIL_URL: it may hold a password).
MAIL = $(if $(EMAIL_URL)$(EMAIL_HOST),sent by SMTP (EMAIL_URL / EMAIL_HOST),written as files to var/mail/)

.PHONY: run test fuzz lint docs screenshots venv venv-dev migrate demo worker clean

$(BIN)/python:
	@echo "rezcourse: creating $(VENV) with $$($(PYTHON) --version 2>&1)"
	@$(PYTHON) -m venv --without-pip $(VENV)

# Runs uv's `pip install` with pip's own index configuration (pip.conf files and PIP_*
# variables, as `pip config list` reports them), so both installers fetch from the same
# places: a mirror, a local wheel folder or extra indexes. unsafe-best-match is pip's
# rule: the best matching version from any index, not the first index that knows it.
define UV_PIP_INSTALL
import ast, os, subprocess, sys

uv, python, *requirements = sys.argv[1:]
listed = subprocess.run(
    [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
).stdout
config = {}
for line in listed.splitlines():
    key, _, value = line.partition("=")
    section, _, name = key.rpartition(".")
    rank = {"global": 1, "install": 2, ":env:": 3}.get(section, 0)
    if rank and rank >= config.get(name, (0, ""))[0]:
        config[name] = (rank, ast.literal_eval(value))
args = [uv, "pip", "install", "--quiet", "--python", python, "--index-strategy", "unsafe-best-match"]
for name in ("index-url", "extra-index-url", "find-links", "constraint"):
    args += [f"--{name}={value}" for value in config.get(name, (0, ""))[1].split()]
if "cert" in config:
    os.environ.setdefault("SSL_CERT_FILE", config["cert"][1])
for requirement in requirements:
    args += ["-r", requirement]
# pip too, so `$(BIN)/pip` works in this venv as it would in one pip made.
os.execv(uv, [*args, "pip"])
endef
export UV_PIP_INSTALL

# uv leaves compiling to bytecode to the first import, and where PYTHONDONTWRITEBYTECODE
# is set (this project's CI machines) no import ever writes it, so every process would
# compile Django, DRF and Celery again: about 0.7 s of each start-up. Compiled here,
# once, as pip does — all but the scientific stack, which only the outcomes endpoint
# imports (its 5,000 files would cost more than a start-up saves).
LAZY_PACKAGES := /site-packages/(pandas|scipy|numpy|matplotlib|fontTools|PIL|narwhals|formulaic|lifelines|autograd|autograd_gamma|contourpy|kiwisolver|pip)/

# $(call install,REQUIREMENTS-FILE,WHAT): one line before and one after, not pages.
define install
	@set -e; started=$$SECONDS; \
	if [ "$(INSTALLER)" = uv ] && { [ -x $(UV) ] || \
	    PIP_ROOT_USER_ACTION=ignore PIP_REQUIRE_VIRTUALENV=0 $(PYTHON) -m pip install \
	    --quiet --quiet --disable-pip-version-check --upgrade \
	    --target $(VENV)/uv-$(UV_VERSION) uv==$(UV_VERSION) >/dev/null 2>&1; }; then \
	  echo "rezcourse: installing $(2) with $$($(UV) --version | cut -d" " -f1-2) ..."; \
	  $(PYTHON) -c "$$UV_PIP_INSTALL" $(UV) $(BIN)/python $(1); \
	  $(BIN)/python -m compileall -q -j0 -x '$(LAZY_PACKAGES)' \
	    $$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))') >/dev/null; \
	else \
	  echo "rezcourse: installing $(2) with pip$(if $(filter uv,$(INSTALLER)), (uv could not be installed)) ..."; \
	  [ -x $(BIN)/pip ] || $(BIN)/python -m ensurepip --upgrade --default-pip >/dev/null; \
	  $(BIN)/python -m pip install --quiet --quiet --disable-pip-version-check -r $(1); \
	fi; \
	echo "rezcourse: installed in $$(( SECONDS - started )) s"
endef

$(VENV)/.run-deps: requirements.txt | $(BIN)/python
	$(call install,requirements.txt,the runtime dependencies)
	@touch $@

$(VENV)/.dev-deps: requirements.txt requirements-dev.txt | $(BIN)/python
	$(call install,requirements-dev.txt,the runtime and test dependencies)
	@touch $@ $(VENV)/.run-deps

venv: $(VENV)/.run-deps
venv-dev: $(VENV)/.dev-deps

# Variables for every command that serves or writes links (make run, demo, worker).
run demo migrate worker: export REZCOURSE_BASE_URL := $(REZCOURSE_BASE_URL)
run demo migrate worker: override export DJANGO_ALLOWED_HOSTS := $(ALLOWED_HOSTS)
# The demo worker runs as whoever runs `make run` — root in a container or CI — and
# accepts JSON only, where Celery's "superuser privileges" warning is advice, not a
# risk (with pickle it refuses to start, and this filter does not change that).
# (Appended: the last filter wins for this message, and the caller's own stay.)
run worker: export PYTHONWARNINGS := $(if $(PYTHONWARNINGS),$(PYTHONWARNINGS)$(comma))ignore:You're running the worker with superuser privileges

migrate: venv
	@echo "rezcourse: migrating the database ..."
	@$(BIN)/python manage.py migrate --noinput --verbosity 0

# migrate and load_demo in one process: each Django start-up costs a second or more,
# which is most of a warm restart.
DEMO_STEPS := from django.core.management import call_command as run; \
	run("migrate", interactive=False, verbosity=0, skip_checks=False); \
	print("rezcourse: loading the demo ...", flush=True); run("load_demo")
DEMO := $(BIN)/python manage.py shell --no-imports --verbosity 0 --command '$(DEMO_STEPS)'

demo: venv
	@echo "rezcourse: migrating the database ..."
	@$(DEMO)

# The service with demo data on the embedded defaults (SQLite, filesystem broker,
# e-mail to files under var/mail/): a web server and one Celery worker with embedded
# beat. The web server starts at once, alongside the migration and the demo (its own
# start-up is then off the critical path; its stdout, which would only repeat the URL,
# goes nowhere, its request log and errors are shown); the worker starts once the
# database is ready. The banner comes when both are up. Ctrl-C stops both (the worker
# hears it from the terminal itself); if either dies, the other is stopped too (polled:
# `wait -n` misses a child that died before it was called).
run: venv
	@echo "rezcourse: migrating the database ..."
	@$(BIN)/python manage.py runserver --noreload --skip-checks $(BIND_HOST):$(PORT) \
		>/dev/null & web=$$!; \
	trap 'kill $$worker $$web 2>/dev/null; wait; exit 0' TERM; \
	trap 'kill $$web 2>/dev/null; wait; exit 0' INT; \
	$(DEMO) || { kill $$web 2>/dev/null; wait; exit 1; }; \
	kill -0 $$web 2>/dev/null || { echo "rezcourse: the web server stopped (see above)." >&2; exit 1; }; \
	echo "rezcourse: starting the worker ..."; \
	$(BIN)/celery --quiet --skip-checks -A config worker -B --loglevel=WARNING \
		--concurrency=1 --without-mingle --without-gossip \
		--schedule=var/celerybeat-schedule & worker=$$!; \
	alive() { kill -0 $$worker 2>/dev/null && kill -0 $$web 2>/dev/null; }; \
	until (exec 3<>/dev/tcp/$(subst [,,$(subst ],,$(URL_HOST)))/$(PORT)) 2>/dev/null || ! alive; \
	do sleep 0.1; done; \
	alive && printf '%s\n' "" \
	  "rezcourse is running:" \
	  "  web app   $(URL)/  (sign in as a demo user below, e.g. coord.north)" \
	  "  API docs  $(URL)/api/docs/" \
	  "  admin     $(URL)/admin/  (admin / demo-admin)" \
	  "  e-mails   $(MAIL); their links point to $(REZCOURSE_BASE_URL)" \
	  "  demo users, passwords and API tokens: above (manage.py load_demo prints them again)" \
	  "Ctrl-C stops the web server and the worker." ""; \
	while alive; do sleep 0.5 & wait $$!; done; \
	kill $$worker $$web 2>/dev/null; wait; \
	echo "rezcourse: the web server or the worker stopped (see above), so both are stopped." >&2; \
	exit 1

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

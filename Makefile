# FairStream payout pipeline. `make demo` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The demo: two consecutive sample months, so the balance carried from one month to the next shows.
DEMO_MONTHS := 2026-09 2026-10
DEMO_USERS ?= 5000
DEMO_SEED ?= 7
DEMO_HOME := $(CURDIR)/.dagster_home
DEMO_ENV := FAIRSTREAM_FIRST_MONTH=$(firstword $(DEMO_MONTHS)) \
	FAIRSTREAM_LANDING_DIR=$(CURDIR)/data/landing \
	FAIRSTREAM_WAREHOUSE_DIR=$(CURDIR)/data/warehouse \
	DAGSTER_HOME=$(DEMO_HOME)

EVENTS ?= 1000000

.PHONY: install demo dev test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Embedded (SQLite) Dagster instance for the quick demo; dagster.yaml at the top level is the
# PostgreSQL deployment instance (see README "Deploying").
$(DEMO_HOME)/dagster.yaml:
	mkdir -p $(DEMO_HOME)
	printf 'telemetry:\n  enabled: false\n' > $@

demo: install $(DEMO_HOME)/dagster.yaml
	@for month in $(DEMO_MONTHS); do \
	  $(BIN)/fairstream sample --month $$month --users $(DEMO_USERS) --seed $(DEMO_SEED) --out data/landing > $(DEMO_HOME)/sample-$$month.json || exit 1; \
	done
	@for month in $(DEMO_MONTHS); do \
	  echo "== dagster asset materialize --select '*' --partition $$month"; \
	  $(DEMO_ENV) $(BIN)/dagster asset materialize -m fairstream_pipeline.definitions \
	    --select '*' --partition $$month > $(DEMO_HOME)/materialize-$$month.log 2>&1 \
	    || { tail -n 40 $(DEMO_HOME)/materialize-$$month.log; exit 1; }; \
	done
	@$(DEMO_ENV) $(BIN)/fairstream summary $(DEMO_MONTHS)

dev: install $(DEMO_HOME)/dagster.yaml
	$(DEMO_ENV) $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

test: install
	$(BIN)/pytest

# Speed and memory of a whole month beside the baselines; appends to docs/performance.md.
bench: install
	$(BIN)/python -m benchmarks.run --events $(EVENTS)

clean:
	rm -rf data $(DEMO_HOME)

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
# FairStream's own (sample) account pays the batches; a released file lands in data/payments.
PAYMENTS_ENV := FAIRSTREAM_PAYMENTS_DEBTOR_NAME="FairStream Demo SAS" \
	FAIRSTREAM_PAYMENTS_DEBTOR_IBAN=FR7630006000011234567890189 FAIRSTREAM_PAYMENTS_DEBTOR_BIC=AGRIFRPPXXX \
	FAIRSTREAM_PAYMENTS_OUT_DIR=$(CURDIR)/data/payments
DEMO_ENV := FAIRSTREAM_FIRST_MONTH=$(firstword $(DEMO_MONTHS)) \
	FAIRSTREAM_LANDING_DIR=$(CURDIR)/data/landing \
	FAIRSTREAM_WAREHOUSE_DIR=$(CURDIR)/data/warehouse \
	$(PAYMENTS_ENV) \
	DAGSTER_HOME=$(DEMO_HOME)
PAID_MONTH := $(firstword $(DEMO_MONTHS))

EVENTS ?= 1000000

.PHONY: install demo demo-distributed dev test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Embedded (SQLite) Dagster instance for the quick demo; dagster.yaml at the top level is the
# PostgreSQL deployment instance (docs/deployment.md).
$(DEMO_HOME)/dagster.yaml:
	mkdir -p $(DEMO_HOME)
	printf 'telemetry:\n  enabled: false\n' > $@

demo: install $(DEMO_HOME)/dagster.yaml
	@for month in $(DEMO_MONTHS); do \
	  $(BIN)/fairstream sample --month $$month --users $(DEMO_USERS) --seed $(DEMO_SEED) --out data/landing > $(DEMO_HOME)/sample-$$month.json || exit 1; \
	done
	@# One monthly_payout_job run per month, in order, through the instance (Jobs page, alerts, retries);
	@# the steps show as they run, and a failure's last lines say which step failed and why.
	@$(DEMO_ENV) $(BIN)/fairstream run $(PAID_MONTH)
	@# The payment run (docs/payments.md): a second person approves September's batch by restating its
	@# count and control sum, which releases its SEPA file once; the (sample) bank settles it but returns
	@# two payments, and October credits them back.
	@$(DEMO_ENV) $(BIN)/fairstream payments show $(PAID_MONTH)
	@$(DEMO_ENV) $(BIN)/fairstream payments approve $(PAID_MONTH) --approver "Demo Approver" \
	  --count $$($(DEMO_ENV) $(BIN)/fairstream payments show $(PAID_MONTH) --field payments) \
	  --control-sum $$($(DEMO_ENV) $(BIN)/fairstream payments show $(PAID_MONTH) --field control_sum)
	@$(DEMO_ENV) $(BIN)/fairstream sample-bank-report --month $(PAID_MONTH) --out data/landing --return 2
	@$(DEMO_ENV) $(BIN)/fairstream payments ingest
	@$(DEMO_ENV) $(BIN)/fairstream run $(wordlist 2,$(words $(DEMO_MONTHS)),$(DEMO_MONTHS))
	@$(DEMO_ENV) $(BIN)/fairstream summary $(DEMO_MONTHS)

# The same two months on 2 local Celery workers (RabbitMQ on 127.0.0.1:5672, the instance on the
# local PostgreSQL, database fairstream_demo): the summary must print the same money as `make demo`.
DIST_HOME := $(CURDIR)/.dagster_home_distributed
DIST_ENV := FAIRSTREAM_FIRST_MONTH=$(firstword $(DEMO_MONTHS)) \
	FAIRSTREAM_LANDING_DIR=$(CURDIR)/data/landing \
	FAIRSTREAM_WAREHOUSE_DIR=$(CURDIR)/data/warehouse-distributed \
	FAIRSTREAM_PG_HOST=$${FAIRSTREAM_PG_HOST:-127.0.0.1} FAIRSTREAM_PG_PORT=$${FAIRSTREAM_PG_PORT:-5432} \
	FAIRSTREAM_PG_USER=$${FAIRSTREAM_PG_USER:-postgres} FAIRSTREAM_PG_PASSWORD=$${FAIRSTREAM_PG_PASSWORD:-postgres} \
	FAIRSTREAM_PG_DB=$${FAIRSTREAM_PG_DB:-fairstream_demo} \
	DAGSTER_HOME=$(DIST_HOME)

demo-distributed: install
	mkdir -p $(DIST_HOME) && cp dagster.yaml $(DIST_HOME)/dagster.yaml
	@for month in $(DEMO_MONTHS); do \
	  $(BIN)/fairstream sample --month $$month --users $(DEMO_USERS) --seed $(DEMO_SEED) --out data/landing > $(DIST_HOME)/sample-$$month.json || exit 1; \
	done
	@$(DIST_ENV) $(BIN)/python -m fairstream_pipeline.celery_workers demo $(DEMO_MONTHS) --work-dir $(DIST_HOME)/celery

# The UI, the daemon and a code server for the project ([tool.dg] in pyproject.toml) on the demo
# instance: `dg dev` (it supersedes `dagster dev`), in the project's own virtual environment.
dev: install $(DEMO_HOME)/dagster.yaml
	$(DEMO_ENV) VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg dev --host 127.0.0.1 --port 3000

# Debian's Chromium for the browser tests: Playwright drives it, and downloads no browser of its own.
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(CHROMIUM):
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium \
	  || { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium; }

# Three workers on the 2 cores, each taking whole test files (conftest.py starts the longest first): most real-service tests wait on processes, ticks and
# restarts, so they overlap well with the CPU-bound ones. TEST_WORKERS=0 runs everything in one process.
# The tests' temporary files (their lakes, instances and throwaway servers) go to memory when the
# machine has /dev/shm (one end-to-end file: 50.8 s with its files on disk, 46.5 s in memory).
TEST_WORKERS ?= 3
TEST_TMPDIR ?= $(shell [ -d /dev/shm ] && [ -w /dev/shm ] && echo /dev/shm || echo $${TMPDIR:-/tmp})
test: install $(CHROMIUM)
ifeq ($(TEST_WORKERS),0)
	TMPDIR=$(TEST_TMPDIR) $(BIN)/pytest
else
	TMPDIR=$(TEST_TMPDIR) $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder
endif

# Speed and memory of a whole month beside the baselines; appends to docs/performance.md.
bench: install
	$(BIN)/python -m benchmarks.run --events $(EVENTS)

clean:
	rm -rf data $(DEMO_HOME) $(DIST_HOME)

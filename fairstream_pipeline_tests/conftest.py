"""Shared fixtures: a fresh landing zone and warehouse per test, and a way to materialize a month.

Settings are read when used (``test_settings`` proves that importing any module reads none), so
the tests' own values below are simply set in the environment; a test that needs another value
sets it with ``monkeypatch`` or in its subprocess's environment."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

# Waiting for an incomplete month: 2 retries 50 ms apart in tests, not 10 hours.
# One user bucket keeps the many small test months quick (8 would add a step per bucket and 8 files
# per day to each); the default B runs in test_cli_end_to_end, and other Bs in test_user_bucket_shards,
# test_celery_month and test_play_ingestion.
TEST_SETTINGS = {
    "FAIRSTREAM_LANDING_WAIT_RETRIES": "2",
    "FAIRSTREAM_LANDING_WAIT_DELAY_SECONDS": "0.05",
    "FAIRSTREAM_USER_BUCKETS": "1",
}
os.environ.update(TEST_SETTINGS)

import dagster as dg
import pytest

from fairstream_pipeline.definitions import defs
from fairstream_pipeline.defs.payments.resources import PaymentsResource
from fairstream_pipeline.defs.resources import (
    AppDatabaseResource,
    DuckDBEngine,
    LandingZoneResource,
    PayoutRulesResource,
    WarehouseResource,
)
from fairstream_pipeline_tests.landing_builders import Landing
from fairstream_pipeline_tests.postgres import PG, connect_admin
from fairstream_pipeline_tests.smtp_server import ScriptedRelay


# `make test` runs the files on several pytest-xdist workers, each taking whole files (`--dist
# loadfile`, so a file's module fixtures are built once, on one worker), in the order of collection
# (`--no-loadscope-reorder`). Here the files that take longest go first, so that no worker is left
# with one of them at the end (the order is from `--durations=0` on this machine, docs/NOTES.md);
# the others follow in their usual order. The real-service files that wait on the daemon's ticks
# and server restarts mostly wait, so they run beside the CPU-bound ones, not in a phase of their own.
# (Not `--dist loadgroup`: pytest-xdist 3.8 marks a group on `item._nodeid`, which pytest 9.2 no
# longer reads, so groups are silently ignored.)
LONGEST_FIRST = [
    "test_daemon_end_to_end.py",
    "test_database_outages.py",
    "test_payment_run_end_to_end.py",
    "test_celery_month.py",
    "test_faults.py",
    "test_period_close_end_to_end.py",
    "test_postgres_restarts.py",
    "test_run_command.py",
    "test_cli_end_to_end.py",
    "test_user_bucket_shards.py",
    "test_reviewer_ui.py",
    "test_month_lock.py",
    "test_period_close_ledger.py",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture
def landing(tmp_path: Path) -> Landing:
    return Landing(tmp_path / "landing")


@pytest.fixture
def resources(tmp_path: Path) -> dict:
    return {
        "landing_zone": LandingZoneResource(root=str(tmp_path / "landing")),
        "warehouse": WarehouseResource(root=str(tmp_path / "warehouse")),
        "duckdb": DuckDBEngine(memory_limit="1GB", threads=2, temp_directory=str(tmp_path / "spill")),
        "payout_rules": PayoutRulesResource(),
        "app_database": AppDatabaseResource(),  # not configured unless a test points it at Postgres
        "payments": PaymentsResource(),  # no debtor account: batches are "not configured" unless a test sets one
    }


@pytest.fixture(scope="session")
def definitions() -> dg.Definitions:
    return defs()


@pytest.fixture
def materialize_month(definitions, resources):
    """Materialize ``selection`` (default: everything) for ``month`` with the test's resources.

    Every call of one test shares one ephemeral instance, disposed of when the test ends.
    """
    instance = dg.DagsterInstance.ephemeral()

    def run(month: str, selection=None, **kwargs) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            assets=[*definitions.assets, *definitions.asset_checks],
            partition_key=month,
            resources={**resources, **kwargs.pop("resources", {})},
            selection=selection,
            raise_on_error=False,
            instance=instance,
            **kwargs,
        )

    yield run
    instance.dispose()


def step_failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    """The messages of the failed steps of a run: a ``dg.Failure``'s description, else the error."""
    messages = []
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            if data.user_failure_data is not None:
                messages.append(data.user_failure_data.description)
            else:
                messages.append(data.error.message.strip())
    return messages


@pytest.fixture
def fresh_database():
    """A new, empty PostgreSQL database (for one Dagster instance); dropped afterwards."""
    name = f"fairstream_test_{uuid.uuid4().hex[:10]}"
    with connect_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    with connect_admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_instance_env(fresh_database, monkeypatch) -> str:
    """FAIRSTREAM_PG_* pointing the top-level dagster.yaml at a throwaway database."""
    monkeypatch.setenv("FAIRSTREAM_PG_HOST", PG.host)
    monkeypatch.setenv("FAIRSTREAM_PG_PORT", str(PG.port))
    monkeypatch.setenv("FAIRSTREAM_PG_USER", PG.user)
    monkeypatch.setenv("FAIRSTREAM_PG_PASSWORD", PG.password)
    monkeypatch.setenv("FAIRSTREAM_PG_DB", fresh_database)
    return fresh_database


@pytest.fixture
def relay():
    """A scripted SMTP relay (aiosmtpd) on a free loopback port."""
    server = ScriptedRelay().up()
    yield server
    server.down()

"""Work that is not configured is never green: no materialization without an app database, a
dead-letter check that does not pass, a failure sensor and `fairstream health` that say alerts
are not configured."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from fairstream_pipeline.defs.payments.assets import DETAILS_NOT_CONFIGURED
from fairstream_pipeline.defs.alerting.failure_alerts import AlertsResource, payout_failure_alert
from fairstream_pipeline.defs.notifications.dead_letters import outbox_dead_letters
from fairstream_pipeline.defs.partitions import monthly_partitions
from fairstream_pipeline.defs.resources import AppDatabaseResource
from fairstream_pipeline.lib.alerting.health import Check, check_alerts
from fairstream_pipeline_tests.payout_cases import MonthCase, Plays

MONTH = "2024-01"
NOT_CONFIGURED = "not configured: FAIRSTREAM_DATABASE_URL is empty, nothing was written"
ALERTS_NOT_CONFIGURED = "alerts are not configured: set FAIRSTREAM_ALERT_WEBHOOK_URL or FAIRSTREAM_SMTP_HOST"
BIN = Path(sys.executable).parent


@pytest.fixture
def closed_month(landing):
    MonthCase(
        [("U1", "premium", "FR", 1500), ("U2", "premium", "FR", 500)],
        [Plays("U1", "X", 2), Plays("U2", "Y", 1)],
    ).write(landing, MONTH)


@pytest.fixture
def run(definitions, resources):
    """Materialize a selection of MONTH without an app database; yields (materialize, instance)."""
    instance = dg.DagsterInstance.ephemeral()

    def materialize(selection=None) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [*definitions.assets, *definitions.asset_checks],
            partition_key=MONTH,
            resources=resources,  # app_database: AppDatabaseResource(), not configured
            selection=selection,
            instance=instance,
            raise_on_error=False,
        )

    yield materialize, instance
    instance.dispose()


def materializations(instance: dg.DagsterInstance, asset: str) -> list:
    records_filter = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[MONTH])
    return instance.fetch_materializations(records_filter, limit=10).records


def observations(instance: dg.DagsterInstance, asset: str) -> list[tuple[str, dict]]:
    records_filter = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[MONTH])
    records = instance.fetch_observations(records_filter, limit=10).records
    return [
        (r.asset_observation.description, {k: v.value for k, v in r.asset_observation.metadata.items()})
        for r in reversed(records)  # oldest first
    ]


def warnings(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [e.user_message for e in instance.all_logs(run_id) if e.level == logging.WARNING and not e.is_dagster_event]


def test_a_closed_month_without_an_app_database_materializes_nothing_it_did_not_write(closed_month, run):
    materialize, instance = run
    result = materialize()  # --select '*': computes the month, closes it, publishes
    assert result.success

    assert len(materializations(instance, "period_close")) == 1
    assert len(materializations(instance, "statement_notifications")) == 1
    assert materializations(instance, "published_statements") == []
    assert materializations(instance, "statement_outbox") == []
    assert observations(instance, "published_statements") == [(NOT_CONFIGURED, {"status": NOT_CONFIGURED})]
    assert observations(instance, "statement_outbox") == [
        (
            f"{NOT_CONFIGURED} (statement_outbox needs published_statements, which was not written)",
            {"status": NOT_CONFIGURED},
        )
    ]
    assert [w for w in warnings(instance, result.run_id) if "not configured" in w] == [
        f"payment_batch for {MONTH}: {DETAILS_NOT_CONFIGURED}",
        f"published_statements: {NOT_CONFIGURED}; no materialization recorded",
        f"statement_outbox: {NOT_CONFIGURED}; no materialization recorded",
    ]
    assert materializations(instance, "payment_batch") == []
    assert observations(instance, "payment_batch") == [(DETAILS_NOT_CONFIGURED, {"status": DETAILS_NOT_CONFIGURED})]
    # statement_outbox needs published_statements: skipped, and its dead-letter check with it; the
    # release and the bank's reports need a batch
    skipped = [e.step_key for e in result.all_events if e.is_step_skipped]
    assert sorted(skipped) == ["payment_release", "payment_status", "statement_outbox",
                               "statement_outbox_outbox_dead_letters"]
    assert [e for e in result.get_asset_check_evaluations() if e.check_name == "outbox_dead_letters"] == []

    # the outbox on its own records its own "not configured", and still no materialization
    alone = materialize(dg.AssetSelection.assets("statement_outbox"))
    assert alone.success
    assert materializations(instance, "statement_outbox") == []
    assert observations(instance, "statement_outbox")[-1] == (NOT_CONFIGURED, {"status": NOT_CONFIGURED})
    assert alone.get_asset_check_evaluations() == []


@dg.asset(name="statement_outbox", partitions_def=monthly_partitions)
def statement_outbox_stand_in() -> dg.MaterializeResult:
    """Stands for the real outbox (which materializes nothing without a database): the check runs after it."""
    return dg.MaterializeResult()


def test_the_dead_letter_check_without_an_app_database_warns_instead_of_passing():
    result = dg.materialize(
        [statement_outbox_stand_in, outbox_dead_letters],
        partition_key=MONTH,
        resources={"app_database": AppDatabaseResource()},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert (evaluation.passed, evaluation.severity, evaluation.description) == (
        False,
        dg.AssetCheckSeverity.WARN,
        "dead letters not counted: the app database is not configured: FAIRSTREAM_DATABASE_URL is empty",
    )
    assert {k: v.value for k, v in evaluation.metadata.items()} == {
        "status": "not configured: FAIRSTREAM_DATABASE_URL is empty"
    }


# --- the failure sensor ---------------------------------------------------------------------------

months = dg.StaticPartitionsDefinition([MONTH])


@dg.asset(partitions_def=months)
def statements_that_fail() -> None:
    raise dg.Failure("boom")


failing_job = dg.Definitions(
    assets=[statements_that_fail], jobs=[dg.define_asset_job("monthly_payout", selection=[statements_that_fail])]
).resolve_job_def("monthly_payout")


def test_the_failure_sensor_tick_says_alerts_are_not_configured():
    instance = dg.DagsterInstance.ephemeral()
    result = failing_job.execute_in_process(partition_key=MONTH, raise_on_error=False, instance=instance)
    context = dg.build_run_status_sensor_context(
        sensor_name="payout_failure_alert",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources={"alerts": AlertsResource()},
    ).for_run_failure()
    tick = payout_failure_alert()(context)
    assert isinstance(tick, dg.SkipReason)
    assert tick.skip_message == (
        f"{ALERTS_NOT_CONFIGURED}; not sent: FairStream run failed: monthly_payout for {MONTH} at "
        f"statements_that_fail: boom (http://127.0.0.1:3000/runs/{result.run_id})"
    )


def test_the_sensor_metadata_names_its_channels(monkeypatch):
    sensor = payout_failure_alert()
    assert sensor.metadata["alert_channels"].value == ALERTS_NOT_CONFIGURED
    monkeypatch.setenv("FAIRSTREAM_ALERT_WEBHOOK_URL", "http://hooks.fairstream.test/alerts")
    sensor = payout_failure_alert()
    assert sensor.metadata["alert_channels"].value == "webhook"


# --- fairstream health ----------------------------------------------------------------------------


def test_health_warns_when_no_alert_channel_is_configured():
    assert check_alerts("", "") == Check(False, ALERTS_NOT_CONFIGURED, {"channels": []}, warning=True)
    assert check_alerts("", "").to_dict() == {
        "ok": False, "detail": ALERTS_NOT_CONFIGURED, "warning": True, "channels": []
    }
    assert check_alerts(webhook_url="http://h", smtp_host="smtp") == Check(
        True, "failure alerts go to webhook and email", {"channels": ["webhook", "email"]}
    )
    assert check_alerts(webhook_url="", smtp_host="smtp").detail == "failure alerts go to email"


def test_fairstream_health_prints_the_warning_and_it_does_not_fail_the_command(tmp_path):
    """An embedded instance (no FAIRSTREAM_PG_HOST) with a fresh daemon heartbeat and nothing due."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAIRSTREAM_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), FAIRSTREAM_WAREHOUSE_DIR=str(tmp_path / "warehouse"))
    env["FAIRSTREAM_FIRST_MONTH"] = "2999-01"  # no payout due
    beat = subprocess.run([str(BIN / "dagster-daemon"), "debug", "heartbeat"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert beat.returncode == 0, beat.stderr[-3000:]
    done = subprocess.run([str(BIN / "fairstream"), "health"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert f"warning: {ALERTS_NOT_CONFIGURED}" in done.stderr.splitlines()
    report = json.loads(done.stdout)
    assert (report["ok"], report["warnings"]) == (True, [ALERTS_NOT_CONFIGURED])
    assert report["checks"]["alerts"] == {"ok": False, "detail": ALERTS_NOT_CONFIGURED, "warning": True, "channels": []}

"""Runs failed by a database outage are run again (at most twice); money checks and contract errors never.

The decision (``lib.alerting.storage_outage``) on exact exception chains, then the real sensor on real failed
runs of an ephemeral instance: the RunRequest it returns, and the alert it suppresses.
"""

from __future__ import annotations

import dagster as dg
import psycopg2
import pytest
from dagster_postgres.utils import DagsterPostgresException

from fairstream_pipeline.defs.alerting.outage_reruns import RERUNNABLE_JOBS, rerun_after_database_outage
from fairstream_pipeline.defs.alerting.run_failures import RERUNNABLE_JOB_NAMES, outage_rerun_decision
from fairstream_pipeline.lib.alerting.storage_outage import (
    MAX_OUTAGE_RERUNS,
    OUTAGE_RERUN_TAG,
    RERUN_OF_TAG,
    ErrorLink,
    decide_rerun,
    is_database_outage,
)

INSTANCE_DOWN = [
    ErrorLink("DagsterExecutionStepExecutionError", 'Error occurred while executing op "count_and_allocate":'),
    ErrorLink("DagsterPostgresException", "dagster_postgres.utils.DagsterPostgresException: too many retries for DB connection"),
    ErrorLink("OperationalError", 'connection to server at "127.0.0.1", port 5432 failed: Connection refused'),
]
APP_DATABASE_RESTARTED = [
    ErrorLink("OperationalError", "terminating connection due to administrator command\nserver closed the connection unexpectedly")
]
STATEMENT_TIMEOUT = [ErrorLink("OperationalError", "canceling statement due to statement timeout")]
CONTRACT_ERROR = [ErrorLink("Failure", "listening_events/2026-09-03/part-0.parquet: row group 2 is corrupt")]
MONEY_CHECK = [ErrorLink("DagsterAssetCheckFailedError", "Blocking check 'uc_cents_reconcile_per_segment' failed")]


@pytest.mark.parametrize(
    ("chain", "outage"),
    [
        (INSTANCE_DOWN, True),
        (APP_DATABASE_RESTARTED, True),
        (STATEMENT_TIMEOUT, False),  # an OperationalError about the SQL, not the connection
        (CONTRACT_ERROR, False),
        (MONEY_CHECK, False),
        ([ErrorLink("ValueError", "connection refused")], False),  # the words alone are not enough
        ([], False),
    ],
)
def test_which_exception_chains_are_a_database_outage(chain, outage):
    assert is_database_outage(chain) is outage


def test_a_run_failed_only_by_an_outage_is_rerun_with_its_tags_and_a_count():
    tags = {"dagster/partition": "2026-09", "dagster/backfill": "b1", "fairstream/trigger": "schedule"}
    first = decide_rerun("run-1", tags, {"count_and_allocate": INSTANCE_DOWN})
    assert first.rerun
    assert dict(first.tags) == {"fairstream/trigger": "schedule", OUTAGE_RERUN_TAG: "1", RERUN_OF_TAG: "run-1"}
    second = decide_rerun("run-2", {**tags, **first.tags}, {"published_statements": APP_DATABASE_RESTARTED})
    assert second.rerun
    assert (second.tags[OUTAGE_RERUN_TAG], second.tags[RERUN_OF_TAG]) == ("2", "run-1")
    third = decide_rerun("run-3", {**tags, **second.tags}, {"count_and_allocate": INSTANCE_DOWN})
    assert not third.rerun
    assert third.reason == f"already re-run {MAX_OUTAGE_RERUNS} times after database outages"


def test_a_money_check_or_contract_error_beside_an_outage_is_never_rerun():
    decision = decide_rerun(
        "run-1",
        {},
        {"count_and_allocate": INSTANCE_DOWN, "payee_earnings_money_checks": MONEY_CHECK, "ingest": CONTRACT_ERROR},
    )
    assert not decision.rerun
    assert decision.reason == "step(s) ingest, payee_earnings_money_checks failed for another reason than an outage"
    assert not decide_rerun("run-1", {}, {}).rerun  # a run failure: Dagster's run_retries decide


def test_the_rerunnable_jobs_are_the_ones_the_alert_knows():
    assert {job.name for job in RERUNNABLE_JOBS} == RERUNNABLE_JOB_NAMES


# -- the sensor on real failed runs ----------------------------------------------------------------


def _lose_the_instance():
    try:
        raise psycopg2.OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')
    except psycopg2.OperationalError as exc:
        raise DagsterPostgresException("too many retries for DB connection") from exc


@dg.op
def counting_in_an_outage() -> None:
    _lose_the_instance()


@dg.op
def contract_error() -> None:
    raise dg.Failure("listening_events/2026-09-03/part-0.parquet: row group 2 is corrupt", allow_retries=False)


@dg.job
def outage_job():
    counting_in_an_outage()


@dg.job
def contract_job():
    contract_error()


def _failure_context(job: dg.JobDefinition, instance: dg.DagsterInstance, tags: dict[str, str]):
    result = job.execute_in_process(instance=instance, raise_on_error=False, tags=tags)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    failure = next(
        record.dagster_event
        for record in instance.all_logs(result.run_id)
        if record.dagster_event is not None and record.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE
    )
    return dg.build_run_status_sensor_context(
        sensor_name=rerun_after_database_outage.name, dagster_event=failure, dagster_instance=instance, dagster_run=run
    ).for_run_failure()


def test_the_sensor_requests_the_same_month_again_after_an_outage():
    instance = dg.DagsterInstance.ephemeral()
    context = _failure_context(outage_job, instance, {"dagster/partition": "2026-09", "fairstream/trigger": "schedule"})
    request = rerun_after_database_outage(context)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == f"outage-rerun:{context.dagster_run.run_id}"
    assert request.job_name == "outage_job"
    assert request.partition_key == "2026-09"
    assert request.tags[OUTAGE_RERUN_TAG] == "1"
    assert request.tags[RERUN_OF_TAG] == context.dagster_run.run_id
    assert request.tags["fairstream/trigger"] == "schedule"
    assert outage_rerun_decision(context).reason == "step(s) counting_in_an_outage failed because a database was unreachable"


def test_the_sensor_leaves_a_contract_error_failed():
    instance = dg.DagsterInstance.ephemeral()
    context = _failure_context(contract_job, instance, {"dagster/partition": "2026-09"})
    skipped = rerun_after_database_outage(context)
    assert isinstance(skipped, dg.SkipReason)
    assert skipped.skip_message == (
        f"run {context.dagster_run.run_id} not re-run: step(s) contract_error failed for another reason than an outage"
    )

"""The ``rerun_after_database_outage`` sensor: run a month again when a database outage failed a step.

Dagster's ``run_retries`` re-launch a run that failed as a whole (a crashed worker, or the instance
unreachable when the step failed). They do not re-launch a run whose failure was recorded as a
step's (``retry_on_asset_or_op_failure: false``), on purpose: a failed money check must stay
failed. This sensor covers the step failures that say nothing about the data: every failed step
was failed by an unreachable database (:mod:`fairstream_pipeline.lib.alerting.storage_outage`). It requests
the same job, partition, asset selection, run config and tags again, at most twice per original
run (tags ``fairstream/outage_rerun`` and ``fairstream/rerun_of``); ``payout_failure_alert`` does
not alert on a run this sensor re-runs, and alerts on the re-run that finally fails.
"""

from __future__ import annotations

import dagster as dg

from fairstream_pipeline.defs.alerting.run_failures import outage_rerun_decision
from fairstream_pipeline.defs.close.assets import close_month_job
from fairstream_pipeline.defs.notifications.sending import send_statement_emails_job
from fairstream_pipeline.defs.payouts.jobs import monthly_payout_job

# Their names are run_failures.RERUNNABLE_JOB_NAMES (tested), which the failure alert reads.
RERUNNABLE_JOBS = [monthly_payout_job, close_month_job, send_statement_emails_job]


@dg.run_failure_sensor(
    name="rerun_after_database_outage",
    monitored_jobs=RERUNNABLE_JOBS,
    request_jobs=RERUNNABLE_JOBS,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Runs a month again (at most twice) when every failed step of its run was failed by an "
        "unreachable database (the instance's PostgreSQL or the application database), and never "
        "when a money check or a contract error failed."
    ),
)
def rerun_after_database_outage(context: dg.RunFailureSensorContext):
    run = context.dagster_run
    decision = outage_rerun_decision(context)
    if not decision.rerun:
        return dg.SkipReason(f"run {run.run_id} not re-run: {decision.reason}")
    context.log.info(f"re-running run {run.run_id} of {run.job_name}: {decision.reason}")
    return dg.RunRequest(
        run_key=f"outage-rerun:{run.run_id}",
        job_name=run.job_name,
        partition_key=run.tags.get("dagster/partition"),
        run_config=run.run_config,
        asset_selection=list(run.asset_selection) if run.asset_selection else None,
        asset_check_keys=list(run.asset_check_selection) if run.asset_check_selection else None,
        tags=dict(decision.tags),
    )

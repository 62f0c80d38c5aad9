"""Failure alerts: the ``alerts`` resource and the ``payout_failure_alert`` run-failure sensor.

``payout_failure_alert`` (running by default, evaluated at most every 30 s) sends one alert for
every failed run of a job of this code location, through the ``alerts`` resource: job name,
partition, failed step keys, error, run id and ``{FAIRSTREAM_UI_BASE_URL}/runs/{run_id}``. The
payload, channels and retry budget are described in :mod:`fairstream_pipeline.lib.alerting.alerts`.

Once per failure: Dagster's run-status cursor hands each failed run to the sensor exactly once, and
moves on even when the sensor raises (the error shows on the sensor tick, not as a second alert).
A run that Dagster's automatic run retries will re-launch (its ``dagster/will_retry`` tag, else
``lib.alerting.alerts.will_be_retried`` with the instance's ``run_retries`` settings), or that ``rerun_after_database_outage`` will run again, gets
no alert; the retry that finally fails gets it. A tick
that exceeds Dagster's sensor timeout (60 s, ``DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS``) is evaluated
again: with both channels hanging (27 s each at worst) and several failed runs in one tick, an
alert that one channel did deliver may be repeated.

Without a channel (``FAIRSTREAM_ALERT_WEBHOOK_URL`` and ``FAIRSTREAM_SMTP_HOST`` empty) the sensor
still runs, and says so: its metadata ``alert_channels`` is ``lib.ALERTS_NOT_CONFIGURED``, and the
tick that meets a failed run it would alert on is skipped with "alerts are not configured: set
FAIRSTREAM_ALERT_WEBHOOK_URL or FAIRSTREAM_SMTP_HOST; not sent: <the alert's text>" (then Dagster
hands it one failed run per tick). Ticks without a failed run carry no message: Dagster calls the
sensor's function only for a failed run. ``fairstream health`` warns about it too.

Dagster matches a run to this code location by the origin recorded when the run is launched from
the UI, a schedule, a sensor or a backfill. A run started from a shell with
``dagster asset materialize -m ...`` has no such origin: this sensor does not see it (and Dagster
does not retry it).

The channels are the ``alerts`` resource's (``defs/alerting/resources.py``), read when the
definitions load (``payout_failure_alert()``, called by ``definitions.py``), never at import.
"""

from __future__ import annotations

import dagster as dg

from fairstream_pipeline.defs.alerting.resources import AlertsResource, alerts_from_env
from fairstream_pipeline.defs.alerting.run_failures import (
    RERUNNABLE_JOB_NAMES,
    outage_rerun_decision,
)
from fairstream_pipeline.lib.alerting import alerts as lib


def _step_message(event: dg.DagsterEvent) -> str:
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    error = data.error
    # "Error occurred while executing op X" wraps the exception that says what happened
    while error is not None and error.cls_name == "DagsterExecutionStepExecutionError" and error.cause is not None:
        error = error.cause
    return error.message.strip() if error is not None else "step failed"


def describe_run_failure(context: dg.RunFailureSensorContext, ui_base_url: str) -> lib.RunFailure:
    """What the alert about the failed run of ``context`` says."""
    run = context.dagster_run
    steps: dict[str, str] = {}
    for event in context.get_step_failure_events():
        steps.setdefault(event.step_key, _step_message(event))
    failure = context.failure_event
    run_message = failure.message or "run failed"
    run_error = getattr(failure.event_specific_data, "error", None)
    if run_error is not None:
        run_message = f"{run_message} {run_error.message.strip()}"
    return lib.RunFailure(
        job_name=run.job_name,
        partition=run.tags.get(lib.PARTITION_TAG),
        failed_steps=tuple(steps),
        error=lib.failure_error(list(steps.items()), run_message),
        run_id=run.run_id,
        run_url=lib.run_url(ui_base_url, run.run_id),
    )


def run_will_be_retried(context: dg.RunFailureSensorContext) -> bool:
    """``lib.alerting.alerts.will_be_retried`` for the failed run, with the instance's ``run_retries``."""
    instance = context.instance
    tags = dict(context.dagster_run.tags)
    reason = getattr(context.failure_event.event_specific_data, "failure_reason", None)
    if reason is not None:  # the tag may not be written yet when the sensor reads the run
        tags.setdefault(lib.FAILURE_REASON_TAG, reason.value)
    return lib.will_be_retried(
        tags,
        retries_enabled=instance.run_retries_enabled,
        max_retries=instance.run_retries_max_retries,
        retry_on_asset_or_op_failure=instance.run_retries_retry_on_asset_or_op_failure,
    )


def alert_on_run_failure(context: dg.RunFailureSensorContext, alerts: AlertsResource) -> dg.SkipReason | None:
    """Alert once on the failed run; a skipped tick that says so when no channel is configured."""
    run = context.dagster_run
    if run_will_be_retried(context):
        context.log.info(f"run {run.run_id} of {run.job_name} will be retried automatically; no alert")
        return None
    if run.job_name in RERUNNABLE_JOB_NAMES and outage_rerun_decision(context).rerun:
        context.log.info(f"run {run.run_id} of {run.job_name} failed in a database outage and will be re-run; no alert")
        return None
    failure = describe_run_failure(context, alerts.ui_base_url)
    if not alerts.channels:
        context.log.warning(f"{lib.ALERTS_NOT_CONFIGURED}; not sent: {failure.text}")
        return dg.SkipReason(f"{lib.ALERTS_NOT_CONFIGURED}; not sent: {failure.text}")
    delivered = alerts.send(failure.subject, failure.fields, text=failure.text, log=context.log)
    if delivered:
        context.log.info(f"alerted on run {run.run_id} via {', '.join(delivered)}")
    return None


def payout_failure_alert() -> dg.SensorDefinition:
    """``payout_failure_alert``, its metadata naming the channels configured now (or none). Built by
    the code location's loader (``definitions.py``), so the settings are read when it loads."""
    channels = alerts_from_env().channels
    return dg.run_failure_sensor(
        name="payout_failure_alert",
        minimum_interval_seconds=30,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Alerts (webhook and/or email) once for every failed run of this code location that "
            "Dagster will not retry automatically."
        ),
        metadata={"alert_channels": ", ".join(channels) or lib.ALERTS_NOT_CONFIGURED},
    )(alert_on_run_failure)

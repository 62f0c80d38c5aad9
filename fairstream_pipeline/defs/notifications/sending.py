"""Sending the statement emails, outside the payout run.

* ``send_statement_emails`` job (op ``send_outbox_messages``): sends what is due in the outbox
  (``fairstream_pipeline.lib.notifications.mail_sender``: batches claimed with SKIP LOCKED, one SMTP
  connection, a rate limit, backoff with jitter, a circuit breaker, a graceful SIGTERM). It reports
  sent, retried, dead, queue depth and throughput, evaluates ``outbox_dead_letters`` for every month
  it touched, and alerts for every new set of dead letters of a month with nothing left to send
  (``lib/notifications/dead_letter_alerts.py``).
* ``outbox_sensor`` starts that job when rows are ready to send and no send run is in progress.
"""

from typing import Any

import dagster as dg

from fairstream_pipeline.defs.alerting.resources import AlertsResource
from fairstream_pipeline.defs.notifications.dead_letters import (
    OUTBOX_ASSET,
    dead_letter_check_evaluation,
    dead_letter_evaluation,
)
from fairstream_pipeline.defs.notifications.resources import (
    DB_NOT_CONFIGURED,
    SMTP_NOT_CONFIGURED,
    SmtpResource,
)
from fairstream_pipeline.defs.resources import AppDatabaseResource
from fairstream_pipeline.lib.notifications import outbox_queue as queue
from fairstream_pipeline.lib.notifications.dead_letter_alerts import (
    alert_months_with_dead_letters,
)
from fairstream_pipeline.lib.notifications.mail_sender import SenderSettings, send_outbox
from fairstream_pipeline.lib.notifications.send_controls import StopSignal
from fairstream_pipeline.lib.notifications.send_report import FallbackLog, SendReport
from fairstream_pipeline.lib.notifications.smtp import RelayMisconfigured

SEND_JOB = "send_statement_emails"
SENSOR_INTERVAL_SECONDS = 60
IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]

# The relay is down (the circuit breaker opened): the op fails and Dagster runs it again after
# 2, 4, 8 and 16 minutes (+/- jitter), about 30 minutes; then the sensor starts a new run.
RELAY_DOWN_RETRY = dg.RetryPolicy(
    max_retries=4, delay=120, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


class SendConfig(dg.Config):
    """How one send run works (defaults: 100 per batch, 6 attempts, backoff 300 s doubling up to
    3600 s with jitter, breaker after 5 transport failures, stale 'sending' rows reclaimed after 900 s)."""

    batch_size: int = SenderSettings.batch_size
    max_attempts: int = SenderSettings.max_attempts
    backoff_base_seconds: float = SenderSettings.backoff_base_seconds
    backoff_cap_seconds: float = SenderSettings.backoff_cap_seconds
    breaker_threshold: int = SenderSettings.breaker_threshold
    reconnect_delay_seconds: float = SenderSettings.reconnect_delay_seconds
    stale_after_seconds: float = SenderSettings.stale_after_seconds
    retry_when_relay_down: bool = True  # let RELAY_DOWN_RETRY run the op again; false: fail at once

    def settings(self, rate_per_second: float) -> SenderSettings:
        """The sender's settings: this config's (each field named as in ``SenderSettings``) at the relay's rate."""
        return SenderSettings(rate_per_second=rate_per_second, **self.model_dump(exclude={"retry_when_relay_down"}))


def report_metadata(report: SendReport) -> dict[str, Any]:
    """What a send run shows in the UI."""
    return {
        "sent": report.sent,
        "retried": report.retried,
        "dead": report.dead,
        "returned_to_pending": report.returned_to_pending,
        "reclaimed_stale": report.reclaimed,
        "queue_depth": report.queue_depth,
        "pending": report.queue.get("pending", 0),
        "retry_scheduled": report.queue.get("retry", 0),
        "throughput_per_second": round(report.throughput, 2),
        "elapsed_seconds": round(report.elapsed_seconds, 3),
        "smtp_connections": report.connections,
        "months": sorted(report.months),
        "breaker_open": report.breaker_open,
        "lost_claims": report.lost_claims,
    }


def _report_months(context: dg.OpExecutionContext, app_database: AppDatabaseResource, months: list[str]) -> None:
    """Per month: the dead-letter check's evaluation and an observation of the outbox counts."""
    for month in months:
        with app_database.transaction() as cursor:
            passed, metadata = dead_letter_evaluation(cursor, month)
            counts = queue.month_counts(cursor, month)
        context.log_event(dead_letter_check_evaluation(month, passed, metadata))
        context.log_event(dg.AssetObservation(asset_key=OUTBOX_ASSET, partition=month, metadata=counts))


@dg.op(out=dg.Out(dg.Nothing), retry_policy=RELAY_DOWN_RETRY)
def send_outbox_messages(
    context: dg.OpExecutionContext,
    config: SendConfig,
    app_database: AppDatabaseResource,
    smtp: SmtpResource,
    alerts: AlertsResource,
) -> None:
    """Send the statement emails that are due in the outbox, then report and alert."""
    if not app_database.configured:
        context.log.info(f"statement emails: sending is {DB_NOT_CONFIGURED}; nothing sent")
        context.add_output_metadata({"status": DB_NOT_CONFIGURED})
        return
    app_database.ensure_schema()
    if not smtp.configured:
        with app_database.transaction() as cursor:
            depth = queue.queue_depth(cursor)
        waiting = depth["pending"] + depth["retry"]
        context.log.warning(f"statement emails: sending is {SMTP_NOT_CONFIGURED}; {waiting} message(s) wait")
        context.add_output_metadata({"status": SMTP_NOT_CONFIGURED, "queue_depth": waiting})
        return
    try:
        settings = config.settings(smtp.rate_per_second)
    except ValueError as exc:
        raise dg.Failure(description=f"send config: {exc}", allow_retries=False) from exc
    stop = StopSignal()
    # SIGTERM/SIGINT: finish the message in flight, give the rest back, then fail without retry
    # (re-raising the signal would make Dagster retry the op, because it has a RetryPolicy).
    with stop.installed(redeliver=False):
        try:
            # The instance unreachable mid-send must not stop it: lines go to stderr meanwhile.
            log = FallbackLog(context.log)
            report = send_outbox(app_database.url, smtp.relay(), settings, stop=stop, log=log)
        except RelayMisconfigured as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        metadata = report_metadata(report)
        if log.lines_not_recorded:  # the instance was unreachable for a while during the send
            metadata["log_lines_only_in_compute_logs"] = log.lines_not_recorded
        _report_months(context, app_database, sorted(report.months))
        if stop.requested:
            raise dg.Failure(
                description=(
                    f"stopped by {stop.name}: {report.sent} sent; the {report.returned_to_pending} claimed "
                    "messages not yet sent are pending again"
                ),
                metadata=metadata,
                allow_retries=False,
            )
        metadata["dead_letter_alerts"] = alert_months_with_dead_letters(app_database.transaction, alerts, context.log)
        if report.lost_claims:
            raise dg.Failure(
                description=(
                    f"another sender took over {report.lost_claims} message(s) of this run (their lease ran out): "
                    f"this run stopped and did not send them; {report.sent} sent. Check stale_after_seconds "
                    "against the relay's speed, and that one sender runs at a time."
                ),
                metadata=metadata,
                allow_retries=False,
            )
        if report.breaker_open:
            raise dg.Failure(
                description=report.relay_unavailable_message,
                metadata=metadata,
                allow_retries=config.retry_when_relay_down,
            )
        context.add_output_metadata(metadata)


@dg.job(
    name=SEND_JOB,
    executor_def=dg.in_process_executor,
    description=(
        "Send the statement emails that are due in the outbox (started by outbox_sensor, never part "
        "of the payout run). Transient failures are retried with backoff, permanent ones become "
        "dead letters; a relay that is down stops the run and leaves the rows pending."
    ),
)
def send_statement_emails_job():
    send_outbox_messages()


def _latest_run(context: dg.SensorEvaluationContext, statuses: list[dg.DagsterRunStatus]):
    runs = context.instance.get_runs(filters=dg.RunsFilter(job_name=SEND_JOB, statuses=statuses), limit=1)
    return runs[0] if runs else None


@dg.sensor(
    name="outbox_sensor",
    job=send_statement_emails_job,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Starts send_statement_emails when the outbox has messages ready to send (pending, or "
        "retry whose time has come) and no send run is queued or running. Skips when the app "
        "database or SMTP is not configured."
    ),
)
def outbox_sensor(context: dg.SensorEvaluationContext, app_database: AppDatabaseResource, smtp: SmtpResource):
    if not app_database.configured:
        return dg.SkipReason(f"app database {DB_NOT_CONFIGURED}")
    if not smtp.configured:
        return dg.SkipReason(f"SMTP {SMTP_NOT_CONFIGURED}")
    active = _latest_run(context, IN_PROGRESS)
    if active is not None:
        return dg.SkipReason(f"a send run is in progress: {active.run_id} ({active.status.value})")
    app_database.ensure_schema()
    with app_database.transaction() as cursor:
        ready = queue.ready_count(cursor)
        depth = queue.queue_depth(cursor)
    if not ready:
        return dg.SkipReason(f"no messages ready to send ({depth['retry']} scheduled for retry later)")
    # One request per finished send run: the key never repeats while the outbox waits for a run.
    last = _latest_run(context, FINISHED)
    return dg.RunRequest(
        run_key=f"after:{last.run_id if last else 'none'}",
        tags={"fairstream/trigger": "outbox_sensor", "fairstream/ready": str(ready)},
    )

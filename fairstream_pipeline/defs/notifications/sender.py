"""Sending the statement emails, outside the payout run.

* ``smtp`` (:class:`SmtpResource`): the mail relay, from the environment (secrets as ``dg.EnvVar``).
* ``send_statement_emails`` job (op ``send_outbox_messages``): sends what is due in the outbox
  (``fairstream_pipeline.lib.mail_sender``: batches claimed with SKIP LOCKED, one SMTP connection,
  a rate limit, backoff with jitter, a circuit breaker, a graceful SIGTERM). It reports sent,
  retried, dead, queue depth and throughput, evaluates ``outbox_dead_letters`` for every month it
  touched, and alerts for every new set of dead letters of a month with nothing left to send.
* ``outbox_sensor`` starts that job when rows are ready to send and no send run is in progress.
* ``replay_dead_letters`` job: config ``{month: "2026-10", payees: ["p1", ...]}`` (payees optional:
  all of the month's dead letters) moves dead letters back to ``pending``; the next send run
  delivers them. In the UI: Jobs -> replay_dead_letters -> Launchpad, e.g.
  ``ops: {replay_dead_letter_messages: {config: {month: "2026-10", payees: ["artist-0042"]}}}``.
* ``outbox_dead_letters``: a WARN check on ``statement_outbox`` per month (dead count, first payees
  and errors). Without an app database it does not pass: WARN, passed=False, "dead letters not
  counted: ..." (it is skipped with ``statement_outbox`` in a month's run, which then writes nothing).

Environment (read when the code location loads; empty means the default):

==================================  =========  ================================================
``FAIRSTREAM_SMTP_HOST``            (empty)    the relay; empty: sending is not configured
``FAIRSTREAM_SMTP_PORT``            ``587``
``FAIRSTREAM_SMTP_STARTTLS``        ``true``   true/false, yes/no, 1/0
``FAIRSTREAM_SMTP_USER``            (empty)    secret, ``dg.EnvVar``; empty: no login
``FAIRSTREAM_SMTP_PASSWORD``        (empty)    secret, ``dg.EnvVar``
``FAIRSTREAM_MAIL_FROM``            (empty)    the From address; required to send
``FAIRSTREAM_MAIL_RATE_PER_SECOND`` ``10``     messages per second (0: no limit)
==================================  =========  ================================================
"""

import os
from typing import Any

import dagster as dg

from fairstream_pipeline.defs.alerting import AlertsResource
from fairstream_pipeline.defs.metadata import markdown_table
from fairstream_pipeline.defs.partitions import monthly_partitions
from fairstream_pipeline.defs.resources import AppDatabaseResource
from fairstream_pipeline.lib import outbox_queue as queue
from fairstream_pipeline.lib.mail_sender import (
    FallbackLog,
    RelayMisconfigured,
    RelaySettings,
    SenderSettings,
    SendReport,
    StopSignal,
    send_outbox,
)
from fairstream_pipeline.lib.months import parse_month

OUTBOX_ASSET = dg.AssetKey("statement_outbox")
DEAD_LETTER_CHECK = "outbox_dead_letters"
SEND_JOB = "send_statement_emails"
SENSOR_INTERVAL_SECONDS = 60
DB_NOT_CONFIGURED = "not configured: FAIRSTREAM_DATABASE_URL is empty"
SMTP_NOT_CONFIGURED = "not configured: FAIRSTREAM_SMTP_HOST is empty"
DEAD_LETTERS_NOT_COUNTED = f"dead letters not counted: the app database is {DB_NOT_CONFIGURED}"
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


class SmtpResource(dg.ConfigurableResource):
    """The mail relay for statement emails (FAIRSTREAM_SMTP_HOST, _PORT, _STARTTLS, _USER,
    _PASSWORD, FAIRSTREAM_MAIL_FROM, FAIRSTREAM_MAIL_RATE_PER_SECOND). Empty host: not configured."""

    host: str = ""
    port: int = 587
    starttls: bool = True
    user: str = ""
    password: str = ""
    mail_from: str = ""
    timeout_seconds: float = 30.0
    rate_per_second: float = 10.0

    @property
    def configured(self) -> bool:
        return bool(self.host)

    def relay(self) -> RelaySettings:
        return RelaySettings(
            host=self.host,
            port=self.port,
            starttls=self.starttls,
            user=self.user,
            password=self.password,
            mail_from=self.mail_from,
            timeout_seconds=self.timeout_seconds,
        )


def _parse_bool(name: str, default: str) -> bool:
    value = (os.environ.get(name) or default).strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name}: expected true or false, got {value!r}")


def _parse_rate(name: str, default: str) -> float:
    value = os.environ.get(name) or default
    try:
        rate = float(value)
    except ValueError:
        raise ValueError(f"{name}: expected a number of messages per second, got {value!r}") from None
    if rate < 0:
        raise ValueError(f"{name}: must be >= 0 (0: no limit), got {value!r}")
    return rate


def smtp_from_env() -> SmtpResource:
    """The ``smtp`` resource from the environment; set values are passed as ``dg.EnvVar``."""

    def env(name: str, default: Any = "") -> Any:
        return dg.EnvVar(name) if os.environ.get(name) else default

    return SmtpResource(
        host=env("FAIRSTREAM_SMTP_HOST"),
        port=dg.EnvVar.int("FAIRSTREAM_SMTP_PORT") if os.environ.get("FAIRSTREAM_SMTP_PORT") else 587,
        starttls=_parse_bool("FAIRSTREAM_SMTP_STARTTLS", "true"),
        user=env("FAIRSTREAM_SMTP_USER"),
        password=env("FAIRSTREAM_SMTP_PASSWORD"),
        mail_from=env("FAIRSTREAM_MAIL_FROM"),
        rate_per_second=_parse_rate("FAIRSTREAM_MAIL_RATE_PER_SECOND", "10"),
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
        return SenderSettings(
            batch_size=self.batch_size,
            rate_per_second=rate_per_second,
            max_attempts=self.max_attempts,
            backoff_base_seconds=self.backoff_base_seconds,
            backoff_cap_seconds=self.backoff_cap_seconds,
            breaker_threshold=self.breaker_threshold,
            reconnect_delay_seconds=self.reconnect_delay_seconds,
            stale_after_seconds=self.stale_after_seconds,
        )


def _cell(value: Any, width: int = 120) -> str:
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def dead_letter_evaluation(cursor, month: str) -> tuple[bool, dict[str, Any]]:
    """Whether ``month`` has no dead letters, and the check's metadata."""
    counts = queue.month_counts(cursor, month)
    metadata: dict[str, Any] = {
        "dead": counts["dead"],
        "sent": counts["sent"],
        "still_to_send": counts["pending"] + counts["retry"] + counts["sending"],
        "no_address": counts["no_address"],
    }
    first = queue.dead_letters(cursor, month, limit=10)
    if first:
        metadata["first_dead_letters"] = dg.MetadataValue.md(
            markdown_table(
                ["payee_id", "recipient", "attempts", "last_error"],
                [(_cell(p), _cell(r), a, _cell(e)) for p, r, a, e in first],
            )
        )
    return counts["dead"] == 0, metadata


def _evaluation(month: str, passed: bool, metadata: dict[str, Any]) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=OUTBOX_ASSET,
        check_name=DEAD_LETTER_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        partition=month,
        metadata=metadata,
    )


@dg.asset_check(
    asset=OUTBOX_ASSET,
    name=DEAD_LETTER_CHECK,
    partitions_def=monthly_partitions,
    blocking=False,
    description=(
        "Warns when statement emails of the month are dead letters (a permanent SMTP failure, or "
        "every attempt used). Replay them with the replay_dead_letters job. Without an app "
        "database (FAIRSTREAM_DATABASE_URL empty) nothing is counted and it warns, never passes."
    ),
)
def outbox_dead_letters(
    context: dg.AssetCheckExecutionContext, app_database: AppDatabaseResource
) -> dg.AssetCheckResult:
    if not app_database.configured:  # nothing was counted: a warning, never a pass
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=DEAD_LETTERS_NOT_COUNTED,
            metadata={"status": DB_NOT_CONFIGURED},
        )
    app_database.ensure_schema()
    with app_database.transaction() as cursor:
        passed, metadata = dead_letter_evaluation(cursor, context.partition_key)
    return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.WARN, metadata=metadata)


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
        context.log_event(_evaluation(month, passed, metadata))
        context.log_event(dg.AssetObservation(asset_key=OUTBOX_ASSET, partition=month, metadata=counts))


def alert_months_with_dead_letters(
    app_database: AppDatabaseResource, alerts: Any, log
) -> list[str]:
    """Alert for every new set of dead letters of a month that has nothing left to send; return the
    months alerted.

    Marking the rows alerted and sending the alert share one transaction: a failed alert is tried
    again by the next send run, and two senders never alert the same dead letters twice. A dead
    letter that dies after an earlier alert of its month gets an alert of its own.
    """
    with app_database.transaction() as cursor:
        months = queue.months_with_new_dead_letters(cursor)
    alerted = []
    for month, _ in months:
        try:
            with app_database.transaction() as cursor:
                new = queue.record_dead_letter_alert(cursor, month)
                if not new:
                    continue
                total = queue.month_counts(cursor, month)["dead"]
                first = new[:10]
                alerts.send(
                    f"FairStream statement emails: {len(new)} undeliverable for {month}",
                    {
                        "month": month,
                        "dead": len(new),
                        "dead_in_month": total,
                        "first_payees": [payee for payee, _, _, _ in first],
                        "first_errors": [f"{payee}: {error}" for payee, _, _, error in first],
                        "replay": f'job replay_dead_letters with config {{month: "{month}"}}',
                    },
                )
            alerted.append(month)
        except Exception as exc:  # the next send run tries again
            log.warning(f"dead-letter alert for {month} not sent ({type(exc).__name__}: {exc}); will try again")
    return alerted


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
        metadata["dead_letter_alerts"] = alert_months_with_dead_letters(app_database, alerts, context.log)
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


class ReplayConfig(dg.Config):
    """The month whose dead letters go back to pending, and optionally only these payees."""

    month: str
    payees: list[str] | None = None


@dg.op(out=dg.Out(dg.Nothing))
def replay_dead_letter_messages(
    context: dg.OpExecutionContext, config: ReplayConfig, app_database: AppDatabaseResource
) -> None:
    """Move the month's dead letters (or those of the given payees) back to pending, attempts 0."""
    try:
        parse_month(config.month)
    except ValueError as exc:
        raise dg.Failure(description=f"month: {exc}", allow_retries=False) from exc
    if not app_database.configured:
        raise dg.Failure(description=f"cannot replay: the app database is {DB_NOT_CONFIGURED}", allow_retries=False)
    app_database.ensure_schema()
    with app_database.transaction() as cursor:
        replayed = queue.replay_dead(cursor, config.month, config.payees)
        passed, check_metadata = dead_letter_evaluation(cursor, config.month)
    not_dead = sorted(set(config.payees or ()) - set(replayed))
    context.log.info(f"{config.month}: {len(replayed)} dead letter(s) back to pending; send_statement_emails delivers them")
    if not_dead:
        context.log.warning(f"{config.month}: no dead letter for {', '.join(not_dead)}")
    context.log_event(_evaluation(config.month, passed, check_metadata))
    context.add_output_metadata(
        {"month": config.month, "replayed": len(replayed), "replayed_payees": replayed, "not_dead": not_dead}
    )


@dg.job(
    name="replay_dead_letters",
    executor_def=dg.in_process_executor,
    description=(
        "Send dead letters again: config month (YYYY-MM) and optionally payees. The rows go back "
        "to pending with their attempts reset; the next send_statement_emails run delivers them."
    ),
)
def replay_dead_letters_job():
    replay_dead_letter_messages()


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


@dg.definitions
def sender() -> dg.Definitions:
    return dg.Definitions(
        jobs=[send_statement_emails_job, replay_dead_letters_job],
        sensors=[outbox_sensor],
        asset_checks=[outbox_dead_letters],
        resources={"smtp": smtp_from_env()},
    )

"""Alerts: what a failed run says, whether Dagster will retry it, and how an alert is delivered.

Pure Python (no Dagster import); the Dagster wiring is ``fairstream_pipeline.defs.alerting.failure_alerts``.

Channels. An alert has a ``subject`` and ``fields`` (a flat JSON-able mapping) and goes to every
configured channel; a channel that is not configured is off:

* webhook (``webhook_url``): one HTTP ``POST`` of ``{"subject": ..., **fields, "text": ...}`` as
  JSON (``Content-Type: application/json``), where ``text`` is one human line (Slack-compatible).
  Any 2xx answer is delivered.
* email (``lib.notifications.smtp.SmtpSettings``, to ``recipients``): one plain-text message,
  subject ``subject``, body the ``text`` line, a blank line, then one ``key: value`` line per field.
  STARTTLS when ``starttls`` (port 587); ``LOGIN`` when a user is set. Implicit TLS (port 465) is
  not supported.

Retry budget (``RetryBudget``, the same for both channels): at most ``attempts`` (4) tries, each
with a ``timeout_seconds`` (5 s) socket timeout. Before retry ``k`` (1, 2, 3) it sleeps
``uniform(0, min(cap_seconds, base_seconds * 2 ** (k - 1)))`` — exponential backoff with full
jitter, base 1 s, cap 30 s, so at most 1, 2 and 4 s (7 s in all). Retried: connection errors,
timeouts, HTTP 5xx and 429, SMTP 4xx replies. Not retried: any other HTTP 4xx, SMTP 5xx replies
(a rejected login), TLS errors, a server without STARTTLS. Worst case per channel, when every try
times out: 4 x 5 s + 7 s = 27 s. ``sleep`` and ``rng`` are injectable so tests run fast.

``send_alert`` tries every configured channel, then raises ``AlertDeliveryError`` naming each
channel that failed (after the others were tried). With no channel configured it logs the warning
``ALERTS_NOT_CONFIGURED`` and returns without error (``alert_channels`` names the channels that are on).

Run failures. ``RunFailure`` holds the job name, the partition (``dagster/partition``, may be
absent), the failed step keys, the error (per failed step: a ``dg.Failure``'s description, else the
error message; without a failed step, the run failure's own message), the run id and the link
``{ui_base_url}/runs/{run_id}``.

Retried runs. Dagster records its decision in the run tag ``dagster/will_retry``; with retries enabled
``will_be_retried`` returns it whenever it is there. It may not be there yet when a run-failure
sensor reads the run: Dagster stores the failure event first, then the run's status, and only then
adds the tag (``DagsterInstance.handle_new_event``); the sensor reads the run as soon as it sees the
event, and a process that dies in between leaves the tag to the daemon's next retry pass. Without
the tag, ``will_be_retried`` makes the same decision as Dagster (instance setting ``run_retries``):
retried when retries are enabled, the run did not fail because of a step failure unless
``retry_on_asset_or_op_failure`` allows it (tag ``dagster/retry_on_asset_or_op_failure`` overrides
the instance), and it is retry number ``dagster/retry_number`` (0 for the original run) below the
maximum (tag ``dagster/max_retries`` overrides the instance's ``max_retries``; an unreadable value
means no retry, as in Dagster). Dagster counts the run's group where this reads
``dagster/retry_number`` (they differ only after a manual re-execution), and skips the retry of a
run whose backfill was cancelled; neither is modelled.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import smtplib
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Callable, Mapping, Sequence

from fairstream_pipeline.lib.notifications.smtp import SmtpSettings, describe_error, open_session

logger = logging.getLogger(__name__)

PARTITION_TAG = "dagster/partition"
FAILURE_REASON_TAG = "dagster/failure_reason"
MAX_RETRIES_TAG = "dagster/max_retries"
RETRY_NUMBER_TAG = "dagster/retry_number"
RETRY_ON_STEP_FAILURE_TAG = "dagster/retry_on_asset_or_op_failure"
WILL_RETRY_TAG = "dagster/will_retry"
STEP_FAILURE = "STEP_FAILURE"  # the value of dagster/failure_reason when a step failed

ALERTS_NOT_CONFIGURED = "alerts are not configured: set FAIRSTREAM_ALERT_WEBHOOK_URL or FAIRSTREAM_SMTP_HOST"


def alert_channels(webhook_url: str, smtp_host: str) -> list[str]:
    """The alert channels that are on: ``webhook`` and/or ``email``."""
    return [channel for channel, setting in (("webhook", webhook_url), ("email", smtp_host)) if setting]

Sleep = Callable[[float], None]


@dataclass(frozen=True, kw_only=True)
class RetryBudget:
    """How hard one delivery tries: attempts, full-jitter exponential backoff, per-try timeout."""

    attempts: int = 4
    base_seconds: float = 1.0
    cap_seconds: float = 30.0
    timeout_seconds: float = 5.0

    def __post_init__(self):
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if self.base_seconds < 0 or self.cap_seconds < 0 or self.timeout_seconds <= 0:
            raise ValueError("base_seconds and cap_seconds must be >= 0 and timeout_seconds > 0")

    def max_delay(self, retry: int) -> float:
        """The upper bound of the wait before retry number ``retry`` (1-based)."""
        return min(self.cap_seconds, self.base_seconds * 2 ** (retry - 1))

    def delay(self, retry: int, rng: random.Random) -> float:
        """Full jitter: a uniform wait in ``[0, max_delay(retry)]``."""
        return rng.uniform(0, self.max_delay(retry))


class DeliveryError(RuntimeError):
    """One channel gave up: a permanent error, or the retry budget ran out."""

    def __init__(self, channel: str, attempts: int, error: BaseException):
        super().__init__(f"{channel}: gave up after {attempts} attempt(s): {describe_error(error)}")
        self.channel = channel
        self.attempts = attempts
        self.error = error


class AlertDeliveryError(RuntimeError):
    """At least one configured channel failed; the others were still tried."""

    def __init__(self, failures: Sequence[DeliveryError], delivered: Sequence[str]):
        done = ", ".join(delivered) or "none"
        super().__init__(f"alert not delivered: {'; '.join(map(str, failures))} (delivered: {done})")
        self.failures = list(failures)
        self.delivered = list(delivered)


def with_retries(
    channel: str,
    attempt: Callable[[], Any],
    is_transient: Callable[[BaseException], bool],
    budget: RetryBudget,
    *,
    sleep: Sleep = time.sleep,
    rng: random.Random | None = None,
    log: logging.Logger = logger,
) -> int:
    """Call ``attempt`` until it returns; return the number of attempts used.

    Raises ``DeliveryError`` on a permanent error or when the budget is spent.
    """
    rng = rng or random.Random()
    for number in range(1, budget.attempts + 1):
        try:
            attempt()
            return number
        except Exception as exc:  # classified below
            if not is_transient(exc):
                raise DeliveryError(channel, number, exc) from exc
            if number == budget.attempts:
                raise DeliveryError(channel, number, exc) from exc
            wait = budget.delay(number, rng)
            log.warning(
                "alert %s attempt %d/%d failed (%s); retrying in %.2f s",
                channel, number, budget.attempts, describe_error(exc), wait,
            )
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover


def webhook_error_is_transient(error: BaseException) -> bool:
    """Connection errors, timeouts, 5xx and 429 are retried; any other HTTP status is not."""
    if isinstance(error, ssl.SSLError):
        return False
    if isinstance(error, urllib.error.HTTPError):
        return error.code == 429 or error.code >= 500
    if isinstance(error, urllib.error.URLError) and isinstance(error.reason, ssl.SSLError):
        return False  # a certificate problem does not heal by itself
    return isinstance(error, (urllib.error.URLError, http.client.HTTPException, OSError))


def post_json(
    url: str,
    payload: Mapping[str, Any],
    *,
    budget: RetryBudget = RetryBudget(),
    sleep: Sleep = time.sleep,
    rng: random.Random | None = None,
    log: logging.Logger = logger,
) -> int:
    """POST ``payload`` as JSON to ``url`` within the retry budget; return the attempts used."""
    body = json.dumps(payload, sort_keys=True).encode("utf-8")

    def attempt() -> None:
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "fairstream-alerts/1"},
        )
        with urllib.request.urlopen(request, timeout=budget.timeout_seconds) as response:
            response.read()

    return with_retries("webhook", attempt, webhook_error_is_transient, budget, sleep=sleep, rng=rng, log=log)


def smtp_error_is_transient(error: BaseException) -> bool:
    """Connection errors, timeouts and SMTP 4xx replies are retried; 5xx and TLS errors are not."""
    if isinstance(error, (smtplib.SMTPNotSupportedError, ssl.SSLError)):
        return False
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPResponseException):
        return 400 <= error.smtp_code < 500
    return isinstance(error, OSError)  # includes SMTPServerDisconnected, refused, timeouts


def build_email(
    settings: SmtpSettings, recipients: Sequence[str], subject: str, text: str, fields: Mapping[str, Any]
) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = settings.mail_from
    message["To"] = ", ".join(recipients)
    lines = [text, ""] + [f"{key}: {format_value(value)}" for key, value in fields.items()]
    message.set_content("\n".join(lines) + "\n")
    return message


def send_email(
    settings: SmtpSettings,
    recipients: Sequence[str],
    message: EmailMessage,
    *,
    budget: RetryBudget = RetryBudget(),
    sleep: Sleep = time.sleep,
    rng: random.Random | None = None,
    log: logging.Logger = logger,
) -> int:
    """Send ``message`` through ``settings`` within the retry budget (each try with the budget's
    timeout); return the attempts used."""
    if not settings.mail_from or not recipients:
        problem = ValueError("email alerts need FAIRSTREAM_ALERT_FROM and FAIRSTREAM_ALERT_TO")
        raise DeliveryError("email", 0, problem)

    def attempt() -> None:
        with open_session(settings, budget.timeout_seconds) as smtp:
            refused = smtp.send_message(message)
        if refused:
            log.warning("alert email refused for %s", ", ".join(sorted(refused)))

    return with_retries("email", attempt, smtp_error_is_transient, budget, sleep=sleep, rng=rng, log=log)


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "-"
    return str(value)


def default_text(subject: str, fields: Mapping[str, Any]) -> str:
    """One human line: the subject, then ``key: value`` for every non-empty field."""
    parts = [f"{key}: {format_value(value)}" for key, value in fields.items() if value not in (None, "", [], ())]
    return " | ".join([subject, *parts])


def send_alert(
    subject: str,
    fields: Mapping[str, Any],
    *,
    text: str | None = None,
    webhook_url: str = "",
    smtp: SmtpSettings | None = None,
    recipients: Sequence[str] = (),
    budget: RetryBudget = RetryBudget(),
    sleep: Sleep = time.sleep,
    rng: random.Random | None = None,
    log: logging.Logger = logger,
) -> list[str]:
    """Deliver one alert to every configured channel; return the channels that delivered it."""
    text = text or default_text(subject, fields)
    if not webhook_url and smtp is None:
        log.warning("%s; not sent: %s", ALERTS_NOT_CONFIGURED, text)
        return []
    delivered: list[str] = []
    failures: list[DeliveryError] = []
    if webhook_url:
        payload = {"subject": subject, **fields, "text": text}
        try:
            post_json(webhook_url, payload, budget=budget, sleep=sleep, rng=rng, log=log)
            delivered.append("webhook")
        except DeliveryError as exc:
            failures.append(exc)
    if smtp is not None:
        try:
            message = build_email(smtp, recipients, subject, text, fields)
            send_email(smtp, recipients, message, budget=budget, sleep=sleep, rng=rng, log=log)
            delivered.append("email")
        except DeliveryError as exc:
            failures.append(exc)
    if failures:
        raise AlertDeliveryError(failures, delivered)
    return delivered


def run_url(ui_base_url: str, run_id: str) -> str:
    return f"{ui_base_url.rstrip('/')}/runs/{run_id}"


@dataclass(frozen=True)
class RunFailure:
    """What an alert about one failed run says."""

    job_name: str
    partition: str | None
    failed_steps: tuple[str, ...]
    error: str
    run_id: str
    run_url: str

    @property
    def subject(self) -> str:
        where = f" for {self.partition}" if self.partition else ""
        return f"FairStream run failed: {self.job_name}{where}"

    @property
    def fields(self) -> dict[str, Any]:
        return {
            "job_name": self.job_name,
            "partition": self.partition,
            "failed_steps": list(self.failed_steps),
            "error": self.error,
            "run_id": self.run_id,
            "run_url": self.run_url,
        }

    @property
    def text(self) -> str:
        steps = f" at {', '.join(self.failed_steps)}" if self.failed_steps else ""
        return f"{self.subject}{steps}: {self.error} ({self.run_url})"


def failure_error(step_messages: Sequence[tuple[str, str]], run_message: str) -> str:
    """The error of a failed run: the one failed step's message, ``step: message`` lines for
    several, or the run failure's message when no step failed."""
    if len(step_messages) == 1:
        return step_messages[0][1]
    if step_messages:
        return "\n".join(f"{step}: {message}" for step, message in step_messages)
    return run_message


def _parse_bool_tag(value: str) -> bool:
    """Dagster's reading of a boolean tag: anything but false/none/0/empty is true."""
    return value.strip().lower() not in {"false", "none", "0", ""}


def will_be_retried(
    tags: Mapping[str, str],
    *,
    retries_enabled: bool,
    max_retries: int,
    retry_on_asset_or_op_failure: bool,
) -> bool:
    """Whether Dagster's automatic run retries will re-launch this failed run: its
    ``dagster/will_retry`` tag, else the same decision made from the other tags (see the module doc
    for why the tag alone is not enough).

    ``tags`` are the failed run's tags; the keyword arguments are the instance's ``run_retries``
    settings (``DagsterInstance.run_retries_enabled``, ``run_retries_max_retries``,
    ``run_retries_retry_on_asset_or_op_failure``).
    """
    if not retries_enabled:
        return False
    if WILL_RETRY_TAG in tags:
        return _parse_bool_tag(tags[WILL_RETRY_TAG])
    retry_on_step_failure = retry_on_asset_or_op_failure
    if RETRY_ON_STEP_FAILURE_TAG in tags:
        retry_on_step_failure = _parse_bool_tag(tags[RETRY_ON_STEP_FAILURE_TAG])
    if tags.get(FAILURE_REASON_TAG) == STEP_FAILURE and not retry_on_step_failure:
        return False
    try:
        limit = int(tags[MAX_RETRIES_TAG]) if MAX_RETRIES_TAG in tags else max_retries
        retry_number = int(tags.get(RETRY_NUMBER_TAG, "0"))
    except ValueError:
        return False
    return retry_number < limit

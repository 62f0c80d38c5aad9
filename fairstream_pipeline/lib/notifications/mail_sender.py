"""Sending the outbox: SMTP delivery with backoff, a rate limit, a circuit breaker and a graceful stop.

Pure Python (no Dagster); the Dagster wiring is ``fairstream_pipeline.defs.notifications`` (``resources``, ``sending``, ``dead_letters``).
This module is the send loop; beside it in ``lib/notifications``: the queue's SQL (``outbox_queue``),
the email built from a row (``mime_message``), the SMTP session and what its errors mean (``smtp``),
the rate limiter, breaker and stop signal (``send_controls``) and the run's report (``send_report``);
the database-outage retry is ``lib/app_db/outage.py``.

One run of :func:`send_outbox`:

1. returns stale ``sending`` rows (claimed more than ``stale_after_seconds`` ago: their sender was
   killed) to ``pending``;
2. claims batches of ``batch_size`` rows that were due when the run started (``SELECT ... FOR
   UPDATE SKIP LOCKED``) and sends them one by one over one SMTP connection, reused for the whole
   run and re-opened after a drop, at most ``rate_per_second`` messages per second for all senders
   together (:class:`SharedRateLimiter`); before each message it renews its leases on the rows it
   still holds, and stops if the row at hand was reclaimed by another sender (a lost claim);
3. records each row's outcome in its own transaction right after its own SMTP reply:

   * accepted -> ``sent``;
   * transient (an SMTP 4xx reply, a dropped connection, a timeout) -> ``retry`` at now + backoff,
     or ``dead`` when the row has used ``max_attempts``;
   * permanent (a 5xx reply to the recipient or the message: 550 bad mailbox, 552, 554) ->
     ``dead`` at once.

   ``last_error`` holds the reply or the error.

Backoff before attempt ``n + 1``: ``step = min(cap, base * 2 ** (n - 1))``, then a uniform draw in
``[step / 2, step]`` ("equal jitter": never less than half the step). Defaults: base 300 s, cap
3600 s, 6 attempts, so the waits are 2.5-5, 5-10, 10-20, 20-40 and 30-60 minutes (about 68 to 135
minutes in all) before a row goes ``dead``.

Circuit breaker: ``breaker_threshold`` (5) consecutive transport failures -- connection refused, a
failed greeting or handshake, a dropped connection, a timeout, a 421 "closing channel" -- open it.
A reply about one message (550 for one mailbox, 452) is not a transport failure and resets the
count, as does every accepted message. A failed connect costs the message at hand no attempt: the
sender waits ``reconnect_delay_seconds`` (doubling, at most 30 s) and tries again with the same
message. When the breaker opens, the run stops, the claimed rows not yet attempted go back to
``pending`` untouched (their attempt refunded), and the report carries ``breaker_open`` and a
message ``SMTP relay unavailable: 5 consecutive failures (...); N messages left pending``.

A misconfigured relay (login rejected with a 5xx, STARTTLS not offered, a certificate that does not
verify, the sender address refused with a 5xx) is no message's fault: the run stops the same way
and raises :class:`RelayMisconfigured`.

Graceful stop: :meth:`StopSignal.installed` catches SIGTERM and SIGINT. The message in flight is
finished and its outcome recorded (a hung relay can hold it for ``timeout_seconds``), the rest of
the claimed batch goes back to ``pending``, and nothing stays in ``sending``. A second signal goes
to the previous handler at once. With ``redeliver`` (the default) the caught signal is raised again
for the previous handler when the block ends, so the process stops as it was told to, after the
cleanup. (The Dagster op does not redeliver: Dagster turns an interrupt in an op that has a
RetryPolicy into a retry, so the op fails instead, without retry.)

Idempotency, and the one duplicate window. Each row is marked ``sent`` in its own transaction right
after its own SMTP acceptance, never at the end of a batch. Between "the relay accepted" and "the
row is marked sent" there is a window: a sender that dies there (SIGKILL, OOM, power loss, the
database gone for the mark) leaves the row in ``sending``; the next run after
``stale_after_seconds`` (15 min) reclaims it and sends it again. The same happens when the
connection drops after the relay accepted the message but before its reply reached us (the row goes
to ``retry``). That is the only way to get a duplicate: at most one per crash, of the message in
flight only, and the copy carries the same ``Message-ID`` (deterministic from month, payee and
kind), so the relay and mail clients can recognise it. Nothing else can duplicate a message: a
claim is exclusive (SKIP LOCKED), rows not yet attempted are returned to ``pending`` before a run
ends, a claim is a lease renewed before every message and only reclaimed once it is older than the
stale timeout (which :func:`check_lease` makes longer than one message can take), and an outcome is
recorded only by the row's owner.
"""

from __future__ import annotations

import logging
import os
import random
import smtplib
import socket
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Callable

from fairstream_pipeline.lib.app_db.outage import in_transaction
from fairstream_pipeline.lib.notifications import outbox_queue as queue
from fairstream_pipeline.lib.notifications.mime_message import build_message, render
from fairstream_pipeline.lib.notifications.outbox_queue import OutboxMessage
from fairstream_pipeline.lib.notifications.send_controls import CircuitBreaker, SharedRateLimiter, StopSignal
from fairstream_pipeline.lib.notifications.send_report import SendReport
from fairstream_pipeline.lib.notifications.smtp import (
    PERMANENT,
    SENT,
    TRANSPORT,
    RelayConnection,
    RelayMisconfigured,
    SmtpSettings,
    classify,
    connect_error_is_fatal,
    describe_error,
    reply_code,
)

logger = logging.getLogger(__name__)

MAX_RECONNECT_WAIT_SECONDS = 30.0
SMTP_COMMANDS_PER_MESSAGE = 6  # NOOP probe, MAIL, RCPT, DATA, the content, the final reply


@dataclass(frozen=True)
class SenderSettings:
    """How one run sends: batches, rate, attempts, backoff, breaker and stale timeout."""

    batch_size: int = 100
    rate_per_second: float = 10.0  # 0: no limit
    max_attempts: int = 6
    backoff_base_seconds: float = 300.0
    backoff_cap_seconds: float = 3600.0
    breaker_threshold: int = 5
    reconnect_delay_seconds: float = 1.0
    stale_after_seconds: float = 900.0
    idle_check_seconds: float = 10.0  # a connection idle this long is probed with NOOP first
    db_outage_seconds: float = 120.0  # how long the sender waits out an unreachable application database

    def __post_init__(self):
        if self.batch_size < 1 or self.max_attempts < 1 or self.breaker_threshold < 1:
            raise ValueError("batch_size, max_attempts and breaker_threshold must be >= 1")
        if min(self.rate_per_second, self.backoff_base_seconds, self.backoff_cap_seconds,
               self.reconnect_delay_seconds, self.stale_after_seconds) < 0:
            raise ValueError("rates, delays and timeouts must be >= 0")


def retry_delay(attempts: int, base: float, cap: float, rng: random.Random) -> float:
    """The wait after the ``attempts``-th failed attempt: equal jitter in ``[step / 2, step]``."""
    step = min(cap, base * 2 ** (attempts - 1))
    return step / 2 + rng.uniform(0, step / 2)


def lease_needed_seconds(settings: SenderSettings, relay: SmtpSettings) -> float:
    """How long a claim must survive unrenewed: a wait for the rate limit, then one message over
    SMTP (a few commands, each allowed ``timeout_seconds``). A ``stale_after_seconds`` below this
    would let a second sender reclaim a row while its owner is still sending it."""
    interval = 1.0 / settings.rate_per_second if settings.rate_per_second > 0 else 0.0
    return interval + SMTP_COMMANDS_PER_MESSAGE * relay.timeout_seconds


def check_lease(settings: SenderSettings, relay: SmtpSettings) -> None:
    needed = lease_needed_seconds(settings, relay)
    if settings.stale_after_seconds < needed:
        raise RelayMisconfigured(
            f"stale_after_seconds = {settings.stale_after_seconds:g} cannot cover one message: at "
            f"{settings.rate_per_second:g}/s with a {relay.timeout_seconds:g} s relay timeout a message may "
            f"take {needed:g} s ({SMTP_COMMANDS_PER_MESSAGE} SMTP commands); raise stale_after_seconds to at "
            "least that, or lower the timeout"
        )


def default_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def send_outbox(
    url: str,
    relay: SmtpSettings,
    settings: SenderSettings = SenderSettings(),
    *,
    worker: str | None = None,
    stop: StopSignal | None = None,
    log: logging.Logger = logger,
    rng: random.Random | None = None,
    after_accept: Callable[[OutboxMessage], None] | None = None,
) -> SendReport:
    """Send what is due in the outbox of the database at ``url`` (see the module docstring).

    ``after_accept`` runs between the relay's acceptance and the mark-sent (a test hook for the
    duplicate window). Raises :class:`RelayMisconfigured` after returning the claimed rows.
    """
    if not relay.mail_from:
        raise RelayMisconfigured("no sender address: set FAIRSTREAM_MAIL_FROM")
    check_lease(settings, relay)
    run = _Run(url, relay, settings, worker or default_worker(), stop or StopSignal(), log,
               rng or random.Random(), after_accept)
    return run.execute()


class _Run:
    def __init__(self, url, relay, settings, worker, stop, log, rng, after_accept):
        self.url, self.relay, self.settings, self.worker = url, relay, settings, worker
        self.stop, self.log, self.rng, self.after_accept = stop, log, rng, after_accept
        self.report = SendReport(worker)
        self.connection = RelayConnection(relay, settings.idle_check_seconds)
        self.breaker = CircuitBreaker(settings.breaker_threshold)
        self.limiter = SharedRateLimiter(self._db, settings.rate_per_second, stop)
        self.attempted: set[int] = set()  # rows this run tried to deliver
        self.lost_claim = False

    def execute(self) -> SendReport:
        report, settings = self.report, self.settings
        reclaimed, due = self._db(
            lambda cursor: (
                queue.reclaim_stale(cursor, settings.stale_after_seconds, settings.max_attempts),
                queue.database_now(cursor),
            ),
            "reclaiming stale rows",
        )
        report.reclaimed, report.reclaimed_dead = reclaimed["pending"], reclaimed["dead"]
        if report.reclaimed or report.reclaimed_dead:
            self.log.warning(
                f"reclaimed {report.reclaimed} stale 'sending' row(s) to pending and {report.reclaimed_dead} "
                f"to dead (claimed more than {settings.stale_after_seconds:g} s ago by a sender that stopped)"
            )
        started = time.monotonic()
        try:
            while not self.stop.requested and not self.breaker.is_open and not self.lost_claim:
                batch = self._db(
                    lambda cursor: queue.claim_batch(cursor, settings.batch_size, self.worker, due), "claiming a batch"
                )
                if not batch:
                    break
                report.months.update(message.month for message in batch)
                self._send_batch(batch)
        finally:
            self.connection.close()
            report.elapsed_seconds = time.monotonic() - started
            report.connections = self.connection.connections
            report.stopped_by_signal = self.stop.signum if self.stop.requested else None
        if not self.lost_claim:
            report.returned_to_pending += self._db(
                lambda cursor: queue.release_unattempted(cursor, self.worker, sorted(self.attempted)),
                "releasing rows this run never attempted",
            )
        report.queue = self._db(queue.queue_depth, "reading the queue depth")
        if self.breaker.is_open:
            report.breaker_open, report.breaker_reason = True, self.breaker.reason
            self.log.error(report.relay_unavailable_message)
        if self.stop.requested:
            self.log.warning(
                f"stop requested (signal {self.stop.signum}): the claimed rows not yet sent went back "
                f"to pending ({report.returned_to_pending})"
            )
        return report

    def _send_batch(self, batch: list[OutboxMessage]) -> None:
        remaining = deque(batch)
        before = (self.report.sent, self.report.retried, self.report.dead)
        try:
            while remaining and not self.stop.requested:
                if not self._connected() or not self.limiter.wait():
                    break
                message = remaining[0]
                remaining = self._still_held(remaining)
                if not remaining or remaining[0] is not message:
                    break  # another sender reclaimed the row: it is no longer ours to send
                self.attempted.add(message.id)
                outcome, error = self._deliver(message)
                remaining.popleft()
                if outcome == SENT:
                    self.breaker.relay_answered()
                    if self.after_accept is not None:
                        self.after_accept(message)
                    recorded = self._db(
                        lambda cursor: queue.mark_sent(cursor, message.id, self.worker), "recording a sent message"
                    )
                    if recorded:
                        self.report.sent += 1
                    else:
                        self.log.error(
                            f"{message.month} {message.payee_id} (row {message.id}) was accepted by the relay, but its "
                            "claim had been lost: the sender that took it over may send it again (same Message-ID)"
                        )
                        self.report.lost_claims += 1
                        remaining = self._still_held(remaining, lost_already=True)
                        break
                else:
                    self._record_failure(message, outcome, error)
                if self.breaker.is_open:
                    break
        finally:
            if remaining:
                ids = [message.id for message in remaining]
                self.report.returned_to_pending += self._db(
                    lambda cursor: queue.return_to_pending(cursor, ids, self.worker), "returning unsent rows"
                )
        sent, retried, dead = (now - then for now, then in zip(
            (self.report.sent, self.report.retried, self.report.dead), before))
        self.log.info(
            f"batch of {len(batch)}: {sent} sent, {retried} to retry, {dead} dead, "
            f"{len(remaining)} returned to pending"
        )

    def _db(self, work: Callable, what: str):
        return in_transaction(self.url, work, what, self.stop.sleep, self.log, self.settings.db_outage_seconds)

    def _still_held(self, remaining: deque, lost_already: bool = False) -> deque:
        """Renew the leases on the rows this sender still owns; drop and report the others, and stop
        the run if any was lost (another sender reclaimed it: it must never be sent from here)."""
        held = self._db(lambda cursor: queue.renew_claims(cursor, self.worker), "renewing leases")
        lost = [m for m in remaining if m.id not in held]
        if lost or lost_already:
            self.lost_claim = True
            self.report.lost_claims += len(lost)
            if lost:
                self.log.error(
                    f"lost the claim on {len(lost)} row(s) (first: {lost[0].month} {lost[0].payee_id}, row "
                    f"{lost[0].id}): another sender reclaimed them; this sender stops and does not send them"
                )
        return deque(m for m in remaining if m.id in held)

    def _connected(self) -> bool:
        """Make sure a connection is open; False when the breaker opened or a stop was requested."""
        self.connection.probe_if_idle()
        while not self.connection.connected:
            if self.breaker.is_open or self.stop.requested:
                return False
            if self.breaker.failures:
                wait = self.settings.reconnect_delay_seconds * 2 ** (self.breaker.failures - 1)
                if not self.stop.sleep(min(MAX_RECONNECT_WAIT_SECONDS, wait)):
                    return False
            try:
                self.connection.connect()
            except OSError as exc:  # smtplib errors, refused, timeouts, TLS
                if connect_error_is_fatal(exc):
                    raise RelayMisconfigured(
                        f"SMTP relay {self.relay.host}:{self.relay.port} rejects the configuration: "
                        f"{describe_error(exc)}"
                    ) from exc
                self.breaker.failure(describe_error(exc))
                self.log.warning(
                    f"cannot connect to the SMTP relay {self.relay.host}:{self.relay.port}: "
                    f"{describe_error(exc)} ({self.breaker.failures} consecutive failure(s))"
                )
        return True

    def _deliver(self, message: OutboxMessage) -> tuple[str, str]:
        try:
            self.connection.deliver(render(build_message(message, self.relay.mail_from)), message.recipient)
            return SENT, ""
        except smtplib.SMTPSenderRefused as exc:
            if exc.smtp_code >= 500:
                raise RelayMisconfigured(
                    f"the SMTP relay refuses the sender address {self.relay.mail_from}: {describe_error(exc)}"
                ) from exc
            return self._failed(exc)
        except (OSError, ValueError) as exc:  # smtplib errors are OSErrors; ValueError: a bad row
            return self._failed(exc)

    def _failed(self, exc: BaseException) -> tuple[str, str]:
        outcome = classify(exc)
        if outcome == TRANSPORT or reply_code(exc) is None:
            self.connection.drop()  # no reply to go by: the SMTP transaction may be half open
        return outcome, describe_error(exc)

    def _record_failure(self, message: OutboxMessage, outcome: str, error: str) -> None:
        if outcome == TRANSPORT:
            self.breaker.failure(error)
        else:
            self.breaker.relay_answered()  # the relay is up; it just does not take this message
        def record(cursor):
            if outcome == PERMANENT:
                recorded, status = queue.mark_dead(cursor, message.id, self.worker, error), "dead"
            elif message.attempts >= self.settings.max_attempts:
                reason = f"gave up after {message.attempts} attempts: {error}"
                recorded, status = queue.mark_dead(cursor, message.id, self.worker, reason), "dead"
            else:
                delay = retry_delay(
                    message.attempts, self.settings.backoff_base_seconds, self.settings.backoff_cap_seconds, self.rng
                )
                recorded, status = queue.mark_retry(cursor, message.id, self.worker, error, delay), "retry"
            return recorded, status

        recorded, status = self._db(record, "recording a failed attempt")
        if not recorded:
            self.report.lost_claims += 1
            self.log.warning(f"row {message.id} was reclaimed by another sender; its outcome ({error}) is not recorded")
        elif status == "dead":
            self.report.dead += 1
            self.log.warning(
                f"{message.month} {message.payee_id} <{message.recipient}>: dead after {message.attempts} attempt(s): {error}"
            )
        else:
            self.report.retried += 1
            self.log.info(f"{message.month} {message.payee_id}: attempt {message.attempts} failed ({error}); will retry")

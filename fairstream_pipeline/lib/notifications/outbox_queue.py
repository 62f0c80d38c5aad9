"""The notification outbox as a work queue: SQL on ``notification_outbox`` (psycopg2 cursors).

States: ``pending -> sending -> sent | retry | dead`` (``no_address`` rows are never sent).

* :func:`claim_batch` takes up to ``limit`` rows that are due (``pending`` or ``retry`` with
  ``next_attempt_at`` at or before ``due``) with ``SELECT ... FOR UPDATE SKIP LOCKED`` and moves
  them to ``sending`` (``claimed_at``, ``claimed_by``, ``attempts + 1``) in the caller's short
  transaction: two senders never take the same row, and neither waits for the other.
* A claim is a **lease**: ``claimed_by`` owns the row, ``claimed_at`` is when the lease was last
  renewed. The owner renews it before every message (:func:`renew_claims`); only a lease older than
  the stale timeout is reclaimed, and :func:`mark_sent`, :func:`mark_retry` and :func:`mark_dead`
  succeed only while the caller still owns the row.
* :func:`reserve_send_slot` spaces the sends of every sender together (the shared rate limit).
* :func:`return_to_pending` gives claimed rows that were never attempted back untouched (their
  attempt is not consumed); :func:`reclaim_stale` returns ``sending`` rows whose sender died.
* :func:`replay_dead` moves dead letters back to ``pending``. A dead letter is alerted once
  (``dead_alerted_at``); every new set of them is alerted (history in ``outbox_dead_letter_alerts``).

Every function runs on the caller's cursor and never commits: the caller owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Iterable, Sequence

from fairstream_pipeline.lib.notifications.message import Message

STATUSES = ("pending", "sending", "sent", "retry", "dead", "no_address")  # every state a row can be in


@dataclass(frozen=True)
class OutboxMessage(Message):
    """One claimed row: the message, its row id, and the attempts it has used (this one included)."""

    id: int
    attempts: int


_MESSAGE_COLUMNS = ", ".join(f"o.{f.name}" for f in fields(OutboxMessage))


def database_now(cursor) -> datetime:
    """The database clock (all due times are compared on it, never on the sender's clock)."""
    cursor.execute("SELECT now()")
    return cursor.fetchone()[0]


def claim_batch(cursor, limit: int, worker: str, due: datetime | None = None) -> list[OutboxMessage]:
    """Claim up to ``limit`` due rows for ``worker`` (rows other transactions hold are skipped).

    ``due`` defaults to now; a sender passes the time it started so that one run only sends what
    was due when it began. Returns the rows in queue order (next_attempt_at, id).
    """
    cursor.execute(
        f"""
        WITH picked AS (
            SELECT id FROM notification_outbox
            WHERE status IN ('pending', 'retry') AND next_attempt_at <= coalesce(%(due)s, now())
            ORDER BY next_attempt_at, id
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED
        )
        UPDATE notification_outbox o
        SET status = 'sending', claimed_at = now(), claimed_by = %(worker)s,
            attempts = o.attempts + 1, updated_at = now()
        FROM picked WHERE o.id = picked.id
        RETURNING o.next_attempt_at, {_MESSAGE_COLUMNS}
        """,
        {"due": due, "limit": limit, "worker": worker},
    )
    claimed = sorted(((row[0], OutboxMessage(*row[1:])) for row in cursor.fetchall()), key=lambda c: (c[0], c[1].id))
    return [message for _, message in claimed]


def renew_claims(cursor, worker: str) -> set[int]:
    """Renew ``worker``'s leases on every row it still holds; return their ids (the rows it owns)."""
    cursor.execute(
        "UPDATE notification_outbox SET claimed_at = now() "
        "WHERE status = 'sending' AND claimed_by = %s RETURNING id",
        (worker,),
    )
    return {row[0] for row in cursor.fetchall()}


def mark_sent(cursor, row_id: int, worker: str) -> bool:
    """The relay accepted the message: ``sent``. False if ``worker`` no longer owned the row (it was
    reclaimed): the caller reports the lost claim. ``last_error`` stays: a message sent after a
    retry or a replay keeps its history."""
    cursor.execute(  # 'sent' too: recording it again after a commit whose answer was lost is a no-op
        "UPDATE notification_outbox SET status = 'sent', sent_at = coalesce(sent_at, now()), "
        "updated_at = now() WHERE id = %s AND status IN ('sending', 'sent') AND claimed_by = %s",
        (row_id, worker),
    )
    return cursor.rowcount == 1


def reserve_send_slot(cursor, interval_seconds: float, name: str = "statement_emails") -> float:
    """Take the next send slot of the limit ``name``, shared by every sender; return how many
    seconds to wait for it. Slots are ``interval_seconds`` apart on the database clock, so all the
    senders together send at most one message per interval (a generic cell rate algorithm)."""
    cursor.execute(
        """
        INSERT INTO outbox_send_slots AS s (name, next_slot_at)
        VALUES (%(name)s, now() + make_interval(secs => %(interval)s))
        ON CONFLICT (name) DO UPDATE
        SET next_slot_at = greatest(now(), s.next_slot_at) + make_interval(secs => %(interval)s)
        RETURNING greatest(0, extract(epoch FROM s.next_slot_at - make_interval(secs => %(interval)s) - now()))::float8
        """,
        {"name": name, "interval": float(interval_seconds)},
    )
    return cursor.fetchone()[0]


def mark_retry(cursor, row_id: int, worker: str, error: str, delay_seconds: float) -> bool:
    """A transient failure: ``retry`` at now + ``delay_seconds``. False if the claim was lost."""
    cursor.execute(
        "UPDATE notification_outbox SET status = 'retry', last_error = %s, "
        "next_attempt_at = now() + make_interval(secs => %s), updated_at = now() "
        "WHERE id = %s AND status IN ('sending', 'retry') AND claimed_by = %s",
        (error, float(delay_seconds), row_id, worker),
    )
    return cursor.rowcount == 1


def mark_dead(cursor, row_id: int, worker: str, error: str) -> bool:
    """A permanent failure, or the attempts are used up: ``dead``. False if the claim was lost."""
    cursor.execute(
        "UPDATE notification_outbox SET status = 'dead', last_error = %s, updated_at = now() "
        "WHERE id = %s AND status IN ('sending', 'dead') AND claimed_by = %s",
        (error, row_id, worker),
    )
    return cursor.rowcount == 1


def return_to_pending(cursor, row_ids: Sequence[int], worker: str) -> int:
    """Give back claimed rows that were never attempted: ``pending`` again, the claim's attempt
    refunded, ``next_attempt_at`` and ``last_error`` untouched. Returns how many."""
    if not row_ids:
        return 0
    cursor.execute(
        "UPDATE notification_outbox SET status = 'pending', attempts = attempts - 1, "
        "claimed_at = NULL, claimed_by = NULL, updated_at = now() "
        "WHERE id = ANY(%s) AND status = 'sending' AND claimed_by = %s",
        (list(row_ids), worker),
    )
    return cursor.rowcount


def release_unattempted(cursor, worker: str, attempted: Sequence[int]) -> int:
    """Give back every row ``worker`` still holds but never attempted (a claim whose commit answer was
    lost to a database outage): ``pending``, the attempt refunded. Returns how many."""
    cursor.execute(
        "UPDATE notification_outbox SET status = 'pending', attempts = attempts - 1, "
        "claimed_at = NULL, claimed_by = NULL, updated_at = now() "
        "WHERE status = 'sending' AND claimed_by = %s AND NOT (id = ANY(%s))",
        (worker, list(attempted)),
    )
    return cursor.rowcount


def reclaim_stale(cursor, older_than_seconds: float, max_attempts: int) -> dict[str, int]:
    """Return ``sending`` rows claimed more than ``older_than_seconds`` ago (their sender was
    killed) to ``pending``; a row that has used ``max_attempts`` goes to ``dead`` instead (a message
    that keeps killing its sender must not loop). The claim's attempt stays consumed: the message
    may have been delivered. Returns ``{"pending": n, "dead": m}``."""
    cursor.execute(
        """
        UPDATE notification_outbox
        SET status = CASE WHEN attempts >= %(max)s THEN 'dead' ELSE 'pending' END,
            last_error = 'sender ' || coalesce(claimed_by, '?') || ' stopped while sending (claimed at '
                         || to_char(claimed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || ')',
            claimed_at = NULL, claimed_by = NULL, updated_at = now()
        WHERE status = 'sending' AND claimed_at <= now() - make_interval(secs => %(secs)s)
        RETURNING status
        """,
        {"max": max_attempts, "secs": float(older_than_seconds)},
    )
    statuses = [row[0] for row in cursor.fetchall()]
    return {"pending": statuses.count("pending"), "dead": statuses.count("dead")}


def replay_dead(cursor, month: str, payees: Iterable[str] | None = None) -> list[str]:
    """Move the month's dead letters (all, or those of ``payees``) back to ``pending``: attempts
    reset to 0, due now, the last error kept as a note. Returns the replayed payee ids, sorted."""
    payee_filter = "" if payees is None else "AND payee_id = ANY(%(payees)s)"
    cursor.execute(
        f"""
        UPDATE notification_outbox
        SET status = 'pending', attempts = 0, next_attempt_at = now(), claimed_at = NULL,
            claimed_by = NULL, updated_at = now(), dead_alerted_at = NULL,
            last_error = 'replayed ' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                         || ' after: ' || coalesce(last_error, '?')
        WHERE month = %(month)s AND status = 'dead' {payee_filter}
        RETURNING payee_id
        """,
        {"month": month, "payees": None if payees is None else list(payees)},
    )
    return sorted(row[0] for row in cursor.fetchall())


def ready_count(cursor) -> int:
    """Rows a sender would claim now (pending, or retry whose time has come)."""
    cursor.execute(
        "SELECT count(*) FROM notification_outbox "
        "WHERE status IN ('pending', 'retry') AND next_attempt_at <= now()"
    )
    return cursor.fetchone()[0]


def queue_depth(cursor) -> dict[str, int]:
    """Rows still to send: ``pending``, ``retry`` (due or not) and ``sending``."""
    cursor.execute(
        "SELECT status, count(*) FROM notification_outbox "
        "WHERE status IN ('pending', 'retry', 'sending') GROUP BY status"
    )
    counts = dict(cursor.fetchall())
    return {status: counts.get(status, 0) for status in ("pending", "retry", "sending")}


def month_counts(cursor, month: str) -> dict[str, int]:
    """Rows of ``month`` per status (every status present, zero when none)."""
    cursor.execute("SELECT status, count(*) FROM notification_outbox WHERE month = %s GROUP BY status", (month,))
    counts = dict(cursor.fetchall())
    return {status: counts.get(status, 0) for status in STATUSES}


def dead_letters(cursor, month: str, limit: int = 10) -> list[tuple[str, str, int, str]]:
    """The month's first dead letters: (payee_id, recipient, attempts, last_error), by payee."""
    cursor.execute(
        "SELECT payee_id, recipient, attempts, coalesce(last_error, '') FROM notification_outbox "
        "WHERE month = %s AND status = 'dead' ORDER BY payee_id LIMIT %s",
        (month, limit),
    )
    return [tuple(row) for row in cursor.fetchall()]


def months_with_new_dead_letters(cursor) -> list[tuple[str, int]]:
    """Months with dead letters not alerted yet and nothing left to send: (month, new dead)."""
    cursor.execute(
        """
        SELECT month, count(*) FILTER (WHERE status = 'dead' AND dead_alerted_at IS NULL)
        FROM notification_outbox
        GROUP BY month
        HAVING count(*) FILTER (WHERE status = 'dead' AND dead_alerted_at IS NULL) > 0
           AND count(*) FILTER (WHERE status IN ('pending', 'retry', 'sending')) = 0
        ORDER BY month
        """
    )
    return [tuple(row) for row in cursor.fetchall()]


def record_dead_letter_alert(cursor, month: str) -> list[tuple[str, str, int, str]]:
    """Mark the month's dead letters that were not alerted yet as alerted; return them (payee_id,
    recipient, attempts, last_error). Their rows stay locked until the caller's transaction ends,
    so a concurrent sender waits, then finds nothing new: each set of dead letters is alerted once."""
    cursor.execute(
        """
        UPDATE notification_outbox SET dead_alerted_at = now()
        WHERE month = %s AND status = 'dead' AND dead_alerted_at IS NULL
        RETURNING payee_id, recipient, attempts, coalesce(last_error, '')
        """,
        (month,),
    )
    rows = sorted(tuple(row) for row in cursor.fetchall())
    if rows:
        cursor.execute("INSERT INTO outbox_dead_letter_alerts (month, dead) VALUES (%s, %s)", (month, len(rows)))
    return rows


def counts_by_month(cursor) -> dict[tuple[str, str], int]:
    """Rows per (month, status), every month of the outbox (for the metrics)."""
    cursor.execute("SELECT month, status, count(*) FROM notification_outbox GROUP BY month, status")
    return {(month, status): n for month, status, n in cursor.fetchall()}


def oldest_waiting_age_seconds(cursor) -> float:
    """Seconds since the oldest message still to send (pending or retry) was queued; 0 when none."""
    cursor.execute(
        "SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 FROM notification_outbox "
        "WHERE status IN ('pending', 'retry')"
    )
    return cursor.fetchone()[0]

"""Pooled connections to the application database, and the writes the payout run makes to it."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator, Sequence

import sqlalchemy as sa
from psycopg2.extras import execute_values

from fairstream_pipeline.lib.app_db.schema import sqlalchemy_url

_ENGINES: dict[str, sa.Engine] = {}
_LOCK = threading.Lock()


def engine_for(url: str, pool_size: int = 5) -> sa.Engine:
    """One pooled engine per URL and process (connections are checked before use)."""
    key = sqlalchemy_url(url)
    with _LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = sa.create_engine(
                key, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800
            )
        return _ENGINES[key]


def dispose_engines() -> None:
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


@contextmanager
def transaction(url: str) -> Iterator["psycopg2.extensions.cursor"]:  # noqa: F821
    """A cursor in one transaction on a pooled psycopg2 connection: committed on success."""
    connection = engine_for(url).raw_connection()
    try:
        with connection.cursor() as cursor:
            yield cursor
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        connection.close()  # back to the pool


STATEMENT_COLUMNS = (
    "month", "payee_id", "payee_name", "email", "opening_balance_cents", "earned_cents", "adjustment_cents",
    "pro_rata_cents", "paid_cents", "closing_balance_cents", "rules_version", "closed_at", "statements_hash",
    "hold_reason", "acps_cents", "payout_model",
)
LINE_COLUMNS = ("month", "payee_id", "country", "tier", "uc_cents", "pr_cents", "acps_cents")
ADJUSTMENT_COLUMNS = ("month", "payee_id", "source_month", "cents", "reason")


class ClosedStatementsDiffer(RuntimeError):
    """The month is already published as closed, with other statements: closed statements never change."""


def publish_closed_statements(
    cursor,
    month: str,
    statements_hash: str,
    statements: Sequence[tuple],
    lines: Sequence[tuple],
    adjustments: Sequence[tuple],
) -> dict[str, int]:
    """Insert a closed month's statements (``STATEMENT_COLUMNS``), their lines and adjustments, once.

    A month already published with these statements (same ``statements_hash``) is left untouched:
    nothing is written and the counts are zero. Rows of the month published as drafts before period
    close existed (no ``closed_at``) are replaced. A month already published as closed with other
    statements raises :class:`ClosedStatementsDiffer`. Returns row counts.
    """
    cursor.execute(
        "SELECT count(*) FILTER (WHERE closed_at IS NOT NULL), "
        "array_agg(DISTINCT statements_hash) FILTER (WHERE closed_at IS NOT NULL) FROM statements WHERE month = %s",
        (month,),
    )
    closed, hashes = cursor.fetchone()
    if closed:
        if hashes != [statements_hash]:
            raise ClosedStatementsDiffer(
                f"{month} is already published as closed with statements {', '.join(hashes)}, not "
                f"{statements_hash}; closed statements never change"
            )
        return {"statements": 0, "lines": 0, "adjustments": 0, "already_published": closed, "replaced_drafts": 0}
    cursor.execute("DELETE FROM statements WHERE month = %s AND closed_at IS NULL", (month,))
    replaced = cursor.rowcount
    inserted = {}
    for table, columns, rows, key in (
        ("statements", STATEMENT_COLUMNS, statements, "month, payee_id"),
        ("statement_lines", LINE_COLUMNS, lines, "month, payee_id, country, tier"),
        ("statement_adjustments", ADJUSTMENT_COLUMNS, adjustments, "month, payee_id, source_month, reason"),
    ):
        # ON CONFLICT DO NOTHING: two publishers of the same close race harmlessly.
        new = execute_values(
            cursor,
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES %s ON CONFLICT ({key}) DO NOTHING RETURNING 1",
            rows,
            page_size=5000,
            fetch=True,
        )
        inserted[table] = len(new)
    return {
        "statements": inserted["statements"],
        "lines": inserted["statement_lines"],
        "adjustments": inserted["statement_adjustments"],
        "already_published": 0,
        "replaced_drafts": replaced,
    }


OUTBOX_COLUMNS = (
    "month", "payee_id", "kind", "recipient", "subject", "body_text", "body_html",
    "attachment_name", "attachment_csv", "message_id", "status",
)


def enqueue_messages(cursor, messages: Sequence[tuple]) -> int:
    """Insert messages (``OUTBOX_COLUMNS``) that are not queued yet; return how many were new.

    The unique key (month, payee_id, kind) makes this idempotent: re-materializing a month never
    enqueues a message twice, and never touches a message already sent.
    """
    new = execute_values(
        cursor,
        f"INSERT INTO notification_outbox ({', '.join(OUTBOX_COLUMNS)}) VALUES %s "
        "ON CONFLICT (month, payee_id, kind) DO NOTHING RETURNING id",
        messages,
        page_size=2000,
        fetch=True,
    )
    return len(new)


def outbox_counts(cursor, month: str | None = None) -> dict[str, int]:
    """Messages per status, for one month or all."""
    if month is None:
        cursor.execute("SELECT status, count(*) FROM notification_outbox GROUP BY status")
    else:
        cursor.execute(
            "SELECT status, count(*) FROM notification_outbox WHERE month = %s GROUP BY status", (month,)
        )
    return dict(cursor.fetchall())

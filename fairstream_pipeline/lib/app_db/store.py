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
    "month", "payee_id", "payee_name", "email", "opening_balance_cents", "earned_cents",
    "pro_rata_cents", "paid_cents", "closing_balance_cents", "rules_version",
)
LINE_COLUMNS = ("month", "payee_id", "country", "tier", "uc_cents", "pr_cents")


def publish_statements(
    cursor, month: str, statements: Sequence[tuple], lines: Sequence[tuple]
) -> dict[str, int]:
    """Upsert the month's statements (keyed by month and payee) and replace its lines.

    Re-publishing a month replaces its rows and never duplicates them; payees that are no longer
    in the month's statements are removed (with their lines). Returns row counts.
    """
    columns = ", ".join(STATEMENT_COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in STATEMENT_COLUMNS[2:])
    cursor.execute("CREATE TEMP TABLE month_payees (payee_id TEXT PRIMARY KEY) ON COMMIT DROP")
    execute_values(cursor, "INSERT INTO month_payees VALUES %s", [(row[1],) for row in statements], page_size=5000)
    cursor.execute(
        "DELETE FROM statements s WHERE s.month = %s "
        "AND NOT EXISTS (SELECT 1 FROM month_payees p WHERE p.payee_id = s.payee_id)",
        (month,),
    )
    removed = cursor.rowcount
    execute_values(
        cursor,
        f"INSERT INTO statements ({columns}) VALUES %s ON CONFLICT (month, payee_id) "
        f"DO UPDATE SET {updates}, published_at = now()",
        statements,
        page_size=5000,
    )
    cursor.execute("DELETE FROM statement_lines WHERE month = %s", (month,))
    execute_values(cursor, f"INSERT INTO statement_lines ({', '.join(LINE_COLUMNS)}) VALUES %s", lines, page_size=5000)
    return {"statements": len(statements), "lines": len(lines), "removed": removed}


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

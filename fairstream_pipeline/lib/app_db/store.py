"""Pooled connections to the application database, and the writes the payout run makes to it."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from typing import Iterator, NamedTuple

import pyarrow as pa
import psycopg2
import pyarrow.csv as pa_csv
import sqlalchemy as sa

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
    statements: Callable[[], Iterable[pa.RecordBatch]],
    lines: Callable[[], Iterable[pa.RecordBatch]],
    adjustments: Callable[[], Iterable[pa.RecordBatch]],
) -> dict[str, int]:
    """Insert a closed month's statements (``STATEMENT_COLUMNS``), their lines and adjustments, once.

    Each of ``statements``, ``lines`` and ``adjustments`` is called (in that order, only if the
    month is written) for its rows as Arrow batches with those columns, which are bulk-loaded with
    ``COPY``. A month already published with these statements (same ``statements_hash``) is left
    untouched: nothing is read or written and the counts are zero. Rows of the month published as
    drafts before period close existed (no ``closed_at``) are replaced. A month already published
    as closed with other statements raises :class:`ClosedStatementsDiffer`. Returns row counts.

    Rows already there (a racing publisher's) are skipped (``ON CONFLICT DO NOTHING``); lines and
    adjustments are copied without that check when every statement was new (the usual case).
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
    # ON CONFLICT DO NOTHING: two publishers of the same close race harmlessly.
    copied = copy_new_rows(cursor, "statements", STATEMENT_COLUMNS, "month, payee_id", statements())
    inserted = {"statements": copied.inserted}
    # When this transaction inserted every statement it read (none was there: closed ones were
    # checked for, drafts deleted, their lines and adjustments with them by ON DELETE CASCADE, and
    # no racing publisher got one in first), no line or adjustment with the key of one of ours can
    # exist: it would reference (FOREIGN KEY) a statement this transaction inserted, which no other
    # transaction can see or reference before we commit. They are then copied straight into their
    # tables, with no ON CONFLICT to check; otherwise a racer's rows are skipped as the statements'.
    fresh = copied.inserted == copied.read
    for table, columns, source, key in (
        ("statement_lines", LINE_COLUMNS, lines, "month, payee_id, country, tier"),
        ("statement_adjustments", ADJUSTMENT_COLUMNS, adjustments, "month, payee_id, source_month, reason"),
    ):
        inserted[table] = copy_new_rows(cursor, table, columns, key, source(), on_conflict=not fresh).inserted
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


def enqueue_messages(cursor, messages: Iterable[pa.RecordBatch]) -> int:
    """Insert messages (Arrow batches of ``OUTBOX_COLUMNS``) that are not queued yet, bulk-loaded
    with ``COPY``; return how many were new.

    The unique key (month, payee_id, kind) makes this idempotent: re-materializing a month never
    enqueues a message twice, and never touches a message already sent.
    """
    return copy_new_rows(cursor, "notification_outbox", OUTBOX_COLUMNS, "month, payee_id, kind", messages).inserted


class Copied(NamedTuple):
    """What ``copy_new_rows`` loaded: the rows read, and how many of them were new."""

    read: int
    inserted: int


COPY_CHUNK_BYTES = 1 << 20  # what COPY reads from the stream per call


def copy_new_rows(
    cursor,
    table: str,
    columns: tuple[str, ...],
    key: str,
    batches: Iterable[pa.RecordBatch],
    on_conflict: bool = True,
) -> Copied:
    """``COPY`` the rows of ``batches`` (Arrow, named ``columns`` in that order) into a temporary
    table, streamed as CSV, then insert into ``table`` those whose ``key`` it does not hold yet.

    Without ``on_conflict`` (the caller knows no row of ``table`` can have the key of one of
    these) the rows are copied straight into ``table``: one already there fails the copy.

    Memory holds one batch and its CSV at a time. The temporary table is dropped at the end (and
    with the transaction, should it fail)."""
    names = ", ".join(columns)
    staging = f"copy_{table}" if on_conflict else table
    if on_conflict:
        cursor.execute(f"CREATE TEMP TABLE {staging} ON COMMIT DROP AS SELECT {names} FROM {table} WITH NO DATA")
    stream = CsvStream(batches, columns)
    try:
        cursor.copy_expert(
            f"COPY {staging} ({names}) FROM STDIN WITH (FORMAT csv, ENCODING 'UTF8')", stream, size=COPY_CHUNK_BYTES
        )
    except psycopg2.Error:
        if stream.error is not None:  # the rows' own error (DuckDB, Arrow), not the COPY it cancelled
            raise stream.error from None
        raise
    if not on_conflict:
        return Copied(stream.rows, stream.rows)
    cursor.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} ON CONFLICT ({key}) DO NOTHING")
    inserted = cursor.rowcount
    cursor.execute(f"DROP TABLE {staging}")
    return Copied(stream.rows, inserted)


# Every value quoted, NULL unquoted and empty: PostgreSQL's CSV reads "" as an empty string and an
# empty field as NULL, and a quoted "\." line inside a value as data, not the end of the data.
CSV_OPTIONS = pa_csv.WriteOptions(include_header=False, quoting_style="all_valid")


class CsvStream(io.RawIOBase):
    """A binary file reading as the CSV (UTF-8) of Arrow batches, each made when COPY reaches it."""

    def __init__(self, batches: Iterable[pa.RecordBatch], columns: tuple[str, ...]):
        super().__init__()
        self._batches = iter(batches)
        self._columns = list(columns)
        self._pending = memoryview(b"")
        self.rows = 0  # rows read so far
        self.error: BaseException | None = None  # what reading the rows raised (psycopg2 reports it as QueryCanceled)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            try:
                batch = next(self._batches, None)
                if batch is None:
                    return 0
                if batch.schema.names != self._columns:
                    raise ValueError(f"rows to copy have the columns {batch.schema.names}, expected {self._columns}")
                sink = pa.BufferOutputStream()
                pa_csv.write_csv(batch, sink, CSV_OPTIONS)
            except BaseException as exc:
                self.error = exc
                raise
            self.rows += batch.num_rows
            self._pending = memoryview(sink.getvalue()).cast("B")
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

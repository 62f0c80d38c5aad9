"""A closed month's statements as rows: for the statement emails, the app database and the outbox.

The queries read the views the notification assets attach over the closed month:
``payee_statements``, ``payee_adjustments``, ``closed_earnings`` (``payee_earnings`` as closed, in
``period_close``) and ``payee_directory``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from fairstream_pipeline.lib.app_db.store import ADJUSTMENT_COLUMNS, OUTBOX_COLUMNS
from fairstream_pipeline.lib.assets import STATEMENT_NOTIFICATIONS
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.notifications.statement_email import adjustment_reason
from fairstream_pipeline.lib.payouts.rules import SPECIAL_PAYEES, USER_CENTRIC


# Columns a closed month may lack, and what they read as: months computed before rules v4 (ACPS
# v1) have no artist-centric cents, and were paid user-centric.
STATEMENT_DEFAULTS = {"acps_cents": "0::BIGINT", "payout_model": f"'{USER_CENTRIC}'"}
EARNINGS_DEFAULTS = {"acps_cents": "0::BIGINT"}


def with_defaults(con: duckdb.DuckDBPyConnection, relation: str, defaults: dict[str, str]) -> str:
    """``relation`` as a subquery with every column of ``defaults`` it lacks (a month written
    before that column existed) added as its default value."""
    present = {row[0] for row in con.execute(f"DESCRIBE {relation}").fetchall()}
    missing = [f"{value} AS {column}" for column, value in defaults.items() if column not in present]
    return f"(SELECT *, {', '.join(missing)} FROM {relation})" if missing else relation


def statement_rows(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """The month's statements of real payees, by payee: id, name, email, the six amounts (opening
    balance, earned, pro-rata, artist-centric, paid, closing balance), the paying model, the lines
    ``(country, tier, uc_cents, pr_cents, acps_cents)``, the adjustment, its lines ``(source_month,
    cents, reason)`` and the hold reason: ``statement_email.Statement``'s fields in order.

    Months closed before rules v4 read as artist-centric 0 and paid user-centric."""
    return con.execute(_statement_sql(con)).fetchall()


def statement_row_batches(con: duckdb.DuckDBPyConnection, batch_size: int) -> Iterator[list[tuple]]:
    """``statement_rows`` in lists of at most ``batch_size`` payees, in the same order, read from
    one streaming result: ``con`` runs nothing else until the last list is read."""
    result = con.execute(_statement_sql(con))
    while rows := result.fetchmany(batch_size):
        yield rows


def _statement_sql(con: duckdb.DuckDBPyConnection) -> str:
    special = ", ".join(f"'{p}'" for p in SPECIAL_PAYEES)
    statements = with_defaults(con, "payee_statements", STATEMENT_DEFAULTS)
    earnings = with_defaults(con, "closed_earnings", EARNINGS_DEFAULTS)
    return f"""
        WITH lines AS (
            SELECT payee_id, list((country, tier, uc_cents, pr_cents, acps_cents) ORDER BY country, tier) AS lines
            FROM {earnings} GROUP BY payee_id
        ),
        adjustments AS (
            SELECT payee_id, list((source_month, cents, reason) ORDER BY source_month, reason) AS adjustments
            FROM payee_adjustments GROUP BY payee_id
        )
        SELECT s.payee_id, d.name, d.email, s.opening_balance_cents, s.earned_cents, s.pro_rata_cents,
               s.acps_cents, s.paid_cents, s.closing_balance_cents, s.payout_model, coalesce(l.lines, []),
               s.adjustment_cents, coalesce(a.adjustments, []), s.hold_reason
        FROM {statements} s
        LEFT JOIN payee_directory d USING (payee_id)
        LEFT JOIN lines l USING (payee_id)
        LEFT JOIN adjustments a USING (payee_id)
        WHERE s.payee_id NOT IN ({special})
        ORDER BY s.payee_id
        """


def published_statement_rows(
    con: duckdb.DuckDBPyConnection, month: str, closed_at: str, statements_hash: str, rules_version: str
) -> list[tuple]:
    """Every statement of the month as the app database stores it (``STATEMENT_COLUMNS``), by
    payee: month, id, name, email, opening, earned, adjustment, pro-rata, paid, closing, the rules
    version it was closed under, when the month closed, the hash of its statements, the hold
    reason, the artist-centric cents and the paying model (0 and user-centric before rules v4)."""
    return con.execute(_published_statement_sql(con, month), [rules_version, closed_at, statements_hash]).fetchall()


def _published_statement_sql(con: duckdb.DuckDBPyConnection, month: str) -> str:
    """Parameters: the rules version, when the month closed, the hash of its statements."""
    return f"""SELECT '{month}' AS month, s.payee_id, d.name AS payee_name, d.email, s.opening_balance_cents,
                   s.earned_cents, s.adjustment_cents, s.pro_rata_cents, s.paid_cents, s.closing_balance_cents,
                   ? AS rules_version, ?::TIMESTAMPTZ AS closed_at, ? AS statements_hash, s.hold_reason,
                   s.acps_cents, s.payout_model
            FROM {with_defaults(con, "payee_statements", STATEMENT_DEFAULTS)} s
            LEFT JOIN payee_directory d USING (payee_id) ORDER BY s.payee_id"""


def published_line_rows(con: duckdb.DuckDBPyConnection, month: str) -> list[tuple]:
    """The statement lines as closed, of the payees with a statement (``LINE_COLUMNS``): month,
    payee, country, tier, uc_cents, pr_cents, acps_cents (0 before rules v4), by payee, country
    and tier."""
    return con.execute(_published_line_sql(con, month)).fetchall()


def _published_line_sql(con: duckdb.DuckDBPyConnection, month: str) -> str:
    return f"""SELECT '{month}' AS month, e.payee_id, country, tier, uc_cents, pr_cents, acps_cents
            FROM {with_defaults(con, "closed_earnings", EARNINGS_DEFAULTS)} e SEMI JOIN payee_statements s USING (payee_id)
            ORDER BY e.payee_id, country, tier"""


ADJUSTMENTS_SQL = (
    "SELECT payee_id, source_month, cents, reason FROM payee_adjustments ORDER BY payee_id, source_month, reason"
)


def adjustment_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, int, str]]:
    """The month's adjustments ``(payee_id, source_month, cents, reason)``, by payee, source month and reason."""
    return con.execute(ADJUSTMENTS_SQL).fetchall()


# Rows per Arrow batch streamed to the app database: a few MB of CSV each.
PUBLISH_BATCH_ROWS = 50_000
BatchSource = Callable[[], Iterable[pa.RecordBatch]]


def publication_sources(
    con: duckdb.DuckDBPyConnection, month: str, closed_at: str, statements_hash: str, rules_version: str
) -> tuple[BatchSource, BatchSource, BatchSource]:
    """The closed month's statements, lines and adjustment lines, as ``app_db.store.publish_closed_statements``
    reads them: each a function that streams its rows (the columns of ``STATEMENT_COLUMNS``,
    ``LINE_COLUMNS``, ``ADJUSTMENT_COLUMNS``) from ``con`` as Arrow batches. Nothing runs until one is
    called, and one at a time: ``con`` streams one result."""

    def statements() -> pa.RecordBatchReader:
        sql = _published_statement_sql(con, month)
        return con.sql(sql, params=[rules_version, closed_at, statements_hash]).to_arrow_reader(PUBLISH_BATCH_ROWS)

    def lines() -> pa.RecordBatchReader:
        return con.sql(_published_line_sql(con, month)).to_arrow_reader(PUBLISH_BATCH_ROWS)

    def adjustments() -> Iterator[pa.RecordBatch]:
        result = con.execute(ADJUSTMENTS_SQL)
        while rows := result.fetchmany(PUBLISH_BATCH_ROWS):
            payees, sources, amounts, reasons = zip(*rows)
            yield pa.record_batch(
                [
                    pa.array([month] * len(rows), pa.string()),
                    pa.array(payees, pa.string()),
                    pa.array(sources, pa.string()),
                    pa.array(amounts, pa.int64()),
                    pa.array([adjustment_reason(s, r) for s, r in zip(sources, reasons)], pa.string()),
                ],
                names=list(ADJUSTMENT_COLUMNS),
            )

    return statements, lines, adjustments


MESSAGE_BATCH_ROWS = 10_000  # rendered emails are a few kB each


def rendered_message_batches(
    lake: Lake, month: str, batch_rows: int = MESSAGE_BATCH_ROWS, columns: Iterable[str] = OUTBOX_COLUMNS
) -> Iterator[pa.RecordBatch]:
    """The month's rendered statement emails (``statement_notifications``) as Arrow batches of
    ``columns`` (the outbox's), in the order written (by payee), at most ``batch_rows`` at a time."""
    for path in sorted(lake.require(STATEMENT_NOTIFICATIONS, month).glob("*.parquet")):
        yield from pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=list(columns))

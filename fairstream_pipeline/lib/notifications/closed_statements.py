"""A closed month's statements as rows: for the statement emails, the app database and the outbox.

The queries read the views the notification assets attach over the closed month:
``payee_statements``, ``payee_adjustments``, ``closed_earnings`` (``payee_earnings`` as closed, in
``period_close``) and ``payee_directory``.
"""

from __future__ import annotations

import duckdb

from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.storage import Lake
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
    special = ", ".join(f"'{p}'" for p in SPECIAL_PAYEES)
    statements = with_defaults(con, "payee_statements", STATEMENT_DEFAULTS)
    earnings = with_defaults(con, "closed_earnings", EARNINGS_DEFAULTS)
    return con.execute(
        f"""
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
    ).fetchall()


def published_statement_rows(
    con: duckdb.DuckDBPyConnection, month: str, closed_at: str, statements_hash: str, rules_version: str
) -> list[tuple]:
    """Every statement of the month as the app database stores it (``STATEMENT_COLUMNS``), by
    payee: month, id, name, email, opening, earned, adjustment, pro-rata, paid, closing, the rules
    version it was closed under, when the month closed, the hash of its statements, the hold
    reason, the artist-centric cents and the paying model (0 and user-centric before rules v4)."""
    return con.execute(
        f"""SELECT '{month}', s.payee_id, d.name, d.email, s.opening_balance_cents, s.earned_cents,
                   s.adjustment_cents, s.pro_rata_cents, s.paid_cents, s.closing_balance_cents,
                   ?, ?::TIMESTAMPTZ, ?, s.hold_reason, s.acps_cents, s.payout_model
            FROM {with_defaults(con, "payee_statements", STATEMENT_DEFAULTS)} s
            LEFT JOIN payee_directory d USING (payee_id) ORDER BY s.payee_id""",
        [rules_version, closed_at, statements_hash],
    ).fetchall()


def published_line_rows(con: duckdb.DuckDBPyConnection, month: str) -> list[tuple]:
    """The statement lines as closed, of the payees with a statement (``LINE_COLUMNS``): month,
    payee, country, tier, uc_cents, pr_cents, acps_cents (0 before rules v4), by payee, country
    and tier."""
    return con.execute(
        f"""SELECT '{month}', e.payee_id, country, tier, uc_cents, pr_cents, acps_cents
            FROM {with_defaults(con, "closed_earnings", EARNINGS_DEFAULTS)} e SEMI JOIN payee_statements s USING (payee_id)
            ORDER BY e.payee_id, country, tier"""
    ).fetchall()


def adjustment_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, int, str]]:
    """The month's adjustments ``(payee_id, source_month, cents, reason)``, by payee, source month and reason."""
    return con.execute(
        "SELECT payee_id, source_month, cents, reason FROM payee_adjustments ORDER BY payee_id, source_month, reason"
    ).fetchall()


def rendered_messages(con: duckdb.DuckDBPyConnection, lake: Lake, month: str) -> list[tuple]:
    """The month's rendered statement emails (``statement_notifications``), every column, by payee."""
    return con.execute(
        f"SELECT * FROM {read_parquet(lake.parquet_glob('statement_notifications', month))} ORDER BY payee_id"
    ).fetchall()

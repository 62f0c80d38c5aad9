"""A month's ledger as the lake holds it, in the v4 shape whatever rules version wrote it: its
``payee_statements``, ``payee_adjustments`` and ``payee_earnings`` (or their copy at the close),
and the statements a month opens from."""

from __future__ import annotations

import duckdb
import pyarrow.parquet as pq

from fairstream_pipeline.lib.assets import ADJUSTMENTS, EARNINGS, STATEMENTS
from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.storage import Lake, MissingPartitionError
from fairstream_pipeline.lib.lake.tables import attach_month
from fairstream_pipeline.lib.months import previous_month
from fairstream_pipeline.lib.payouts.rules import MODEL_COLUMNS, USER_CENTRIC

# Why an adjustment was posted (payee_adjustments.reason).
LATE_DATA, RETURNED_PAYMENT = "late_data", "returned_payment"


def posted_adjustments_sql(lake: Lake, month: str) -> str:
    """``(payee_id, source_month, cents, reason)`` of ``month``'s adjustments (months closed under
    rules v2 have no ``reason`` column: all of theirs are late data)."""
    reason = "reason" if _has_column(lake, ADJUSTMENTS, month, "reason") else f"'{LATE_DATA}'"
    return f"SELECT payee_id, source_month, cents, {reason} AS reason FROM {read_parquet(lake.parquet_glob(ADJUSTMENTS, month))}"


def statements_sql(lake: Lake, month: str) -> str:
    """Every column of ``month``'s ``payee_statements`` in the v4 shape: months closed under rules v2
    get a null ``hold_reason`` (nobody was held before rule 10), months closed before v4 an
    ``acps_cents`` of 0 and the ``payout_model`` ``user_centric`` (the only one there was)."""
    missing = ""
    if not _has_column(lake, STATEMENTS, month, "hold_reason"):
        missing += ", NULL::VARCHAR AS hold_reason"
    if not _has_column(lake, STATEMENTS, month, "acps_cents"):
        missing += f", 0::BIGINT AS acps_cents, '{USER_CENTRIC}' AS payout_model"
    return f"SELECT *{missing} FROM {read_parquet(lake.parquet_glob(STATEMENTS, month))}"


def earnings_sql(lake: Lake, asset: str, month: str) -> str:
    """Every column of ``month``'s ``payee_earnings`` (or its copy at the close, ``period_close``)
    in the v4 shape: months computed before v4 get an ``acps_cents`` of 0."""
    acps = "" if _has_column(lake, asset, month, "acps_cents") else ", 0::BIGINT AS acps_cents"
    return f"SELECT *{acps} FROM {read_parquet(lake.parquet_glob(asset, month))}"


def attach_earnings(con: duckdb.DuckDBPyConnection, lake: Lake, asset: str, month: str) -> None:
    """The view ``payee_earnings`` over ``asset`` (``payee_earnings`` or ``period_close``) in the v4 shape."""
    con.execute(f"CREATE OR REPLACE VIEW payee_earnings AS {earnings_sql(lake, asset, month)}").fetchall()


def earned_column(lake: Lake, month: str) -> str:
    """The ``payee_earnings`` column ``month``'s earned cents come from: its payout model's, as its
    earnings were computed (a closed month is restated under the model it was closed with)."""
    recorded = lake.manifest(EARNINGS, month).get("rules", {})
    return MODEL_COLUMNS[recorded.get("payout_model", USER_CENTRIC)]


def _has_column(lake: Lake, asset: str, month: str, column: str) -> bool:
    """Whether ``asset``'s month was written with ``column`` (read from one file's footer)."""
    first = next(iter(sorted(lake.require(asset, month).glob("*.parquet"))), None)
    return first is not None and column in pq.read_schema(first).names


def attach_ledger(con: duckdb.DuckDBPyConnection, lake: Lake, month: str) -> None:
    """The views ``payee_statements`` and ``payee_adjustments`` of ``month`` in the v4 shape
    (``hold_reason``, ``acps_cents``, ``payout_model``, ``reason``), whatever rules version the
    month was computed under."""
    con.execute(f"CREATE OR REPLACE VIEW payee_statements AS {statements_sql(lake, month)}").fetchall()
    con.execute(f"CREATE OR REPLACE VIEW payee_adjustments AS {posted_adjustments_sql(lake, month)}").fetchall()


def opening_month(first_month: str, month: str) -> str | None:
    """The month whose closing balances open ``month``: the month before it, or None for the first
    month, which opens from zero balances."""
    return None if month == first_month else previous_month(month)


def attach_previous_statements(
    con: duckdb.DuckDBPyConnection, lake: Lake, first_month: str, month: str
) -> str | None:
    """``previous_statements``: the statements of :func:`opening_month` (none in the first month).

    Any other month needs its previous month's statements: without them it has no opening balances
    and ``MissingPartitionError`` names the month to compute first. Returns the month opened from.
    """
    previous = opening_month(first_month, month)
    if previous is None:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE previous_statements AS "
            "SELECT NULL::VARCHAR AS payee_id, NULL::BIGINT AS closing_balance_cents WHERE false"
        ).fetchall()
        return None
    if not lake.exists(STATEMENTS, previous):
        raise MissingPartitionError(
            f"payee_statements for {previous} is missing, so {month} has no opening balances: "
            f"materialize {previous} first (backfills run months in order)."
        )
    attach_month(con, lake, previous, {"previous_statements": STATEMENTS})
    return previous

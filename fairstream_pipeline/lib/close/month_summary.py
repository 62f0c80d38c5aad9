"""A short plain-text summary of computed months, read from the lake (``fairstream summary``)."""

from __future__ import annotations

import duckdb

from fairstream_pipeline.lib.assets import (
    ADJUSTMENTS,
    CLEAN_PLAYS,
    EARNINGS,
    FLAGGED_USERS,
    PAYEE_DIRECTORY,
    STATEMENT_NOTIFICATIONS,
    STATEMENTS,
)
from fairstream_pipeline.lib.close.ledger import RETURNED_PAYMENT, posted_adjustments_sql, statements_sql
from fairstream_pipeline.lib.close.period_close import close_record, next_open_month
from fairstream_pipeline.lib.format import cents, percent
from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.lake.tables import attach_month
from fairstream_pipeline.lib.markdown import payee_label
from fairstream_pipeline.lib.payments.overview import batch_overview, overview_line
from fairstream_pipeline.lib.payouts.report import ModelComparison, compare_models, model_label
from fairstream_pipeline.lib.payouts.rules import PayoutRules


def describe(reason: str, source: str) -> str:
    """Why a month's adjustments for ``source`` were posted, in words."""
    return f"payments for {source} returned by the bank" if reason == RETURNED_PAYMENT else f"late data for {source}"


def paying_model(lake: Lake, month: str) -> str:
    """The model whose cents ``month``'s statements earn, as their manifest recorded the rules
    (months computed before rules v4 record no ``payout_model``: user-centric)."""
    recorded = lake.manifest(STATEMENTS, month).get("rules", {})
    return PayoutRules.from_recorded(recorded).payout_model


def summarize_month(lake: Lake, month: str, top: int = 5) -> str:
    """Ingestion accounting, UC, PR and ACPS side by side with the model that paid, and the
    statements of one month, as text."""
    plays = lake.manifest(CLEAN_PLAYS, month)
    quarantined = ", ".join(f"{reason} {n:,}" for reason, n in plays["quarantined"].items())
    con = duckdb.connect()
    acps_known = _attach_earnings(con, lake, month)
    paying = paying_model(lake, month)
    comparison = compare_models(con, top=top, names_view="payee_directory", paying_model=paying)
    flagged = lake.row_count(FLAGGED_USERS, month)
    lines = [
        f"== {month} ({_close_status(lake, month)})",
        f"plays: {plays['rows_read']:,} rows read, {plays['clean_plays']:,} clean, "
        f"{plays['duplicates_dropped']:,} exact duplicates dropped; quarantined: {quarantined}",
        f"flagged users: {flagged:,}",
        *_model_lines(comparison, paying, acps_known),
        _statement_line(con, lake, month),
        *_adjustment_lines(con, lake, month),
        overview_line(batch_overview(lake, month)),
        *_email_lines(con, lake, month),
    ]
    return "\n".join(lines)


def _attach_earnings(con: duckdb.DuckDBPyConnection, lake: Lake, month: str) -> bool:
    """The views ``payee_earnings`` and ``payee_directory`` of ``month``; whether its earnings have
    ACPS cents (those computed before rules v4 have none: no artist-centric figure to show)."""
    attach_month(con, lake, month, {"earnings_as_written": EARNINGS, "payee_directory": PAYEE_DIRECTORY})
    acps_known = "acps_cents" in {row[0] for row in con.execute("DESCRIBE earnings_as_written").fetchall()}
    con.execute(
        "CREATE VIEW payee_earnings AS SELECT *"
        + ("" if acps_known else ", 0::BIGINT AS acps_cents")
        + " FROM earnings_as_written"
    ).fetchall()
    return acps_known


def _close_status(lake: Lake, month: str) -> str:
    record = close_record(lake, month)
    return (
        f"closed at {record['closed_at']} by run {record['closed_by_run']} (statements {record['statements_hash']}); "
        f"changes post to {next_open_month(lake, month)}"
        if record
        else "open: a draft, not paid or emailed until it is closed"
    )


def _model_lines(comparison: ModelComparison, paying: str, acps_known: bool) -> list[str]:
    """The three models' money, the top 1%'s share, what is held and the top payees."""
    lines = [
        f"paid under: {model_label(paying)}",
        f"money: user-centric {cents(comparison.uc_total_cents)} EUR, pro-rata "
        f"{cents(comparison.pr_total_cents)} EUR, artist-centric "
        + (f"{cents(comparison.acps_total_cents)} EUR" if acps_known else "n/a (computed before rules v4)")
        + f" over {comparison.payees:,} payees; "
        f"top 1% ({comparison.top_1pct_payees}) take {percent(comparison.uc_top_1pct_cents, comparison.uc_total_cents)} "
        f"UC vs {percent(comparison.pr_top_1pct_cents, comparison.pr_total_cents)} PR vs "
        + (percent(comparison.acps_top_1pct_cents, comparison.acps_total_cents) if acps_known else "n/a")
        + " ACPS",
        f"moved: the top 1% by pro-rata hold {percent(comparison.pr_top_1pct_cents, comparison.pr_total_cents)} "
        f"pro-rata and {percent(comparison.pr_top_1pct_uc_cents, comparison.uc_total_cents)} user-centric: "
        + (
            f"{comparison.moved_share_points:.2f} points move to other payees under user-centric"
            if comparison.moved_share_points is not None
            else "no money"
        ),
    ]
    for payee, held in comparison.special_under(paying).items():
        lines.append(f"held: {payee} {cents(held)} EUR ({model_label(paying)})")
    lines.append(f"top payees by {model_label(paying)} (UC / PR / ACPS, EUR):")
    lines += [
        f"  {payee_label(payee, comparison.names.get(payee)):<40} {cents(uc):>12} / {cents(pr):>12} / "
        f"{cents(acps) if acps_known else 'n/a':>12}"
        for payee, uc, pr, acps in comparison.top_payees
    ]
    return lines


def _statement_line(con: duckdb.DuckDBPyConnection, lake: Lake, month: str) -> str:
    """What the month's statements pay, carry over and hold."""
    statements = con.execute(
        f"""SELECT count(*), count(*) FILTER (WHERE paid_cents > 0),
                   coalesce(sum(paid_cents), 0)::BIGINT, coalesce(sum(opening_balance_cents), 0)::BIGINT,
                   coalesce(sum(closing_balance_cents), 0)::BIGINT, coalesce(sum(adjustment_cents), 0)::BIGINT,
                   count(*) FILTER (WHERE closing_balance_cents < 0),
                   count(*) FILTER (WHERE hold_reason IS NOT NULL),
                   coalesce(sum(closing_balance_cents) FILTER (WHERE hold_reason IS NOT NULL), 0)::BIGINT
            FROM ({statements_sql(lake, month)})"""
    ).fetchall()[0]
    return (
        f"statements: {statements[0]:,} payees, {statements[1]:,} paid {cents(statements[2])} EUR; "
        f"opening balances {cents(statements[3])} EUR, carried over {cents(statements[4])} EUR"
        + (f" ({statements[6]:,} negative)" if statements[6] else "")
        + (f"; held (no valid payment details or a returned payment) {statements[7]:,} payees {cents(statements[8])} EUR"
           if statements[7] else "")
    )


def _adjustment_lines(con: duckdb.DuckDBPyConnection, lake: Lake, month: str) -> list[str]:
    """The month's adjustments per source month and reason (none when it has no adjustments yet)."""
    if not lake.exists(ADJUSTMENTS, month):
        return []
    adjustments = con.execute(
        f"""SELECT source_month, reason, count(*), sum(cents)::BIGINT
            FROM ({posted_adjustments_sql(lake, month)}) GROUP BY 1, 2 ORDER BY 1, 2"""
    ).fetchall()
    return [
        f"adjustments for {source}: {payees:,} payees, net {cents(net)} EUR ({describe(reason, source)})"
        for source, reason, payees, net in adjustments
    ] or ["adjustments: none"]


def _email_lines(con: duckdb.DuckDBPyConnection, lake: Lake, month: str) -> list[str]:
    """The statement emails of a closed month: how many to send, how many payees have no address."""
    if not lake.exists(STATEMENT_NOTIFICATIONS, month):
        return []
    by_status = dict(
        con.execute(
            f"SELECT status, count(*) FROM {read_parquet(lake.parquet_glob(STATEMENT_NOTIFICATIONS, month))} "
            "GROUP BY status"
        ).fetchall()
    )
    return [
        f"statement emails: {by_status.get('pending', 0):,} to send, "
        f"{by_status.get('no_address', 0):,} payees without an address"
    ]

"""The blocking money checks of a month, evaluated on what is in the lake.

The Dagster asset checks report these findings, and ``period_close`` evaluates them again on the
draft it is asked to close, so a month never closes on a draft whose checks fail.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from fairstream_pipeline.lib.assets import AD_REVENUE, BILLED_USERS, CLOSE, EARNINGS, SEGMENT_POOLS, STATEMENTS
from fairstream_pipeline.lib.close.ledger import attach_earnings, attach_ledger, attach_previous_statements
from fairstream_pipeline.lib.close.period_close import close_record, closed_months_before
from fairstream_pipeline.lib.format import cents
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.lake.tables import attach_month
from fairstream_pipeline.lib.payments.standing import attach_payment_standing
from fairstream_pipeline.lib.payouts.checks import (
    MODELS,
    Finding,
    model_totals_finding,
    no_negative_earnings,
    revenue_without_streams,
    segments_reconcile,
    statements_balance,
)


def earnings_findings(con: duckdb.DuckDBPyConnection, lake: Lake, month: str) -> dict[str, Finding]:
    """The blocking checks of ``payee_earnings``: UC, PR and ACPS each reconcile per segment to the
    targets recomputed from the inputs, nothing is negative, and each model's total is the month's
    target (the three models share the same money)."""
    royalty_share_ppm = lake.manifest(EARNINGS, month)["rules"]["royalty_share_ppm"]
    attach_month(con, lake, month, {"billed_users": BILLED_USERS, "ad_revenue": AD_REVENUE})
    attach_earnings(con, lake, EARNINGS, month)
    return {
        **{
            f"{model}_cents_reconcile_per_segment": segments_reconcile(con, model, royalty_share_ppm)
            for model in MODELS
        },
        "no_negative_earnings": no_negative_earnings(con),
        "model_totals_equal_target": model_totals_finding(con, royalty_share_ppm),
    }


def statements_finding(con: duckdb.DuckDBPyConnection, lake: Lake, first_month: str, month: str) -> Finding:
    """``statements_balance_check``: every statement balances against its inputs.

    A closed month is checked against the earnings it was closed with (``period_close``), not the
    restated ones, and its statements must still be the bytes that were closed (its holds were
    checked against the payment details when it closed). An open month's holds are checked against
    who can be paid now (rule 10).
    """
    record = close_record(lake, month)
    attach_earnings(con, lake, CLOSE if record else EARNINGS, month)
    attach_ledger(con, lake, month)  # (a month closed under rules v2 has no hold_reason: nobody was held)
    attach_previous_statements(con, lake, first_month, month)
    threshold = lake.manifest(STATEMENTS, month)["rules"]["payout_threshold_cents"]
    standing = None if record else attach_payment_standing(con, lake, month, closed_months_before(lake, first_month, month))
    finding = statements_balance(con, threshold, standing)
    if record and lake.content_hash(STATEMENTS, month) != record["statements_hash"]:
        finding = Finding(
            finding.checked,
            [("(all)", f"the statements of closed {month} changed after the close")] + finding.problems,
        )
    return finding


@dataclass(frozen=True)
class StreamsFinding:
    """``month_has_counted_streams``: revenue with no counted stream means the plays are missing."""

    month: str
    paying_users: int
    subscription_cents: int
    ad_cents: int
    counted_streams: int

    @property
    def passed(self) -> bool:
        return self.counted_streams > 0 or (self.subscription_cents == 0 and self.ad_cents == 0)

    @property
    def message(self) -> str:
        return (
            f"{self.month} has revenue (subscriptions {cents(self.subscription_cents)} EUR from "
            f"{self.paying_users:,} paying users, ad revenue {cents(self.ad_cents)} EUR) but "
            f"{self.counted_streams:,} counted streams"
        )


def streams_finding(con: duckdb.DuckDBPyConnection, lake: Lake, month: str) -> StreamsFinding:
    attach_month(
        con, lake, month, {"billed_users": BILLED_USERS, "ad_revenue": AD_REVENUE, "segment_pools": SEGMENT_POOLS}
    )
    return StreamsFinding(month, *revenue_without_streams(con))

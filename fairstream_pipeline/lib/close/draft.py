"""An open month's draft statements: its adjustments posted, its statements rolled (rule 9) with
who cannot be paid held (rule 10), both published together with what they were computed from."""

from __future__ import annotations

from typing import Any

import duckdb

from fairstream_pipeline.lib.assets import ADJUSTMENTS, EARNINGS, LANDING_MONTH, PAYMENT_DETAILS, STATEMENTS
from fairstream_pipeline.lib.close.adjustments import post_adjustments
from fairstream_pipeline.lib.close.ledger import LATE_DATA, attach_earnings, attach_previous_statements
from fairstream_pipeline.lib.close.period_close import adjustment_basis, closed_months_before, restatement
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.lake.tables import publish_month
from fairstream_pipeline.lib.payments.standing import attach_payment_standing
from fairstream_pipeline.lib.payouts.engine import roll_statements
from fairstream_pipeline.lib.payouts.rules import PayoutRules


def draft_statements(
    con: duckdb.DuckDBPyConnection, lake: Lake, first_month: str, month: str, rules: PayoutRules
) -> dict[str, Any]:
    """Rules 9 and 10 for the open ``month``: post its adjustments, roll its statements (holding who
    cannot be paid), and publish both together. Leaves ``payee_statements`` and
    ``payee_adjustments`` on ``con``; returns the manifest they were written with (and their row
    counts under ``rows``)."""
    attach_earnings(con, lake, EARNINGS, month)
    previous = attach_previous_statements(con, lake, first_month, month)
    post_adjustments(con, lake, first_month, month)
    source_months = [r[0] for r in con.execute("SELECT DISTINCT source_month FROM payee_adjustments ORDER BY 1").fetchall()]
    restated_months = [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT source_month FROM payee_adjustments WHERE reason = '{LATE_DATA}' ORDER BY 1"
        ).fetchall()
    ]
    managed = attach_payment_standing(con, lake, month, closed_months_before(lake, first_month, month))
    roll_statements(con, rules, payment_standing=managed)
    manifest = {
        "rules": rules.as_dict(),
        "opening_from": "zero balances (first month)" if previous is None else f"payee_statements {previous}",
        # What this draft was computed from, so that the landing-zone sensor and the close can tell
        # when it is stale: a late file, new statements for the previous month, a restated or a
        # newly closed earlier month.
        "input_fingerprint": lake.manifest(LANDING_MONTH, month)["input_fingerprint"],
        "earnings_hash": lake.content_hash(EARNINGS, month),
        "previous_statements_hash": None if previous is None else lake.content_hash(STATEMENTS, previous),
        "adjustment_basis": adjustment_basis(lake, first_month, month),
        "source_months": source_months,
        # The audit of every late-data adjustment: the restated month, the run, the changed files.
        "restatements": [restatement(lake, k).as_dict() for k in restated_months],
        # Rule 10: whether the month's payment details were managed, and which snapshot held them.
        "payment_details": {
            "configured": managed,
            "hash": lake.content_hash(PAYMENT_DETAILS, month) if managed else None,
        },
    }
    manifest["rows"] = publish_month(con, lake, month, [STATEMENTS, ADJUSTMENTS], manifest)
    return manifest

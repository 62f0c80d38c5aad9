"""Closing a month, and the adjustments that restated months post to the next open month.

A month is **open** until ``period_close/month=M`` exists in the lake; from then on it is **closed**
and immutable: its ``payee_statements`` and ``payee_adjustments`` are never rewritten. The close
folder holds the month's ``payee_earnings`` exactly as they were closed (the statement lines that
were published and emailed), and its manifest is the close record: when, by which run, under which
rules, and the hashes of what was closed.

Recomputing a closed month K (a late file, a re-run) restates ``payee_earnings/month=K``. The next
statements computed for an open month N post, per payee and closed month K < N:

    adjustment = restated earned(K) - posted(K)
    posted(K)  = K's closed earned_cents + every adjustment for K posted in closed months between K and N

so each difference is posted once, and a re-run without new data posts nothing. A payment of a
closed month K that the bank returned posts the same way, once: its amount back to the payee, in the
next open month, with the reason ``returned_payment`` (the late-data ones have ``late_data``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow.parquet as pq

from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet, sql_string
from fairstream_pipeline.lib.lake.storage import Lake, MissingPartitionError
from fairstream_pipeline.lib.lake.tables import attach_month, publish_month
from fairstream_pipeline.lib.ingestion.landing_zone import file_fingerprint
from fairstream_pipeline.lib.months import following_month, previous_month
from fairstream_pipeline.lib.payments.details import PAYMENT_DETAILS
from fairstream_pipeline.lib.payments.lifecycle import PAYMENT_STATUS
from fairstream_pipeline.lib.payments.standing import (
    attach_payment_standing,
    details_configured,
    months_with_payment_status,
    returned_payments_sql,
)
from fairstream_pipeline.lib.payouts.engine import roll_statements
from fairstream_pipeline.lib.payouts.rules import MODEL_COLUMNS, USER_CENTRIC, PayoutRules

CLOSE = "period_close"
ADJUSTMENTS = "payee_adjustments"
STATEMENTS = "payee_statements"
EARNINGS = "payee_earnings"
# Why an adjustment was posted (payee_adjustments.reason).
LATE_DATA, RETURNED_PAYMENT = "late_data", "returned_payment"


def close_record(lake: Lake, month: str) -> dict[str, Any] | None:
    """The close record of ``month`` (its ``period_close`` manifest), or None while it is open."""
    return lake.manifest(CLOSE, month) if lake.exists(CLOSE, month) else None


def next_open_month(lake: Lake, month: str) -> str:
    """The first month after ``month`` that is not closed: where changes to ``month`` post."""
    candidate = following_month(month)
    while lake.exists(CLOSE, candidate):
        candidate = following_month(candidate)
    return candidate


def closed_notice(lake: Lake, month: str, record: dict[str, Any]) -> str:
    """What a re-run of a closed month says, in its metadata and its logs."""
    return (
        f"{month} is closed (at {record['closed_at']}); "
        f"changes post as adjustments to {next_open_month(lake, month)}"
    )


@dataclass(frozen=True)
class ClosedMonth:
    """A closed month's record, and what a re-run of it says."""

    record: dict[str, Any]
    notice: str


def closed_month(lake: Lake, month: str) -> ClosedMonth | None:
    """The close of ``month`` with its notice, or None while the month is open."""
    record = close_record(lake, month)
    return ClosedMonth(record, closed_notice(lake, month, record)) if record else None


def months_before(first_month: str, month: str) -> list[str]:
    """``first_month`` .. the month before ``month``, in order."""
    months, current = [], first_month
    while current < month:
        months.append(current)
        current = following_month(current)
    return months


def closed_months_before(lake: Lake, first_month: str, month: str) -> list[str]:
    return [k for k in months_before(first_month, month) if lake.exists(CLOSE, k)]


def adjustment_basis(lake: Lake, first_month: str, month: str) -> str:
    """A hash of what ``month``'s adjustments and holds are computed from: which earlier months are
    closed, their ``payee_earnings`` and the status of their payments as they are now. It changes
    when a closed month is restated, another month closes or the bank reports on a payment, which
    makes an open month's draft stale."""
    basis = [
        [
            k,
            lake.content_hash(EARNINGS, k) if lake.exists(EARNINGS, k) else "missing",
            lake.content_hash(PAYMENT_STATUS, k) if lake.exists(PAYMENT_STATUS, k) else None,
        ]
        for k in closed_months_before(lake, first_month, month)
    ]
    return hashlib.sha256(json.dumps(basis).encode()).hexdigest()[:16]


def adjustment_sources(lake: Lake, closed: list[str], posted_for: dict[str, list[str]]) -> list[str]:
    """The closed months K whose adjustment may be non-zero: those whose earnings changed since
    their close, and those already adjusted once (a restatement can come back to the closed
    figures, which then needs a reversal). ``posted_for`` maps each closed month to the source
    months its adjustments posted. Every other closed month has restated == posted: only zeros."""
    adjusted = {k for sources in posted_for.values() for k in sources}
    return [
        k
        for k in closed
        if k in adjusted or lake.content_hash(EARNINGS, k) != lake.manifest(CLOSE, k)["earnings_hash"]
    ]


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


def post_adjustments(con: duckdb.DuckDBPyConnection, lake: Lake, first_month: str, month: str) -> None:
    """Create ``payee_adjustments(payee_id, source_month, cents, reason)`` for the open ``month``: only
    non-zero rows, from the closed months before it (one read of each one's manifests).

    ``late_data``: a restated closed month's earnings minus what was posted for it. ``returned_payment``:
    a closed month's payments the bank returned minus what was already credited back for them."""
    closed = closed_months_before(lake, first_month, month)
    posted_for = {
        c: lake.manifest(ADJUSTMENTS, c).get("source_months", []) for c in closed if lake.exists(ADJUSTMENTS, c)
    }
    sources = adjustment_sources(lake, closed, posted_for)
    returned_sources = months_with_payment_status(lake, closed)
    restated = [
        f"SELECT {sql_string(k)} AS source_month, payee_id, sum({earned_column(lake, k)})::BIGINT AS cents "
        f"FROM {read_parquet(lake.parquet_glob(EARNINGS, k))} GROUP BY payee_id"
        for k in sources
    ]
    returned = [
        f"SELECT {sql_string(k)} AS source_month, payee_id, sum(cents)::BIGINT AS cents "
        f"FROM ({returned_payments_sql(lake, k)}) GROUP BY payee_id"
        for k in returned_sources
    ]
    posted = [
        f"SELECT {sql_string(k)} AS source_month, payee_id, earned_cents::BIGINT AS cents, '{LATE_DATA}' AS reason "
        f"FROM {read_parquet(lake.parquet_glob(STATEMENTS, k))}"
        for k in sources
    ]
    wanted = set(sources) | set(returned_sources)
    posted += [
        f"SELECT source_month, payee_id, cents, reason FROM ({posted_adjustments_sql(lake, c)}) "
        f"WHERE source_month IN ({', '.join(sql_string(k) for k in sorted(wanted))})"
        for c, posted_sources in posted_for.items()
        if set(posted_sources) & wanted
    ]
    empty = "SELECT NULL::VARCHAR AS source_month, NULL::VARCHAR AS payee_id, NULL::BIGINT AS cents WHERE false"
    empty_posted = empty.replace(" WHERE false", ", NULL::VARCHAR AS reason WHERE false")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE payee_adjustments AS
        WITH due AS (
            SELECT source_month, payee_id, cents, '{LATE_DATA}' AS reason FROM ({' UNION ALL '.join(restated) or empty})
            UNION ALL
            SELECT source_month, payee_id, cents, '{RETURNED_PAYMENT}' FROM ({' UNION ALL '.join(returned) or empty})
        ),
        posted AS (
            SELECT source_month, payee_id, reason, sum(cents) AS cents
            FROM ({' UNION ALL '.join(posted) or empty_posted}) GROUP BY ALL
        )
        SELECT payee_id, source_month, cents, reason FROM (
            SELECT payee_id, source_month, reason,
                   (coalesce(d.cents, 0) - coalesce(p.cents, 0))::BIGINT AS cents
            FROM (SELECT source_month, payee_id, reason, sum(cents) AS cents FROM due GROUP BY ALL) d
            FULL OUTER JOIN posted p USING (source_month, payee_id, reason)
        )
        WHERE cents <> 0
        ORDER BY payee_id, source_month, reason
        """
    ).fetchall()


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
        "input_fingerprint": lake.manifest("landing_month", month)["input_fingerprint"],
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


def _landing_files(lake: Lake, month: str) -> dict[str, str]:
    """``relative_path -> fingerprint`` of the landing files the month was last ingested from."""
    rows = duckdb.sql(
        f"SELECT relative_path, size_bytes, mtime_ns FROM {read_parquet(lake.parquet_glob('landing_month', month))}"
    ).fetchall()
    return {path: file_fingerprint(path, size, mtime) for path, size, mtime in rows}


@dataclass(frozen=True)
class Restatement:
    """Why a closed month posts an adjustment: who restated it and which landing files changed."""

    source_month: str
    closed_at: str
    restated_by_run: str
    restated_at: str
    landing_at_close: str
    landing_now: str
    changed_files: list[dict[str, str]]  # {path, change: added|changed|removed, at_close, now}

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def restatement(lake: Lake, month: str) -> Restatement:
    """The audit trail of a closed month's restatement: the close record against its earnings now."""
    record = lake.manifest(CLOSE, month)
    earnings = lake.manifest(EARNINGS, month)
    before = record.get("landing_files", {})
    after = _landing_files(lake, month)
    changed = []
    for path in sorted(set(before) | set(after)):
        if before.get(path) != after.get(path):
            kind = "added" if path not in before else "removed" if path not in after else "changed"
            changed.append({"path": path, "change": kind, "at_close": before.get(path, ""), "now": after.get(path, "")})
    return Restatement(
        source_month=month,
        closed_at=record["closed_at"],
        restated_by_run=earnings.get("run_id", ""),
        restated_at=earnings.get("computed_at", ""),
        landing_at_close=record.get("landing_fingerprint", ""),
        landing_now=earnings.get("input_fingerprint", ""),
        changed_files=changed,
    )


def draft_problems(lake: Lake, first_month: str, month: str) -> list[str]:
    """Why ``month``'s draft cannot be closed as it is (empty when it can)."""
    previous = opening_month(first_month, month)
    if previous is not None and not lake.exists(CLOSE, previous):
        return [f"{previous} is not closed: months close in order, close it first"]
    if not lake.exists(STATEMENTS, month):
        return [f"{month} has no draft: payee_statements/month={month} has not been computed"]
    draft = lake.manifest(STATEMENTS, month)
    problems = []
    if draft.get("earnings_hash") != lake.content_hash(EARNINGS, month):
        problems.append("payee_earnings changed after the draft statements were computed")
    if previous is not None and draft.get("previous_statements_hash") != lake.content_hash(STATEMENTS, previous):
        problems.append(f"the draft opened from other {previous} statements than the closed ones")
    recorded_details = draft.get("payment_details", {}).get("hash")
    if recorded_details != (lake.content_hash(PAYMENT_DETAILS, month) if details_configured(lake, month) else None):
        problems.append("the payment details changed after the draft was computed")
    if draft.get("adjustment_basis") != adjustment_basis(lake, first_month, month):
        problems.append("an earlier month was restated or closed, or the bank reported on a payment, after the draft was computed")
    if problems:
        problems[-1] += f": recompute the draft (--select 'payee_statements' --partition {month}) and review it"
    return problems


def statement_payments(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """What ``payee_statements`` pays: (payees paid, cents paid)."""
    payees, paid = con.execute(
        "SELECT count(*) FILTER (WHERE paid_cents > 0), coalesce(sum(paid_cents), 0)::BIGINT FROM payee_statements"
    ).fetchall()[0]
    return payees, paid


def close_month(
    con: duckdb.DuckDBPyConnection, lake: Lake, month: str, record: dict[str, Any]
) -> dict[str, Any]:
    """Publish ``period_close/month=M``: the month's earnings as closed, and the close record.

    ``record`` holds what the caller knows (closed_at, the run, the rules, the checks); this adds
    the hashes of the closed statements, adjustments and earnings and the landing files. Returns
    the full record.
    """
    full = {
        **record,
        "statements_hash": lake.content_hash(STATEMENTS, month),
        "adjustments_hash": lake.content_hash(ADJUSTMENTS, month),
        "earnings_hash": lake.content_hash(EARNINGS, month),
        # The payment details the holds were decided on (rule 10), which the payment batch pays to.
        "payment_details_hash": lake.content_hash(PAYMENT_DETAILS, month) if details_configured(lake, month) else None,
        "landing_fingerprint": lake.manifest("landing_month", month)["input_fingerprint"],
        "landing_files": _landing_files(lake, month),
    }
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {CLOSE} AS SELECT * FROM {read_parquet(lake.parquet_glob(EARNINGS, month))}"
    ).fetchall()
    rows = publish_month(con, lake, month, [CLOSE], full)
    full["rows"] = rows[CLOSE]
    return full

"""Closing a month: the close record, which months are closed, and whether a draft can close.

A month is **open** until ``period_close/month=M`` exists in the lake; from then on it is **closed**
and immutable: its ``payee_statements`` and ``payee_adjustments`` are never rewritten. The close
folder holds the month's ``payee_earnings`` exactly as they were closed (the statement lines that
were published and emailed), and its manifest is the close record: when, by which run, under which
rules, and the hashes of what was closed. Changes to a closed month post as adjustments to the next
open month (``lib.close.adjustments``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import duckdb

from fairstream_pipeline.lib.assets import (
    ADJUSTMENTS,
    CLOSE,
    EARNINGS,
    LANDING_MONTH,
    PAYMENT_DETAILS,
    PAYMENT_STATUS,
    STATEMENTS,
)
from fairstream_pipeline.lib.close.ledger import opening_month
from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.fingerprints import file_fingerprint
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.lake.tables import publish_month
from fairstream_pipeline.lib.months import following_month
from fairstream_pipeline.lib.payments.standing import details_configured


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


def _landing_files(lake: Lake, month: str) -> dict[str, str]:
    """``relative_path -> fingerprint`` of the landing files the month was last ingested from."""
    rows = duckdb.sql(
        f"SELECT relative_path, size_bytes, mtime_ns FROM {read_parquet(lake.parquet_glob(LANDING_MONTH, month))}"
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
        "landing_fingerprint": lake.manifest(LANDING_MONTH, month)["input_fingerprint"],
        "landing_files": _landing_files(lake, month),
    }
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {CLOSE} AS SELECT * FROM {read_parquet(lake.parquet_glob(EARNINGS, month))}"
    ).fetchall()
    rows = publish_month(con, lake, month, [CLOSE], full)
    full["rows"] = rows[CLOSE]
    return full

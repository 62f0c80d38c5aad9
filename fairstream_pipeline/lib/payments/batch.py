"""The payment batch of a closed month: who is paid, how much, to which account, under which ids.

One line per payee whose closed statement pays (``paid_cents > 0``), to the bank details of the
month's snapshot (the details its holds were decided on): ``payee_id``, ``account_holder`` (the
payee's name when the row has none), ``iban``, ``bic``, ``amount_cents``, ``end_to_end_id``,
``remittance``, plus ``iban_masked`` and ``details_hash``. The batch id, which becomes the SEPA
file's ``MsgId``, is ``FS-<YYYY-MM>-<first 8 hex of the lines' hash>``: the same lines always give
the same id, and a bank refuses a ``MsgId`` twice, so it is the payment's idempotency key.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from datetime import date, datetime

import duckdb

from fairstream_pipeline.lib.assets import PAYEE_DIRECTORY, PAYMENT_BATCH, PAYMENT_DETAILS, STATEMENTS
from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.months import following_month, parse_month
from fairstream_pipeline.lib.payments.sepa_credit_transfer import (
    REMITTANCE_LENGTH,
    Debtor,
    Transfer,
    build_pain001,
    sepa_text,
)
from fairstream_pipeline.lib.payouts.rules import PAYOUT_DUE_DAY

BATCH_ID = re.compile(r"^FS-(\d{4}-\d{2})-[0-9a-f]{8}$")
LINE_COLUMNS = (
    "payee_id", "account_holder", "iban", "bic", "amount_cents", "end_to_end_id", "remittance",
    "iban_masked", "details_hash",
)
CSV_COLUMNS = LINE_COLUMNS[:7]


class BatchError(ValueError):
    """A closed month whose batch cannot be built as the rules say (never a full IBAN in it)."""


def end_to_end_id(month: str, payee_id: str) -> str:
    """The payment's id, stable for (month, payee), at most 35 characters of the SEPA set:
    ``FS<YYYYMM>-<24 hex of sha256(month, payee)>``; every status report quotes it back."""
    digest = hashlib.sha256(f"{month}\0{payee_id}".encode()).hexdigest()[:24]
    return f"FS{month.replace('-', '')}-{digest}"


def remittance(month: str, payee_id: str) -> str:
    """The text the payee's bank shows: the month and the statement (at most 140 SEPA characters)."""
    return sepa_text(f"FairStream royalties {month}, statement of payee {payee_id}", REMITTANCE_LENGTH)


def batch_month(batch_id: str) -> str | None:
    """The month a FairStream batch id names (``FS-2024-01-1a2b3c4d`` -> ``2024-01``), else None."""
    match = BATCH_ID.match(batch_id or "")
    return match.group(1) if match else None


def execution_date(month: str, closed_at: str) -> date:
    """The requested execution date: the payout due day (the 3rd of the next month), or the day the
    month closed when it closed later. Derived from the close, so the file is the same on a re-run."""
    due = parse_month(following_month(month)).replace(day=PAYOUT_DUE_DAY)
    return max(due, datetime.fromisoformat(closed_at).date())


def build_batch_lines(con: duckdb.DuckDBPyConnection, lake: Lake, month: str) -> None:
    """``payment_batch`` lines for the closed ``month`` from its statements, its payment details and
    its directory; raises ``BatchError`` when a paid payee has no valid details (rule 10 forbids it)."""
    con.create_function("end_to_end_id", lambda payee: end_to_end_id(month, payee), ["VARCHAR"], "VARCHAR")
    con.create_function("remittance", lambda payee: remittance(month, payee), ["VARCHAR"], "VARCHAR")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE payment_batch AS
        SELECT s.payee_id, coalesce(d.account_holder, n.name, s.payee_id) AS account_holder, d.iban, d.bic,
               s.paid_cents AS amount_cents, end_to_end_id(s.payee_id) AS end_to_end_id,
               remittance(s.payee_id) AS remittance, d.iban_masked, d.details_hash, d.valid
        FROM {read_parquet(lake.parquet_glob(STATEMENTS, month))} s
        LEFT JOIN {read_parquet(lake.parquet_glob(PAYMENT_DETAILS, month))} d USING (payee_id)
        LEFT JOIN {read_parquet(lake.parquet_glob(PAYEE_DIRECTORY, month))} n USING (payee_id)
        WHERE s.paid_cents > 0
        ORDER BY s.payee_id
        """
    ).fetchall()
    unpayable = con.execute(
        "SELECT payee_id FROM payment_batch WHERE valid IS NOT TRUE ORDER BY payee_id LIMIT 5"
    ).fetchall()
    if unpayable:
        raise BatchError(
            f"{month}: paid payees without valid payment details (" + ", ".join(p for (p,) in unpayable)
            + "): the statements do not follow rule 10; recompute the month's draft before closing it"
        )
    con.execute("ALTER TABLE payment_batch DROP COLUMN valid").fetchall()


@dataclass(frozen=True)
class BatchLine:
    payee_id: str
    account_holder: str
    iban: str
    bic: str | None
    amount_cents: int
    end_to_end_id: str
    remittance: str
    iban_masked: str
    details_hash: str

    def __repr__(self) -> str:  # personal data: never the IBAN in a log or a traceback
        return f"BatchLine({self.payee_id!r}, {self.iban_masked}, {self.amount_cents} cents, {self.end_to_end_id})"


def batch_lines(con: duckdb.DuckDBPyConnection, table: str = PAYMENT_BATCH) -> list[BatchLine]:
    """The lines of ``table`` (a batch being built, or one read back from the lake), by payee."""
    rows = con.execute(f"SELECT {', '.join(LINE_COLUMNS)} FROM {table} ORDER BY payee_id").fetchall()
    return [BatchLine(*row) for row in rows]


def batch_id(month: str, lines: list[BatchLine]) -> str:
    """``FS-<month>-<8 hex>``: the hash covers every line's payee, account, amount and ids."""
    content = json.dumps([[getattr(line, c) for c in CSV_COLUMNS] for line in lines], separators=(",", ":"))
    return f"FS-{month}-{hashlib.sha256(content.encode()).hexdigest()[:8]}"


def batch_csv(lines: list[BatchLine]) -> str:
    """The batch's lines as CSV (amounts in integer cents), for finance to read beside the XML."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    writer.writerows([getattr(line, c) for c in CSV_COLUMNS] for line in lines)
    return buffer.getvalue()


def batch_file(month: str, lines: list[BatchLine], debtor: Debtor, closed_at: str) -> tuple[str, bytes]:
    """The batch id and its SEPA credit-transfer file (pain.001.001.09, validated against the XSD);
    created "at" the close, so the same closed month always gives the same bytes."""
    identifier = batch_id(month, lines)
    transfers = [
        Transfer(line.end_to_end_id, line.account_holder, line.iban, line.bic, line.amount_cents, line.remittance)
        for line in lines
    ]
    created = datetime.fromisoformat(closed_at)
    return identifier, build_pain001(identifier, created, execution_date(month, closed_at), debtor, transfers)

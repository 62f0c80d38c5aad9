"""Who can be paid in a month (rule 10), and the payments the bank returned.

A payee due a payment is paid only when the month's payment details (``lib.payments.details``) hold
a valid row for them and no earlier payment to those same details came back. A returned payment
holds the payee (``returned_payment``) until their row changes (another IBAN, BIC or holder: a new
``details_hash``), and its amount is credited back to their balance as an adjustment of the next
open month (``lib.close.period_close``).
"""

from __future__ import annotations

import duckdb

from fairstream_pipeline.lib.assets import PAYMENT_DETAILS, PAYMENT_STATUS
from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.payments.lifecycle import RETURNED
from fairstream_pipeline.lib.payouts.rules import INVALID_PAYMENT_DETAILS, RETURNED_PAYMENT


def details_configured(lake: Lake, month: str) -> bool:
    """Whether ``month``'s catalog snapshot had payment details (the landing zone manages them)."""
    return lake.exists(PAYMENT_DETAILS, month) and bool(lake.manifest(PAYMENT_DETAILS, month).get("configured"))


def returned_payments_sql(lake: Lake, batch_month: str) -> str:
    """``(payee_id, cents, details_hash, reason_code)`` of ``batch_month``'s payments the bank returned."""
    return (
        f"SELECT payee_id, amount_cents AS cents, details_hash, reason_code "
        f"FROM {read_parquet(lake.parquet_glob(PAYMENT_STATUS, batch_month))} WHERE status = '{RETURNED}'"
    )


def months_with_payment_status(lake: Lake, months: list[str]) -> list[str]:
    """The ``months`` whose batch has a status (some report was applied to it)."""
    return [m for m in months if lake.exists(PAYMENT_STATUS, m)]


def attach_payment_standing(con: duckdb.DuckDBPyConnection, lake: Lake, month: str, earlier_months: list[str]) -> bool:
    """The view ``payment_standing(payee_id, hold_reason)`` for ``month``: every payee with a row in
    its payment details, ``hold_reason`` null when they can be paid, ``invalid_payment_details`` or
    ``returned_payment`` (a payment of ``earlier_months`` to these same details came back) otherwise.
    A payee without a row is not in it (``no_payment_details``). Returns False, and creates nothing,
    when the month has no payment details to manage."""
    if not details_configured(lake, month):
        return False
    returned = [
        f"SELECT payee_id, details_hash FROM ({returned_payments_sql(lake, k)})"
        for k in months_with_payment_status(lake, earlier_months)
    ] or ["SELECT NULL::VARCHAR AS payee_id, NULL::VARCHAR AS details_hash WHERE false"]
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW payment_standing AS
        WITH returned AS (SELECT DISTINCT payee_id, details_hash FROM ({' UNION ALL '.join(returned)}))
        SELECT d.payee_id,
               CASE WHEN NOT d.valid THEN '{INVALID_PAYMENT_DETAILS}'
                    WHEN r.payee_id IS NOT NULL THEN '{RETURNED_PAYMENT}' END AS hold_reason
        FROM {read_parquet(lake.parquet_glob(PAYMENT_DETAILS, month))} d
        LEFT JOIN returned r ON r.payee_id = d.payee_id AND r.details_hash = d.details_hash
        """
    ).fetchall()
    return True

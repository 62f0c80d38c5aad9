"""The month's snapshot of the payees' bank details, each row judged payable or not (rule 10).

``catalog/payment_details.parquet`` is optional. Without it FairStream does not manage payment
details for the landing zone: the snapshot is empty and says so (``configured`` is false), nobody is
held and there is no payment batch. With it, every row is validated (``lib.payments.bank_details``,
with schwifty) and the snapshot keeps the verdict beside the details; a payee without a row is held.

The snapshot carries IBANs: the lake writes it with mode 0600, and nothing here logs a detail. What
the UI shows of it (:func:`details_summary`, :func:`unpayable_details`) masks every IBAN.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from fairstream_pipeline.lib.lake.tables import Rows
from fairstream_pipeline.lib.payments.bank_details import check_payment_details, compact, details_hash, mask_iban

COLUMNS = (
    "payee_id VARCHAR, account_holder VARCHAR, iban VARCHAR, bic VARCHAR, iban_masked VARCHAR, "
    "details_hash VARCHAR, valid BOOLEAN, problem VARCHAR"
)


def snapshot_payment_details(con: duckdb.DuckDBPyConnection, configured: bool) -> None:
    """Create ``payment_details`` from the loaded ``catalog_payment_details`` (``configured``), or empty.

    Each row keeps the details as delivered (the IBAN and BIC compacted and upper-cased when they
    parse), the masked IBAN, a hash of the row (a returned payment holds the payee until it
    changes), and the verdict: ``valid``, or the ``problem`` that holds the payee.
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE payment_details ({COLUMNS})").fetchall()
    if not configured:
        return
    rows = []
    for payee_id, iban, bic, holder in con.execute(
        "SELECT payee_id, iban, bic, account_holder FROM catalog_payment_details ORDER BY payee_id"
    ).fetchall():
        verdict = check_payment_details(iban, bic)
        kept_iban = verdict.iban or compact(iban) or None
        kept_bic = verdict.bic or compact(bic) or None
        holder = holder.strip() if holder and holder.strip() else None
        rows.append(
            (payee_id, holder, kept_iban, kept_bic, mask_iban(kept_iban), details_hash(kept_iban, kept_bic, holder),
             verdict.problem is None, verdict.problem)
        )
    if rows:  # through Arrow: DuckDB's executemany binds row by row (~1.8 ms a row, measured)
        names = [c.split()[0] for c in COLUMNS.split(", ")]
        validated = pa.table({name: list(values) for name, values in zip(names, zip(*rows))})
        con.register("validated_payment_details", validated)
        con.execute("INSERT INTO payment_details SELECT * FROM validated_payment_details").fetchall()
        con.unregister("validated_payment_details")


@dataclass(frozen=True)
class DetailsSummary:
    """What the month's payment details hold: rows, valid and invalid ones, and problems by kind."""

    rows: int
    valid: int
    invalid: int
    payees_without_details: int
    problems: list[tuple[str, int]]


def details_summary(con: duckdb.DuckDBPyConnection) -> DetailsSummary:
    """Counts over ``payment_details`` and ``payee_directory`` (payees with no row)."""
    rows, valid = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE valid) FROM payment_details"
    ).fetchall()[0]
    missing = con.execute(
        "SELECT count(*) FROM payee_directory d ANTI JOIN payment_details p USING (payee_id)"
    ).fetchall()[0][0]
    problems = con.execute(
        "SELECT problem, count(*) FROM payment_details WHERE NOT valid GROUP BY problem ORDER BY 2 DESC, 1"
    ).fetchall()
    return DetailsSummary(rows, valid, rows - valid, missing, problems)


def unpayable_details(con: duckdb.DuckDBPyConnection, limit: int = 20) -> Rows:
    """The first invalid rows, for the UI: payee, name, masked IBAN and the problem (never an IBAN)."""
    relation = con.sql(
        f"""SELECT p.payee_id, d.name, p.iban_masked AS iban, p.problem
            FROM payment_details p LEFT JOIN payee_directory d USING (payee_id)
            WHERE NOT p.valid ORDER BY p.payee_id LIMIT {int(limit)}"""
    )
    return Rows(relation.columns, relation.fetchall())

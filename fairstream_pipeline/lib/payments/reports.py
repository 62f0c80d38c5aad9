"""The bank's status reports in the landing zone (``payment_reports/*.xml``, ISO 20022 pain.002), and
each batch's payment statuses in the lake (``payment_status/month=M``).

A report is attributed to a batch month by the batch id it answers (``OrgnlMsgId``); it is applied
whole or not at all (``lib.payments.lifecycle.apply_report``), and recorded by its sha256 in the
status's manifest, so the same report applied twice changes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from fairstream_pipeline.lib.assets import PAYMENT_BATCH, PAYMENT_STATUS
from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.lake.tables import publish_month
from fairstream_pipeline.lib.payments.batch import batch_month
from fairstream_pipeline.lib.payments.lifecycle import Payment
from fairstream_pipeline.lib.payments.status_report import StatusReport, StatusReportError, parse_status_report

PAYMENT_REPORTS = "payment_reports"  # the landing folder the bank's reports arrive in
STATUS_COLUMNS = (
    "end_to_end_id VARCHAR, payee_id VARCHAR, amount_cents BIGINT, details_hash VARCHAR, status VARCHAR, "
    "bank_status VARCHAR, reason_code VARCHAR, report VARCHAR"
)


@dataclass(frozen=True)
class ReportFile:
    """One report file as read: its landing-relative name, bytes and sha256."""

    name: str
    data: bytes
    sha256: str


def report_paths(landing_root: str | Path) -> list[Path]:
    """Every report file of the landing zone, by name (hidden and temporary files excluded)."""
    folder = Path(landing_root) / PAYMENT_REPORTS
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == ".xml" and not p.name.startswith((".", "_")))


def read_report(landing_root: str | Path, name: str) -> ReportFile:
    """The report ``name`` (``payment_reports/x.xml`` or ``x.xml``); a missing file is a StatusReportError."""
    relative = name if name.startswith(f"{PAYMENT_REPORTS}/") else f"{PAYMENT_REPORTS}/{name}"
    path = Path(landing_root) / relative
    if not path.is_file():
        raise StatusReportError(f"{relative}: no such report in the landing zone")
    data = path.read_bytes()
    return ReportFile(relative, data, hashlib.sha256(data).hexdigest())


def attribute(report: ReportFile) -> tuple[StatusReport, str]:
    """The parsed report and the batch month it answers; a StatusReportError naming the file when it
    cannot be read or does not answer a FairStream batch."""
    parsed = parse_status_report(report.data, report.name)
    month = batch_month(parsed.original_message_id)
    if month is None:
        raise StatusReportError(
            f"{report.name}: it answers {parsed.original_message_id!r}, which is not a FairStream payment batch "
            "(FS-YYYY-MM-xxxxxxxx)"
        )
    return parsed, month


def batch_payments(lake: Lake, month: str) -> list[Payment]:
    """The released batch's payments, all pending: where a month's statuses start."""
    rows = duckdb.sql(
        f"SELECT end_to_end_id, payee_id, amount_cents, details_hash "
        f"FROM {read_parquet(lake.parquet_glob(PAYMENT_BATCH, month))} ORDER BY end_to_end_id"
    ).fetchall()
    return [Payment(*row) for row in rows]


def current_payments(lake: Lake, month: str) -> list[Payment]:
    """The batch's payments with their statuses as the lake holds them now."""
    if not lake.exists(PAYMENT_STATUS, month):
        return batch_payments(lake, month)
    rows = duckdb.sql(
        f"SELECT end_to_end_id, payee_id, amount_cents, details_hash, status, bank_status, reason_code, report "
        f"FROM {read_parquet(lake.parquet_glob(PAYMENT_STATUS, month))} ORDER BY end_to_end_id"
    ).fetchall()
    return [Payment(*row) for row in rows]


def applied_reports(lake: Lake, month: str) -> list[dict[str, Any]]:
    """The reports applied to the month's batch so far: name, sha256, when, by which run, what changed."""
    return lake.manifest(PAYMENT_STATUS, month).get("applied_reports", []) if lake.exists(PAYMENT_STATUS, month) else []


def publish_status(
    lake: Lake, month: str, payments: list[Payment], applied: list[dict[str, Any]], batch_id: str
) -> int:
    """Write the month's payment statuses and the list of reports applied to them; the row count."""
    with duckdb.connect() as con:
        con.execute(f"CREATE TEMP TABLE {PAYMENT_STATUS} ({STATUS_COLUMNS})").fetchall()
        if payments:  # through Arrow: DuckDB's executemany binds row by row
            rows = pa.Table.from_pylist([asdict(p) for p in payments])
            con.register("reported_payments", rows)
            con.execute(f"INSERT INTO {PAYMENT_STATUS} SELECT * FROM reported_payments").fetchall()
        rows = publish_month(
            con, lake, month, [PAYMENT_STATUS], {"batch_id": batch_id, "applied_reports": applied},
            private=frozenset({PAYMENT_STATUS}),  # its details hashes stand for bank details
        )
    return rows[PAYMENT_STATUS]


def applied_entry(report: ReportFile, run_id: str, settled: tuple[str, ...], returned: tuple[str, ...], unchanged: int) -> dict:
    """How a report is remembered in the status's manifest."""
    return {
        "report": report.name,
        "sha256": report.sha256,
        "applied_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "applied_by_run": run_id,
        "settled": len(settled),
        "returned": len(returned),
        "unchanged": unchanged,
    }

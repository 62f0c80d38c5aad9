"""The demo's bank: read a released SEPA payment file and answer it with a status report.

The report is an ISO 20022 pain.002.001.10 (built with ``lib.payments.status_report``) that settles
every payment (ACSC) but ``returns`` of them, rejected with AC04 (closed account) and AC01
(incorrect account number) in turn. Which payments come back is drawn from ``seed``; the same file,
count and seed give the same bytes.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from fairstream_pipeline.lib.payments.reports import PAYMENT_REPORTS
from fairstream_pipeline.lib.payments.sepa_credit_transfer import read_pain001
from fairstream_pipeline.lib.payments.status_report import TransactionStatus, build_status_report

RETURN_REASONS = ("AC04", "AC01")


@dataclass(frozen=True)
class BankReport:
    path: Path
    batch_id: str
    settled: int
    returned: list[tuple[str, int, str]]  # (end_to_end_id, amount_cents, reason code)


def released_file(payments_dir: str | Path, month: str) -> Path:
    """The payment file released for ``month`` in the bank's folder (``FS-<month>-*.xml``)."""
    found = sorted(Path(payments_dir).glob(f"FS-{month}-*.xml"))
    if len(found) != 1:
        raise ValueError(f"expected one released payment file FS-{month}-*.xml in {payments_dir}, found {len(found)}")
    return found[0]


def write_bank_report(payments_dir: str | Path, month: str, landing: str | Path, returns: int, seed: int) -> BankReport:
    """Answer the month's released file with a status report in ``landing/payment_reports/``."""
    transfers = read_pain001(released_file(payments_dir, month).read_bytes())
    ids = [t.end_to_end_id for t in transfers.transfers]
    chosen = sorted(random.Random(seed).sample(ids, min(returns, len(ids))))
    reasons = {e2e: RETURN_REASONS[i % len(RETURN_REASONS)] for i, e2e in enumerate(chosen)}
    statuses = [
        TransactionStatus(e2e, "RJCT", reasons[e2e]) if e2e in reasons else TransactionStatus(e2e, "ACSC", None)
        for e2e in ids
    ]
    created = datetime.fromisoformat(transfers.created_at).replace(tzinfo=timezone.utc) + timedelta(days=2)
    data = build_status_report(f"BANK-{transfers.msg_id}"[:35], created, transfers.msg_id, statuses)
    folder = Path(landing) / PAYMENT_REPORTS
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{transfers.msg_id}-status.xml"
    temporary = folder / f".{target.name}.tmp"  # hidden until complete: the sensor never reads half a file
    temporary.write_bytes(data)
    os.replace(temporary, target)
    amounts = {t.end_to_end_id: t.amount_cents for t in transfers.transfers}
    return BankReport(target, transfers.msg_id, len(ids) - len(chosen), [(e, amounts[e], reasons[e]) for e in chosen])

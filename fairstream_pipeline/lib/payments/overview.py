"""Where a month's payment run stands, for ``fairstream summary``, ``fairstream payments show`` and /metrics."""

from __future__ import annotations

from typing import Any

from fairstream_pipeline.lib.assets import PAYMENT_BATCH, PAYMENT_DETAILS, PAYMENT_RELEASE
from fairstream_pipeline.lib.format import eur
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.payments.lifecycle import RETURNED, SETTLED, batch_status
from fairstream_pipeline.lib.payments.reports import current_payments
from fairstream_pipeline.lib.payments.sepa_credit_transfer import cents_text
from fairstream_pipeline.lib.payments.standing import details_configured


def batch_overview(lake: Lake, month: str) -> dict[str, Any]:
    """What a month's payment run stands at: its batch, release and payments' statuses."""
    if not lake.exists(PAYMENT_BATCH, month):
        if lake.exists(PAYMENT_DETAILS, month) and not details_configured(lake, month):
            reason = "not configured (the landing zone has no catalog/payment_details.parquet)"
        else:
            reason = "none yet (the month is not closed, or FAIRSTREAM_PAYMENTS_DEBTOR_NAME/IBAN are not set)"
        return {"month": month, "batch_id": None, "status": reason}
    batch = lake.manifest(PAYMENT_BATCH, month)
    released = lake.exists(PAYMENT_RELEASE, month)
    payments = current_payments(lake, month) if released else []
    if not batch["batch_id"]:
        return {"month": month, "batch_id": None, "status": "nothing to pay: no statement of the month pays"}
    overview = {
        "month": month,
        "batch_id": batch["batch_id"],
        "payments": batch["rows"],
        "control_sum_cents": batch["control_sum_cents"],
        "control_sum": cents_text(batch["control_sum_cents"]),
        "payees_held": batch["payees_held"],
        "held_cents": batch["held_cents"],
        "status": batch_status(released, [p.status for p in payments]),
        "settled": sum(p.status == SETTLED for p in payments),
        "returned": sum(p.status == RETURNED for p in payments),
        "returned_cents": sum(p.amount_cents for p in payments if p.status == RETURNED),
    }
    if released:
        release = lake.manifest(PAYMENT_RELEASE, month)
        overview["release"] = {k: release[k] for k in ("approver", "released_at", "file_name", "file_sha256", "file_path")}
    return overview


def overview_line(o: dict[str, Any]) -> str:
    """One line for ``fairstream summary`` and ``payments show``."""
    if o["batch_id"] is None:
        return f"payment batch: {o['status']}"
    line = (
        f"payment batch {o['batch_id']}: {o['status']}, {o['payments']:,} payments {eur(o['control_sum_cents'])}; "
        f"held {o['payees_held']:,} payees {eur(o['held_cents'])}"
    )
    if "release" in o:
        r = o["release"]
        line += f"; released {r['released_at']} by {r['approver']} ({r['file_name']})"
        line += f"; settled {o['settled']:,}, returned {o['returned']:,} ({eur(o['returned_cents'])})"
    return line

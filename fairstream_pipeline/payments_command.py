"""``fairstream payments``: show a month's batch, approve it, apply the bank's status reports.

``approve`` and ``ingest`` launch real runs of the instance (``DAGSTER_HOME``), as ``fairstream run``
does (:mod:`fairstream_pipeline.run_command`): ``approve_payment_batch`` and ``ingest_payment_report``.
What they print comes from the lake afterwards; bank details are shown masked, never in full.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TextIO

import dagster as dg

from fairstream_pipeline.lib.format import eur
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.assets import PAYMENT_RELEASE, PAYMENT_STATUS
from fairstream_pipeline.lib.payments.lifecycle import RETURNED, reason_text
from fairstream_pipeline.lib.payments.overview import batch_overview, overview_line
from fairstream_pipeline.lib.payments.reports import applied_reports, attribute, current_payments, read_report, report_paths
from fairstream_pipeline.lib.payments.status_report import StatusReportError
from fairstream_pipeline.run_command import RunCommandError, instance_and_queue, run_month
from fairstream_pipeline.settings import get_settings

APPROVE_JOB, INGEST_JOB = "approve_payment_batch", "ingest_payment_report"


def parse_eur(text: str) -> int:
    """``"1,234.56"`` / ``"20"`` / ``"20.5"`` EUR as integer cents, exactly; more than two decimals is an error."""
    try:
        amount = Decimal(text.replace(",", "").strip())
    except InvalidOperation:
        raise ValueError(f"expected an amount in EUR such as 20.00, got {text!r}") from None
    cents = amount * 100
    if cents != cents.to_integral_value() or amount < 0:
        raise ValueError(f"expected a non-negative amount in EUR with at most two decimals, got {text!r}")
    return int(cents)


def show(lake: Lake, month: str, as_json: bool, field: str | None = None, out: TextIO = sys.stdout) -> int:
    """Print the month's batch (a line, JSON, or one field); 1 when a field is asked of a month without a batch."""
    overview = batch_overview(lake, month)
    if field is not None:
        if overview["batch_id"] is None:
            print(f"{month}: payment batch {overview['status']}", file=sys.stderr)
            return 1
        print(overview[field], file=out)
        return 0
    print(json.dumps(overview, indent=2) if as_json else f"== {month}\n{overview_line(overview)}", file=out)
    return 0


def approve(
    month: str, count: int, control_sum: str, approver: str, workspace: Path, out: TextIO = sys.stdout
) -> int:
    """Launch ``approve_payment_batch`` for ``month``; 0 only when the batch is released (now or before)."""
    config = {
        "ops": {
            "payment_release": {
                "config": {"approver": approver, "count": count, "control_sum_cents": parse_eur(control_sum)}
            }
        }
    }
    with instance_and_queue(workspace, out) as served:
        if served is None:
            return 2
        instance, queue, log = served
        try:
            status = run_month(instance, queue, workspace, month, config, log, out, job=APPROVE_JOB,
                               launched_by="fairstream payments approve")
        except RunCommandError as exc:
            print(f"{month} was not launched: {exc}", file=out)
            return 1
    lake = Lake(get_settings().warehouse_dir)
    if status != dg.DagsterRunStatus.SUCCESS or not lake.exists(PAYMENT_RELEASE, month):
        print(f"{month}: the batch was not released", file=out)
        return 1
    release = lake.manifest(PAYMENT_RELEASE, month)
    print(
        f"{month}: {release['batch_id']} released at {release['released_at']} by {release['approver']}: "
        f"{release['payments']:,} payments, {eur(release['control_sum_cents'])}; file {release['file_path']} "
        f"(sha256 {release['file_sha256']})",
        file=out,
    )
    return 0


def ingest(workspace: Path, out: TextIO = sys.stdout) -> int:
    """Apply every report of ``payment_reports/`` not applied yet, one ``ingest_payment_report`` run
    each, and print what each changed. 0 when every report was applied (or had been)."""
    settings = get_settings()
    lake, root, failed = Lake(settings.warehouse_dir), settings.landing_dir, 0
    pending: list[tuple[str, str, str]] = []  # (report, month, sha256)
    for path in report_paths(root):
        report = read_report(root, path.name)
        try:
            _, month = attribute(report)
        except StatusReportError as exc:
            print(f"{exc}; nothing of it was applied", file=out)
            failed += 1
            continue
        if any(a["sha256"] == report.sha256 for a in applied_reports(lake, month)):
            print(f"{report.name}: already applied to {month}'s batch, nothing changes", file=out)
            continue
        pending.append((report.name, month, report.sha256))
    if not pending:
        if not failed:
            print(f"no new report in {Path(root) / 'payment_reports'}", file=out)
        return 1 if failed else 0
    with instance_and_queue(workspace, out) as served:
        if served is None:
            return 2
        instance, queue, log = served
        for name, month, sha in pending:
            config = {"ops": {PAYMENT_STATUS: {"config": {"report": name}}}}
            try:
                status = run_month(instance, queue, workspace, month, config, log, out, job=INGEST_JOB,
                                   launched_by="fairstream payments ingest")
            except RunCommandError as exc:
                print(f"{name} was not applied: {exc}", file=out)
                failed += 1
                continue
            entry = next((a for a in applied_reports(lake, month) if a["sha256"] == sha), None)
            if status != dg.DagsterRunStatus.SUCCESS or entry is None:
                print(f"{name}: not applied (see the run above)", file=out)
                failed += 1
                continue
            print(
                f"applied {name} to {month}'s batch: {entry['settled']} settled, {entry['returned']} returned, "
                f"{entry['unchanged']} unchanged",
                file=out,
            )
            for payment in current_payments(lake, month):
                if payment.status == RETURNED and payment.report == name:
                    print(f"  returned: {payment.payee_id} {eur(payment.amount_cents)} ({reason_text(payment.reason_code)})",
                          file=out)
    return 1 if failed else 0

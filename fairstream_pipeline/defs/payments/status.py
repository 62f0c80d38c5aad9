"""``payment_status``: each released payment's status from the bank's reports (pain.002 in the
landing zone's payment_reports/), applied whole or not at all and only once, and the op that fails a
report no FairStream batch answers (reject_unattributable_report)."""

from collections.abc import Iterator

import dagster as dg
import duckdb as duckdb_module
from pydantic import Field

from fairstream_pipeline.defs.metadata import lake_metadata, markdown_table
from fairstream_pipeline.defs.payments.release import lake_release, record_in_app_database
from fairstream_pipeline.defs.payments.specs import payments_asset
from fairstream_pipeline.defs.resources import AppDatabaseResource, LandingZoneResource, WarehouseResource
from fairstream_pipeline.defs.retries import database_write_retries
from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.markdown import md_text, payee_label
from fairstream_pipeline.lib.assets import PAYEE_DIRECTORY, PAYMENT_BATCH, PAYMENT_RELEASE, PAYMENT_STATUS
from fairstream_pipeline.lib.payments.lifecycle import (
    PENDING,
    RETURNED,
    SETTLED,
    IllegalTransition,
    apply_report,
    batch_status,
    check_batch_transition,
    reason_text,
)
from fairstream_pipeline.lib.payments.release import record_status
from fairstream_pipeline.lib.payments.reports import (
    ReportFile,
    applied_entry,
    applied_reports,
    attribute,
    current_payments,
    publish_status,
    read_report,
    report_paths,
)
from fairstream_pipeline.lib.payments.status_report import StatusReportError
from fairstream_pipeline.lib.format import eur


class ReportConfig(dg.Config):
    """Which bank status report to apply."""

    report: str = Field(
        default="",
        description="A file of the landing zone's payment_reports/ (e.g. payment_reports/bank-2024-02-05.xml); "
        "empty: every report for this month's batch that was not applied yet.",
    )


def _status_metadata(lake: Lake, month: str, status: str) -> dict:
    rows = duckdb_module.sql(
        f"""SELECT p.status, p.payee_id, n.name, p.amount_cents, p.reason_code, p.report
            FROM {read_parquet(lake.parquet_glob(PAYMENT_STATUS, month))} p
            LEFT JOIN {read_parquet(lake.parquet_glob(PAYEE_DIRECTORY, month))} n USING (payee_id)
            ORDER BY p.payee_id"""
    ).fetchall()
    returned = [r for r in rows if r[0] == RETURNED]
    applied = applied_reports(lake, month)
    statuses = [r[0] for r in rows]
    return {
        "status": status,
        "batch_status": batch_status(True, statuses),
        "payments": dg.MetadataValue.int(len(rows)),
        "settled": dg.MetadataValue.int(statuses.count(SETTLED)),
        "pending": dg.MetadataValue.int(statuses.count(PENDING)),
        "returned": dg.MetadataValue.int(len(returned)),
        "returned_cents": dg.MetadataValue.int(sum(r[3] for r in returned)),
        "returned_payments": dg.MetadataValue.md(
            markdown_table(
                ["payee", "amount", "reason", "report"],
                [(payee_label(p, name), eur(amount), reason_text(code), report) for _, p, name, amount, code, report in returned],
            )
            + "\n\nEach is credited back to the payee's balance in the next open month, and the payee is "
            "held until their payment details change."
            if returned else "No payment was returned."
        ),
        "reports_applied": dg.MetadataValue.md(
            markdown_table(
                ["report", "applied at", "settled", "returned", "unchanged", "sha256"],
                [(a["report"], a["applied_at"], a["settled"], a["returned"], a["unchanged"], a["sha256"][:16]) for a in applied],
            )
        ),
        **lake_metadata(lake, PAYMENT_STATUS, month),
    }


def _candidate_reports(
    context: dg.AssetExecutionContext, root: str, report: str, skipped: list[str]
) -> list[ReportFile]:
    """The run's report, else every report for this month's batch. One that cannot be read, or
    answers another month, is left to its own run (the sensor's, or `fairstream payments ingest`),
    which fails naming it: here it is only listed in ``skipped``, so that it does not stop this
    month's other reports."""
    if report:
        return [read_report(root, report)]
    candidates = []
    for path in report_paths(root):
        found = read_report(root, path.name)
        try:
            if attribute(found)[1] == context.partition_key:
                candidates.append(found)
        except StatusReportError as exc:
            skipped.append(str(exc))
            context.log.warning(f"{exc}: skipped here; its own run reports it")
    return candidates


@payments_asset(code_version="payment-status-v1", deps=[PAYMENT_RELEASE])
def payment_status(
    context: dg.AssetExecutionContext,
    config: ReportConfig,
    landing_zone: LandingZoneResource,
    warehouse: WarehouseResource,
    app_database: AppDatabaseResource,
) -> Iterator[dg.MaterializeResult]:
    """Each released payment's status from the bank's reports (ISO 20022 pain.002 in the landing
    zone's payment_reports/): settled (ACSC, ACCP) or returned (RJCT, with its reason code). A
    returned payment is credited back to the payee in the next open month and holds them until
    their payment details change. A report is applied whole or not at all, and only once: an
    unknown end-to-end id, a batch never released or an illegal status change fails the run of that
    report, naming the file (payment_reports_sensor and `fairstream payments ingest` start one run
    per report); a run without a report applies every new one it can and lists the others."""
    with database_write_retries(context):
        month, lake, root = context.partition_key, warehouse.lake(), landing_zone.root
        skipped: list[str] = []
        try:
            candidates = _candidate_reports(context, root, config.report, skipped)
            applied = applied_reports(lake, month)
            done = {a["sha256"] for a in applied}
            new = [r for r in candidates if r.sha256 not in done]
            if candidates and not new:
                context.log.info(f"{month}: {', '.join(r.name for r in candidates)} already applied: nothing changes")
            released = lake.exists(PAYMENT_RELEASE, month)
            batch_id = lake.manifest(PAYMENT_BATCH, month)["batch_id"] if lake.exists(PAYMENT_BATCH, month) else f"(no batch for {month})"
            payments = current_payments(lake, month) if released else []
            before = batch_status(released, [p.status for p in payments])
            entries = []
            for report in new:
                try:
                    parsed, _ = attribute(report)
                    result = apply_report(parsed, report.name, batch_id, released, payments)
                    check_batch_transition(before, batch_status(True, [p.status for p in result.payments]))
                except (StatusReportError, IllegalTransition) as exc:
                    if config.report:
                        raise
                    skipped.append(str(exc))
                    context.log.warning(f"{exc}: nothing of it was applied")
                    continue
                payments = list(result.payments)
                entries.append(applied_entry(report, context.run.run_id, result.settled, result.returned, result.unchanged))
        except (StatusReportError, IllegalTransition) as exc:
            raise dg.Failure(description=f"{exc}; nothing of it was applied", allow_retries=False) from exc
        if not entries:
            if lake.exists(PAYMENT_STATUS, month):
                yield dg.MaterializeResult(
                    metadata={**_status_metadata(lake, month, "nothing new was applied"), **_skipped_metadata(skipped)},
                    data_version=dg.DataVersion(lake.content_hash(PAYMENT_STATUS, month)),
                )
            return
        after = batch_status(True, [p.status for p in payments])
        rows = publish_status(lake, month, payments, applied + entries, batch_id)
        returned = [p for p in payments if p.status == RETURNED]
        if app_database.configured:
            record_in_app_database(app_database, lake_release(lake, month))  # the release may predate the database
            with app_database.transaction() as cursor:
                record_status(cursor, month, after, sum(p.status == SETTLED for p in payments), len(returned),
                              sum(p.amount_cents for p in returned))
        status = "; ".join(
            f"applied {e['report']}: {e['settled']} settled, {e['returned']} returned, {e['unchanged']} unchanged" for e in entries
        ) + f"; batch {before} -> {after}"
        context.log.info(f"{month}: {status}")
        yield dg.MaterializeResult(
            metadata={**_status_metadata(lake, month, status), **_skipped_metadata(skipped), "dagster/row_count": rows},
            data_version=dg.DataVersion(lake.content_hash(PAYMENT_STATUS, month)),
        )


def _skipped_metadata(skipped: list[str]) -> dict:
    """The reports a run without a ``report`` left alone, each with why (its own run fails on it)."""
    if not skipped:
        return {}
    return {"skipped_reports": dg.MetadataValue.md("\n".join(f"- {md_text(reason)}" for reason in skipped))}


class RejectedReportConfig(dg.Config):
    report: str = Field(description="The file of payment_reports/ that could not be attributed to a batch.")


@dg.op(description="Fail, naming the report and what is wrong, for a bank report that cannot be attributed to a batch.")
def reject_payment_report(config: RejectedReportConfig, landing_zone: LandingZoneResource) -> None:
    try:
        attribute(read_report(landing_zone.root, config.report))
    except StatusReportError as exc:
        raise dg.Failure(description=f"{exc}; nothing of it was applied", allow_retries=False) from exc
    raise dg.Failure(
        description=f"{config.report} answers a FairStream batch: ingest it with ingest_payment_report instead",
        allow_retries=False,
    )

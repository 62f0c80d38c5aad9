"""The payment run of a closed month: ``payment_batch`` (built at the close), ``payment_release``
(four eyes, launched by approve_payment_batch) and ``payment_status`` (the bank's reports).

Bank details are personal data: metadata, logs and failures show IBANs masked, and every lake
file and released file that holds them is mode 0600.
"""


from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import duckdb as duckdb_module
from pydantic import Field

from fairstream_pipeline.defs.metadata import lake_metadata, markdown_table
from fairstream_pipeline.defs.payments.resources import NOT_CONFIGURED, PaymentsResource
from fairstream_pipeline.defs.resources import (
    AppDatabaseResource,
    DuckDBEngine,
    LandingZoneResource,
    WarehouseResource,
)
from fairstream_pipeline.defs.retries import WRITE_DATABASE
from fairstream_pipeline.defs.specs import monthly_asset
from fairstream_pipeline.lib.close.period_close import CLOSE, STATEMENTS, close_record
from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.lake.tables import write_table
from fairstream_pipeline.lib.markdown import md_text, payee_label
from fairstream_pipeline.lib.payments.batch import (
    PAYMENT_BATCH,
    BatchError,
    batch_csv,
    batch_file,
    batch_lines,
    build_batch_lines,
    execution_date,
)
from fairstream_pipeline.lib.payments.details import PAYMENT_DETAILS
from fairstream_pipeline.lib.payments.bank_details import mask_iban
from fairstream_pipeline.lib.payments.lifecycle import (
    PAYMENT_STATUS,
    PENDING,
    RETURNED,
    SETTLED,
    IllegalTransition,
    apply_report,
    batch_status,
    check_batch_transition,
    reason_text,
)
from fairstream_pipeline.lib.payments.release import (
    PAYMENT_RELEASE,
    ApprovalRefused,
    Release,
    ReleaseConflict,
    check_approval,
    record_release,
    record_status,
    release_file,
    sha256_of,
)
from fairstream_pipeline.lib.payments.reports import (
    applied_entry,
    applied_reports,
    attribute,
    current_payments,
    publish_status,
    read_report,
    report_paths,
)
from fairstream_pipeline.lib.payments.standing import details_configured
from fairstream_pipeline.lib.payments.status_report import StatusReportError
from fairstream_pipeline.lib.payouts.report import eur

PAYMENTS = "payments"
DETAILS_NOT_CONFIGURED = (
    "not configured: the landing zone has no catalog/payment_details.parquet, so FairStream does not "
    "manage payment details for it (statements pay as under rules v2)"
)


def _closed(context: dg.AssetExecutionContext, lake: Lake) -> dict:
    record = close_record(lake, context.partition_key)
    if record is None:
        raise dg.Failure(
            description=f"{context.partition_key} is open (a draft): only a closed month has a payment batch; close it first",
            allow_retries=False,
        )
    return record


def _observation(context: dg.AssetExecutionContext, asset: str, status: str) -> dg.AssetObservation:
    context.log.warning(f"{asset} for {context.partition_key}: {status}")
    return dg.AssetObservation(asset_key=asset, partition=context.partition_key, description=status,
                               metadata={"status": status})


def _held_table(lake: Lake, month: str) -> str:
    """The month's held payees with their reason, amount and masked IBAN, largest first."""
    rows = duckdb_module.sql(
        f"""SELECT s.payee_id, n.name, s.hold_reason, s.closing_balance_cents, d.iban_masked
            FROM {read_parquet(lake.parquet_glob(STATEMENTS, month))} s
            LEFT JOIN {read_parquet(lake.parquet_glob('payee_directory', month))} n USING (payee_id)
            LEFT JOIN {read_parquet(lake.parquet_glob(PAYMENT_DETAILS, month))} d USING (payee_id)
            WHERE s.hold_reason IS NOT NULL ORDER BY s.closing_balance_cents DESC, s.payee_id"""
    ).fetchall()
    if not rows:
        return "Nobody is held: every payee due a payment is in the batch."
    shown = rows[:50]
    return (
        f"{len(rows):,} payees held, {eur(sum(r[3] for r in rows))} in all"
        + (f" (the {len(shown)} largest below)" if len(rows) > len(shown) else "")
        + "\n\n"
        + markdown_table(
            ["payee", "hold reason", "held", "IBAN"],
            [(payee_label(p, name), reason, eur(amount), masked or "—") for p, name, reason, amount, masked in shown],
        )
    )


def _batch_metadata(lake: Lake, month: str, status: str) -> dict:
    manifest = lake.manifest(PAYMENT_BATCH, month)
    lines = duckdb_module.sql(
        f"""SELECT b.payee_id, n.name, b.iban_masked, b.amount_cents, b.end_to_end_id
            FROM {read_parquet(lake.parquet_glob(PAYMENT_BATCH, month))} b
            LEFT JOIN {read_parquet(lake.parquet_glob('payee_directory', month))} n USING (payee_id)
            ORDER BY b.amount_cents DESC, b.payee_id LIMIT 20"""
    ).fetchall()
    folder = lake.partition_dir(PAYMENT_BATCH, month)
    count, total = manifest["rows"], manifest["control_sum_cents"]
    return {
        "status": status,
        "summary": dg.MetadataValue.md(
            f"**{count:,} payments, control sum {eur(total)}** (batch `{manifest['batch_id']}`), requested for "
            f"{manifest['execution_date']}. To release it, a second person restates the count and the control "
            "sum in approve_payment_batch (docs/payments.md)."
            if count else "Nobody is paid this month: there is nothing to release."
        ),
        "batch_id": manifest["batch_id"] or "none",
        "payments": dg.MetadataValue.int(count),
        "control_sum_cents": dg.MetadataValue.int(total),
        "control_sum": eur(total),
        "payees_held": dg.MetadataValue.int(manifest["payees_held"]),
        "held_cents": dg.MetadataValue.int(manifest["held_cents"]),
        "held": dg.MetadataValue.md(_held_table(lake, month)),
        "largest_payments": dg.MetadataValue.md(
            markdown_table(
                ["payee", "IBAN", "amount", "end-to-end id"],
                [(payee_label(p, name), masked, eur(amount), e2e) for p, name, masked, amount, e2e in lines],
            )
        ),
        "debtor": f"{manifest['debtor_name']} ({manifest['debtor_iban_masked']})",
        **({"sepa_file": dg.MetadataValue.path(str(folder / manifest["file_name"]))} if manifest["file_name"] else {}),
        **lake_metadata(lake, PAYMENT_BATCH, month),
    }


@monthly_asset(
    group=PAYMENTS,
    code_version="payment-batch-v1",
    kinds={"duckdb", "parquet", "xml"},
    deps=[CLOSE, STATEMENTS, PAYMENT_DETAILS, "payee_directory"],
    # No automation condition: a landing zone without payment details records only an observation,
    # which never counts as handled, so every close would request the batch again. monthly_payout_job,
    # close_month_job and `--select '*'` build it with the close; on its own, materialize it.
    output_required=False,
)
def payment_batch(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    duckdb: DuckDBEngine,
    payments: PaymentsResource,
) -> Iterator[dg.MaterializeResult | dg.AssetObservation]:
    """The closed month's SEPA credit-transfer batch: one payment per payee whose statement pays, to
    the payment details the month closed with, as an ISO 20022 pain.001.001.09 file (validated
    against the XSD) and a CSV of the same lines. Its id, the file's MsgId, is FS-<month>-<8 hex of
    the lines' hash>. Built once at the close and never rewritten; released only by
    approve_payment_batch. Without payment details or FairStream's account in the settings: an
    observation "not configured"."""
    month, lake = context.partition_key, warehouse.lake()
    record = _closed(context, lake)
    if not details_configured(lake, month):
        yield _observation(context, PAYMENT_BATCH, DETAILS_NOT_CONFIGURED)
        return
    if lake.exists(PAYMENT_BATCH, month):
        status = f"{month} is closed: its batch was built at the close and never changes"
        context.log.info(status)
        yield dg.MaterializeResult(
            metadata=_batch_metadata(lake, month, status),
            data_version=dg.DataVersion(lake.content_hash(PAYMENT_BATCH, month)),
        )
        return
    if not payments.configured:
        yield _observation(context, PAYMENT_BATCH, NOT_CONFIGURED)
        return
    debtor = payments.debtor()
    with duckdb.connect() as con:
        try:
            build_batch_lines(con, lake, month)
        except BatchError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        lines = batch_lines(con)
        held_payees, held_cents = con.execute(
            f"SELECT count(*), coalesce(sum(closing_balance_cents), 0)::BIGINT "
            f"FROM {read_parquet(lake.parquet_glob(STATEMENTS, month))} WHERE hold_reason IS NOT NULL"
        ).fetchall()[0]
        identifier, xml = batch_file(month, lines, debtor, record["closed_at"]) if lines else (None, None)
        with lake.write_partition(PAYMENT_BATCH, month) as out:
            rows = write_table(con, PAYMENT_BATCH, out.file())
            file_name = f"{identifier}.xml" if identifier else None
            if xml is not None:
                (out.staging_dir / file_name).write_bytes(xml)
                (out.staging_dir / f"{identifier}.csv").write_text(batch_csv(lines), encoding="utf-8")
            out.private = True
            out.manifest.update(
                rows=rows,
                batch_id=identifier,
                control_sum_cents=sum(line.amount_cents for line in lines),
                file_name=file_name,
                file_sha256=sha256_of(xml) if xml is not None else None,
                execution_date=execution_date(month, record["closed_at"]).isoformat(),
                closed_at=record["closed_at"],
                debtor_name=debtor.name,
                debtor_iban_masked=mask_iban(debtor.iban),
                payees_held=held_payees,
                held_cents=held_cents,
            )
    status = f"draft: built at the close of {month}; released once a second person approves it"
    context.log.info(f"{month}: batch {identifier or '(empty)'} with {rows:,} payments")
    yield dg.MaterializeResult(
        metadata=_batch_metadata(lake, month, status),
        data_version=dg.DataVersion(lake.content_hash(PAYMENT_BATCH, month)),
    )


class ApprovalConfig(dg.Config):
    """The second person's approval of a month's batch, restating what they reviewed in the UI."""

    approver: str = Field(default="", description="Who approves the batch (not who closed the month).")
    count: int = Field(default=-1, description="The batch's number of payments, as reviewed.")
    control_sum_cents: int = Field(default=-1, description="The batch's control sum in cents, as reviewed.")


def _release_metadata(lake: Lake, month: str, status: str) -> dict:
    release = lake.manifest(PAYMENT_RELEASE, month)
    return {
        "status": status,
        "batch_id": release["batch_id"],
        "approver": release["approver"],
        "released_at": release["released_at"],
        "released_by_run": dg.MetadataValue.md(f"[{release['released_by_run']}](/runs/{release['released_by_run']})"),
        "payments": dg.MetadataValue.int(release["payments"]),
        "control_sum_cents": dg.MetadataValue.int(release["control_sum_cents"]),
        "control_sum": eur(release["control_sum_cents"]),
        "file_sha256": release["file_sha256"],
        "file": dg.MetadataValue.path(release["file_path"]),
    }


def _lake_release(lake: Lake, month: str) -> Release:
    """The month's release record as the lake holds it."""
    manifest = lake.manifest(PAYMENT_RELEASE, month)
    return Release(**{k: v for k, v in manifest.items() if k in Release.__dataclass_fields__})


def _record_in_app_database(app_database: AppDatabaseResource, release: Release) -> str:
    if not app_database.configured:
        return "not configured (FAIRSTREAM_DATABASE_URL is empty): the lake holds the release record"
    app_database.ensure_schema()
    try:
        with app_database.transaction() as cursor:
            record_release(cursor, release)
    except ReleaseConflict as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    return "recorded in payment_releases"


@monthly_asset(
    group=PAYMENTS,
    code_version="payment-release-v1",
    kinds={"xml"},
    deps=[PAYMENT_BATCH],
    output_required=False,
    retry_policy=WRITE_DATABASE,
)
def payment_release(
    context: dg.AssetExecutionContext,
    config: ApprovalConfig,
    warehouse: WarehouseResource,
    payments: PaymentsResource,
    app_database: AppDatabaseResource,
) -> Iterator[dg.MaterializeResult]:
    """The four-eyes release of the month's batch: launched by approve_payment_batch (UI or
    `fairstream payments approve`), never by the automatic runs. The approver restates the batch's
    count and control sum; on a mismatch nothing is released. Release writes the SEPA file once,
    atomically and mode 0600, to FAIRSTREAM_PAYMENTS_OUT_DIR as <MsgId>.xml, and records who, when,
    the file's sha256, the count and the sum (lake, and app database when configured). Releasing
    again reports the first release; a month never releases two files."""
    month, lake = context.partition_key, warehouse.lake()
    if lake.exists(PAYMENT_RELEASE, month):
        release = _lake_release(lake, month)
        stored = _record_in_app_database(app_database, release)
        status = (
            f"already released at {release.released_at} by {release.approver}: {release.file_name}, "
            f"sha256 {release.file_sha256}; nothing was done"
        )
        context.log.info(f"{month}: {status}")
        yield dg.MaterializeResult(
            metadata={**_release_metadata(lake, month, status), "app_database": stored},
            data_version=dg.DataVersion(release.file_sha256),
        )
        return
    if not config.approver.strip() and config.count < 0 and config.control_sum_cents < 0:
        context.log.info(
            f"{month}: no approval in this run; a second person releases the batch with approve_payment_batch "
            f"(`fairstream payments approve {month} --count N --control-sum EUR --approver NAME`)"
        )
        return
    _closed(context, lake)
    if not lake.exists(PAYMENT_BATCH, month):
        raise dg.Failure(
            description=f"{month} has no payment batch to release (payment details or FairStream's account "
            "are not configured, or the batch was not built yet: materialize payment_batch)",
            allow_retries=False,
        )
    batch = lake.manifest(PAYMENT_BATCH, month)
    try:
        check_approval(config.approver, config.count, config.control_sum_cents, batch["rows"], batch["control_sum_cents"])
    except ApprovalRefused as exc:
        raise dg.Failure(description=f"{month}: {exc}", allow_retries=False) from exc
    if not batch["file_name"]:
        raise dg.Failure(description=f"{month}: nobody is paid, there is nothing to release", allow_retries=False)
    data = (lake.partition_dir(PAYMENT_BATCH, month) / batch["file_name"]).read_bytes()
    if sha256_of(data) != batch["file_sha256"]:
        raise dg.Failure(
            description=f"{month}: the batch's file in the lake is not the file that was built ({batch['file_name']})",
            allow_retries=False,
        )
    try:
        path, created = release_file(data, Path(payments.out_dir), batch["file_name"])
    except ReleaseConflict as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    release = Release(
        month=month,
        batch_id=batch["batch_id"],
        file_name=batch["file_name"],
        file_sha256=batch["file_sha256"],
        payments=batch["rows"],
        control_sum_cents=batch["control_sum_cents"],
        approver=config.approver.strip(),
        released_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        released_by_run=context.run.run_id,
    )
    with duckdb_module.connect() as con:
        con.execute(
            "CREATE TEMP TABLE payment_release AS SELECT * FROM (VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)) "
            "t(month, batch_id, file_name, file_sha256, payments, control_sum_cents, approver, released_at, released_by_run)",
            list(release.as_dict().values()),
        ).fetchall()
        with lake.write_partition(PAYMENT_RELEASE, month) as out:
            write_table(con, PAYMENT_RELEASE, out.file())
            out.manifest.update(rows=1, **release.as_dict(), file_path=str(path.resolve()))
    stored = _record_in_app_database(app_database, release)
    status = (
        f"released: {release.file_name} ({release.payments:,} payments, {eur(release.control_sum_cents)}) "
        f"approved by {release.approver}" + ("" if created else "; the file was already in place from an interrupted release")
    )
    context.log.info(f"{month}: {status}")
    yield dg.MaterializeResult(
        metadata={**_release_metadata(lake, month, status), "app_database": stored},
        data_version=dg.DataVersion(release.file_sha256),
    )


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
            LEFT JOIN {read_parquet(lake.parquet_glob('payee_directory', month))} n USING (payee_id)
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


@monthly_asset(
    group=PAYMENTS,
    code_version="payment-status-v1",
    deps=[PAYMENT_RELEASE],
    output_required=False,
    retry_policy=WRITE_DATABASE,
)
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
    month, lake, root = context.partition_key, warehouse.lake(), landing_zone.root
    skipped: list[str] = []
    try:
        if config.report:
            candidates = [read_report(root, config.report)]
        else:
            # Every report for this month's batch. One that cannot be read, or answers another month,
            # is left to its own run (the sensor's, or `fairstream payments ingest`), which fails
            # naming it: here it is only listed, so that it does not stop this month's other reports.
            candidates = []
            for path in report_paths(root):
                report = read_report(root, path.name)
                try:
                    if attribute(report)[1] == month:
                        candidates.append(report)
                except StatusReportError as exc:
                    skipped.append(str(exc))
                    context.log.warning(f"{exc}: skipped here; its own run reports it")
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
        _record_in_app_database(app_database, _lake_release(lake, month))  # the release may predate the database
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


@dg.definitions
def payment_assets() -> dg.Definitions:
    return dg.Definitions(assets=[payment_batch, payment_release, payment_status])

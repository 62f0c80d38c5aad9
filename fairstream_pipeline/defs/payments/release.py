"""``payment_release``: the four-eyes release of a closed month's batch (approve_payment_batch), and
the release record in the lake and the app database.

The released file holds bank details: it is written once, atomically and mode 0600.
"""

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import duckdb as duckdb_module
from pydantic import Field

from fairstream_pipeline.defs.payments.resources import PaymentsResource
from fairstream_pipeline.defs.payments.specs import payments_asset, require_closed_month
from fairstream_pipeline.defs.resources import AppDatabaseResource, WarehouseResource
from fairstream_pipeline.defs.retries import database_write_retries
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.lake.tables import write_table
from fairstream_pipeline.lib.assets import PAYMENT_BATCH, PAYMENT_RELEASE
from fairstream_pipeline.lib.payments.release import (
    ApprovalRefused,
    Release,
    ReleaseConflict,
    check_approval,
    record_release,
    release_file,
    sha256_of,
)
from fairstream_pipeline.lib.format import eur


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


def lake_release(lake: Lake, month: str) -> Release:
    """The month's release record as the lake holds it."""
    manifest = lake.manifest(PAYMENT_RELEASE, month)
    return Release(**{k: v for k, v in manifest.items() if k in Release.__dataclass_fields__})


def record_in_app_database(app_database: AppDatabaseResource, release: Release) -> str:
    """Record ``release`` in payment_releases (when the app database is configured); says where it is."""
    if not app_database.configured:
        return "not configured (FAIRSTREAM_DATABASE_URL is empty): the lake holds the release record"
    app_database.ensure_schema()
    try:
        with app_database.transaction() as cursor:
            record_release(cursor, release)
    except ReleaseConflict as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    return "recorded in payment_releases"


def _release_result(
    context: dg.AssetExecutionContext, lake: Lake, release: Release, status: str, stored: str
) -> dg.MaterializeResult:
    """The month's release as the UI shows it (``stored``: where the app database stands)."""
    month = context.partition_key
    context.log.info(f"{month}: {status}")
    return dg.MaterializeResult(
        metadata={**_release_metadata(lake, month, status), "app_database": stored},
        data_version=dg.DataVersion(release.file_sha256),
    )


def _approved_batch_file(lake: Lake, month: str, config: ApprovalConfig) -> tuple[dict, bytes]:
    """The month's batch manifest and SEPA file, once the approval restates its count and control
    sum and the file is the one that was built; a failure, not retried, otherwise."""
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
    return batch, data


def _publish_release(lake: Lake, release: Release, path: Path) -> None:
    """The release record as the month's ``payment_release`` partition (one row, and its manifest)."""
    with duckdb_module.connect() as con:
        con.execute(
            "CREATE TEMP TABLE payment_release AS SELECT * FROM (VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)) "
            "t(month, batch_id, file_name, file_sha256, payments, control_sum_cents, approver, released_at, released_by_run)",
            list(release.as_dict().values()),
        ).fetchall()
        with lake.write_partition(PAYMENT_RELEASE, release.month) as out:
            write_table(con, PAYMENT_RELEASE, out.file())
            out.manifest.update(rows=1, **release.as_dict(), file_path=str(path.resolve()))


@payments_asset(code_version="payment-release-v1", deps=[PAYMENT_BATCH], kinds={"xml"})
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
    with database_write_retries(context):
        month, lake = context.partition_key, warehouse.lake()
        if lake.exists(PAYMENT_RELEASE, month):
            release = lake_release(lake, month)
            stored = record_in_app_database(app_database, release)
            status = (
                f"already released at {release.released_at} by {release.approver}: {release.file_name}, "
                f"sha256 {release.file_sha256}; nothing was done"
            )
            yield _release_result(context, lake, release, status, stored)
            return
        if not config.approver.strip() and config.count < 0 and config.control_sum_cents < 0:
            context.log.info(
                f"{month}: no approval in this run; a second person releases the batch with approve_payment_batch "
                f"(`fairstream payments approve {month} --count N --control-sum EUR --approver NAME`)"
            )
            return
        require_closed_month(context, lake)
        batch, data = _approved_batch_file(lake, month, config)
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
        _publish_release(lake, release, path)
        stored = record_in_app_database(app_database, release)
        status = (
            f"released: {release.file_name} ({release.payments:,} payments, {eur(release.control_sum_cents)}) "
            f"approved by {release.approver}" + ("" if created else "; the file was already in place from an interrupted release")
        )
        yield _release_result(context, lake, release, status, stored)

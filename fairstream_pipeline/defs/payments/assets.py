"""The payment run of a closed month: ``payment_batch`` (built at the close), here;
``payment_release`` (four eyes, launched by approve_payment_batch) in ``release.py`` and
``payment_status`` (the bank's reports) in ``status.py``.

Bank details are personal data: metadata, logs and failures show IBANs masked, and every lake
file and released file that holds them is mode 0600.
"""

from collections.abc import Iterator

import dagster as dg
import duckdb as duckdb_module

from fairstream_pipeline.defs.metadata import lake_metadata, markdown_table
from fairstream_pipeline.defs.payments.resources import NOT_CONFIGURED, PaymentsResource
from fairstream_pipeline.defs.payments.specs import payments_asset, require_closed_month
from fairstream_pipeline.defs.resources import DuckDBEngine, WarehouseResource
from fairstream_pipeline.lib.assets import CLOSE, PAYEE_DIRECTORY, PAYMENT_BATCH, PAYMENT_DETAILS, STATEMENTS
from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.lake.tables import write_table
from fairstream_pipeline.lib.markdown import payee_label
from fairstream_pipeline.lib.payments.batch import (
    BatchError,
    batch_csv,
    batch_file,
    batch_lines,
    build_batch_lines,
    execution_date,
)
from fairstream_pipeline.lib.payments.bank_details import mask_iban
from fairstream_pipeline.lib.payments.release import sha256_of
from fairstream_pipeline.lib.payments.standing import details_configured
from fairstream_pipeline.lib.format import eur

DETAILS_NOT_CONFIGURED = (
    "not configured: the landing zone has no catalog/payment_details.parquet, so FairStream does not "
    "manage payment details for it (statements pay as under rules v2)"
)


def _observation(context: dg.AssetExecutionContext, asset: str, status: str) -> dg.AssetObservation:
    context.log.warning(f"{asset} for {context.partition_key}: {status}")
    return dg.AssetObservation(asset_key=asset, partition=context.partition_key, description=status,
                               metadata={"status": status})


def _held_table(lake: Lake, month: str) -> str:
    """The month's held payees with their reason, amount and masked IBAN, largest first."""
    rows = duckdb_module.sql(
        f"""SELECT s.payee_id, n.name, s.hold_reason, s.closing_balance_cents, d.iban_masked
            FROM {read_parquet(lake.parquet_glob(STATEMENTS, month))} s
            LEFT JOIN {read_parquet(lake.parquet_glob(PAYEE_DIRECTORY, month))} n USING (payee_id)
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
            LEFT JOIN {read_parquet(lake.parquet_glob(PAYEE_DIRECTORY, month))} n USING (payee_id)
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


@payments_asset(
    code_version="payment-batch-v1",
    deps=[CLOSE, STATEMENTS, PAYMENT_DETAILS, PAYEE_DIRECTORY],
    kinds={"duckdb", "parquet", "xml"},
    # No automation condition: a landing zone without payment details records only an observation,
    # which never counts as handled, so every close would request the batch again. monthly_payout_job,
    # close_month_job and `--select '*'` build it with the close; on its own, materialize it.
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
    record = require_closed_month(context, lake)
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

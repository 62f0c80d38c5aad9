"""Ingestion assets: the month's landing-zone files become validated tables in the lake."""

from collections.abc import Callable

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from fairstream_pipeline.defs.ingestion.listening_events import INGESTION
from fairstream_pipeline.defs.metadata import (
    contract_failures,
    lake_metadata,
    markdown_table,
    preview,
)
from fairstream_pipeline.defs.resources import (
    DuckDBEngine,
    LandingZoneResource,
    WarehouseResource,
)
from fairstream_pipeline.defs.retries import READ_LANDING_ZONE, landing_wait_attempts, wait_for_complete_month
from fairstream_pipeline.defs.specs import monthly_asset
from fairstream_pipeline.lib.assets import LANDING_MONTH
from fairstream_pipeline.lib.ingestion.landing_files import fingerprint
from fairstream_pipeline.lib.ingestion.landing_zone import MonthIncompleteError
from fairstream_pipeline.lib.ingestion.monthly_tables import (
    AD_REVENUE,
    BILLED_USERS,
    MonthlyTable,
    MonthlyTableResult,
    ingest_monthly_table,
)
from fairstream_pipeline.lib.lake.tables import file_rows
from fairstream_pipeline.lib.months import days_of_month
from fairstream_pipeline.lib.format import eur


@monthly_asset(
    group=INGESTION,
    code_version="landing-month-v1",
    kinds={"parquet"},
    retry_policy=READ_LANDING_ZONE,
)
def landing_month(
    context: dg.AssetExecutionContext,
    landing_zone: LandingZoneResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    """The month's delivery in the landing zone: every file the month will read.

    Waits for a complete month: until every day has its _SUCCESS marker the step fails and is
    retried with exponential backoff, so a late collector delays the payout instead of paying on
    partial data. Records the files (rows, bytes, modification time) and their fingerprint.
    """
    month, zone = context.partition_key, landing_zone.zone()
    missing = zone.missing_success_days(month)
    if missing:
        attempt, attempts = context.retry_number + 1, landing_wait_attempts()
        error = MonthIncompleteError(month, missing, len(days_of_month(month)))
        if attempt >= attempts:
            raise dg.Failure(
                description=f"{error} (gave up after {attempts} attempts: the collector has not finished "
                "the month; re-run the month once it has)",
                allow_retries=False,
            )
        raise wait_for_complete_month(context) from error
    with contract_failures():
        files = zone.event_files(month) + zone.subscription_files(month) + zone.ad_revenue_files(month)
    table = pa.table(
        {
            "relative_path": [f.relative_path for f in files],
            "num_rows": pa.array([f.num_rows for f in files], pa.int64()),
            "size_bytes": pa.array([f.size_bytes for f in files], pa.int64()),
            "mtime_ns": pa.array([f.mtime_ns for f in files], pa.int64()),
        }
    )
    month_fingerprint = zone.month_fingerprint(month)
    with warehouse.lake().write_partition(LANDING_MONTH, month) as out:
        pq.write_table(table, out.file(), compression="zstd")
        out.manifest.update(rows=len(files), input_fingerprint=month_fingerprint)
    event_files = [f for f in files if f.relative_path.startswith("listening_events/")]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(files),
            "event_files": len(event_files),
            "event_rows": sum(f.num_rows for f in event_files),
            "bytes": sum(f.size_bytes for f in files),
            "input_fingerprint": month_fingerprint,
            **lake_metadata(warehouse.lake(), LANDING_MONTH, month),
        }
    )


def monthly_table_asset(
    table: MonthlyTable,
    code_version: str,
    description: str,
    preview_rows: int,
    metadata: Callable[[MonthlyTableResult, dg.MetadataValue], dict],
) -> dg.AssetsDefinition:
    """The asset of a monthly landing table (``lib.ingestion.monthly_tables``): its month validated
    and written to the lake; its ``metadata`` given the result and a preview of its first rows."""

    @monthly_asset(
        name=table.asset,
        description=description,
        group=INGESTION,
        code_version=code_version,
        deps=[landing_month],
        retry_policy=READ_LANDING_ZONE,
    )
    def monthly_table(
        context: dg.AssetExecutionContext,
        landing_zone: LandingZoneResource,
        warehouse: WarehouseResource,
        duckdb: DuckDBEngine,
    ) -> dg.MaterializeResult:
        month = context.partition_key
        with contract_failures(), duckdb.connect() as con, warehouse.lake().write_partition(
            table.asset, month
        ) as out:
            result = ingest_monthly_table(con, landing_zone.zone(), month, out.file(), table)
            out.manifest.update(rows=result.rows, input_fingerprint=fingerprint(result.files))
            shown = preview(file_rows(con, out.file(), limit=preview_rows))
        return dg.MaterializeResult(
            metadata={**metadata(result, shown), **lake_metadata(warehouse.lake(), table.asset, month)}
        )

    return monthly_table


def _billed_users_metadata(result: MonthlyTableResult, shown: dg.MetadataValue) -> dict:
    return {
        "dagster/row_count": result.rows,
        "users_by_tier": dg.MetadataValue.md(
            markdown_table(
                ["tier", "users", "net revenue"],
                [(t, f"{n:,}", eur(result.net_cents_by_tier[t])) for t, n in result.rows_by_tier.items()],
            )
        ),
        "input_files": len(result.files),
        "preview": shown,
    }


def _ad_revenue_metadata(result: MonthlyTableResult, shown: dg.MetadataValue) -> dict:
    return {
        "dagster/row_count": result.rows,
        "net_cents": result.net_cents,
        "net_revenue": eur(result.net_cents),
        "per_country": shown,
    }


billed_users = monthly_table_asset(
    BILLED_USERS,
    "billed-users-v1",
    "Every user billed this month, with plan, tier (free/paid), country and net cents.\n\n"
    "Read from ``subscriptions/month=M``. A user listed twice, a negative ``net_cents``, a null or\n"
    "a malformed country fails the month with the file, row and user named.",
    10,
    _billed_users_metadata,
)
ad_revenue = monthly_table_asset(
    AD_REVENUE,
    "ad-revenue-v1",
    "The month's free-tier music ad revenue per country, in cents (``ad_revenue/month=M``).",
    50,
    _ad_revenue_metadata,
)

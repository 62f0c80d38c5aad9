"""Ingestion assets: the month's landing-zone files become validated tables in the lake."""

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from fairstream_pipeline.defs.ingestion.listening_events import INGESTION
from fairstream_pipeline.defs.metadata import (
    LAKE_KINDS,
    OWNERS,
    contract_failures,
    lake_metadata,
    markdown_table,
    preview,
)
from fairstream_pipeline.defs.partitions import monthly_partitions
from fairstream_pipeline.defs.resources import (
    DuckDBEngine,
    LandingZoneResource,
    WarehouseResource,
)
from fairstream_pipeline.defs.retries import READ_LANDING_ZONE, WAIT_FOR_COMPLETE_MONTH
from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.ingestion.monthly_tables import ingest_ad_revenue, ingest_billed_users
from fairstream_pipeline.lib.ingestion.landing_zone import MonthIncompleteError, fingerprint
from fairstream_pipeline.lib.months import days_of_month
from fairstream_pipeline.lib.payouts.report import eur


@dg.asset(
    partitions_def=monthly_partitions,
    group_name=INGESTION,
    owners=OWNERS,
    kinds={"parquet"},
    retry_policy=WAIT_FOR_COMPLETE_MONTH,
    code_version="landing-month-v1",
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
        attempt, attempts = context.retry_number + 1, WAIT_FOR_COMPLETE_MONTH.max_retries + 1
        error = MonthIncompleteError(month, missing, len(days_of_month(month)))
        if attempt >= attempts:
            raise dg.Failure(
                description=f"{error} (gave up after {attempts} attempts: the collector has not finished "
                "the month; re-run the month once it has)",
                allow_retries=False,
            )
        raise error
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
    with warehouse.lake().write_partition("landing_month", month) as out:
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
            **lake_metadata(warehouse.lake(), "landing_month", month),
        }
    )


@dg.asset(
    partitions_def=monthly_partitions,
    group_name=INGESTION,
    owners=OWNERS,
    kinds=LAKE_KINDS,
    code_version="billed-users-v1",
    deps=[landing_month],
    retry_policy=READ_LANDING_ZONE,
)
def billed_users(
    context: dg.AssetExecutionContext,
    landing_zone: LandingZoneResource,
    warehouse: WarehouseResource,
    duckdb: DuckDBEngine,
) -> dg.MaterializeResult:
    """Every user billed this month, with plan, tier (free/paid), country and net cents.

    Read from ``subscriptions/month=M``. A user listed twice, a negative ``net_cents``, a null or
    a malformed country fails the month with the file, row and user named.
    """
    month = context.partition_key
    with contract_failures(), duckdb.connect() as con, warehouse.lake().write_partition(
        "billed_users", month
    ) as out:
        result = ingest_billed_users(con, landing_zone.zone(), month, out.file())
        out.manifest.update(rows=result.rows, input_fingerprint=fingerprint(result.files))
        shown = preview(con, f"SELECT * FROM {read_parquet(out.file())}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.rows,
            "users_by_tier": dg.MetadataValue.md(
                markdown_table(
                    ["tier", "users", "net revenue"],
                    [(t, f"{n:,}", eur(result.net_cents_by_tier[t])) for t, n in result.users_by_tier.items()],
                )
            ),
            "input_files": len(result.files),
            "preview": shown,
            **lake_metadata(warehouse.lake(), "billed_users", month),
        }
    )


@dg.asset(
    partitions_def=monthly_partitions,
    group_name=INGESTION,
    owners=OWNERS,
    kinds=LAKE_KINDS,
    code_version="ad-revenue-v1",
    deps=[landing_month],
    retry_policy=READ_LANDING_ZONE,
)
def ad_revenue(
    context: dg.AssetExecutionContext,
    landing_zone: LandingZoneResource,
    warehouse: WarehouseResource,
    duckdb: DuckDBEngine,
) -> dg.MaterializeResult:
    """The month's free-tier music ad revenue per country, in cents (``ad_revenue/month=M``)."""
    month = context.partition_key
    with contract_failures(), duckdb.connect() as con, warehouse.lake().write_partition(
        "ad_revenue", month
    ) as out:
        result = ingest_ad_revenue(con, landing_zone.zone(), month, out.file())
        out.manifest.update(rows=result.countries, input_fingerprint=fingerprint(result.files))
        shown = preview(con, f"SELECT * FROM {read_parquet(out.file())}", limit=50)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.countries,
            "net_cents": result.net_cents,
            "net_revenue": eur(result.net_cents),
            "per_country": shown,
            **lake_metadata(warehouse.lake(), "ad_revenue", month),
        }
    )

"""Ingestion assets: the month's landing-zone files become validated tables in the lake."""

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from fairstream_pipeline.defs.metadata import OWNERS, contract_failures, markdown_table, preview
from fairstream_pipeline.defs.partitions import monthly_partitions
from fairstream_pipeline.defs.resources import DuckDBEngine, LandingZoneResource, WarehouseResource
from fairstream_pipeline.defs.retries import READ_LANDING_ZONE, WAIT_FOR_COMPLETE_MONTH
from fairstream_pipeline.lib import clean_plays
from fairstream_pipeline.lib.duckdb_engine import read_parquet
from fairstream_pipeline.lib.ingestion import (
    QUARANTINE_REASONS,
    ingest_ad_revenue,
    ingest_billed_users,
    ingest_plays,
)
from fairstream_pipeline.lib.landing_zone import MonthIncompleteError, fingerprint
from fairstream_pipeline.lib.months import days_of_month

INGESTION = "ingestion"
LAKE_KINDS = {"duckdb", "parquet"}


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
                    ["tier", "users", "net cents"],
                    [(t, n, result.net_cents_by_tier[t]) for t, n in result.users_by_tier.items()],
                )
            ),
            "input_files": len(result.files),
            "preview": shown,
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
            "per_country": shown,
        }
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "clean_plays",
            deps=["billed_users", "landing_month"],
            description=(
                "The month's valid, de-duplicated plays: one row per event, from users billed this "
                "month. Plays of tracks missing from the catalog are kept (they pay suspense). "
                "Stored as the month's landing files (pinned) minus the removed rows; read it with "
                "fairstream_pipeline.lib.clean_plays.attach_clean_plays."
            ),
            group_name=INGESTION,
            owners=OWNERS,
            kinds=LAKE_KINDS,
            code_version="ingest-plays-v2",
        ),
        dg.AssetSpec(
            "play_quarantine",
            deps=["billed_users", "landing_month"],
            description=(
                "Event rows that cannot count, each with one reason (invalid_row, "
                "outside_partition, conflicting_duplicate, unknown_user) and the file and row it "
                "came from."
            ),
            group_name=INGESTION,
            owners=OWNERS,
            kinds=LAKE_KINDS,
            code_version="ingest-plays-v2",
        ),
    ],
    partitions_def=monthly_partitions,
    name="ingest_listening_events",
    retry_policy=READ_LANDING_ZONE,
)
def ingest_listening_events(
    context: dg.AssetExecutionContext,
    landing_zone: LandingZoneResource,
    warehouse: WarehouseResource,
    duckdb: DuckDBEngine,
):
    """Validate the month's listening events: clean plays and the quarantine, in one pass."""
    month = context.partition_key
    lake = warehouse.lake()
    with contract_failures(), duckdb.connect() as con, lake.write_partitions(
        [("clean_plays", month), ("play_quarantine", month)]
    ) as (clean_out, quarantine_out):
        result = ingest_plays(
            con,
            landing_zone.zone(),
            month,
            lake.parquet_glob("billed_users", month),
            clean_out.file(clean_plays.FILES),
            clean_out.file(clean_plays.REMOVED),
            quarantine_out.file(),
        )
        accounting = {
            "rows_read": result.rows_read,
            "clean_plays": result.clean_plays,
            "duplicates_dropped": result.duplicates_dropped,
            "quarantined": result.quarantined,
            "input_files": len(result.files),
            "input_fingerprint": fingerprint(result.files),
        }
        clean_out.manifest.update(rows=result.clean_plays, **accounting)
        quarantine_out.manifest.update(rows=result.quarantined_total, **accounting)
        quarantine_preview = preview(
            con, f"SELECT * FROM {read_parquet(quarantine_out.file())}", limit=20
        )
    with duckdb.connect() as con:
        clean_plays.attach_clean_plays(con, lake, landing_zone.zone().root, month)
        clean_preview = preview(con, "SELECT event_id, user_id, track_id, played_at, ms_played FROM clean_plays")
    per_reason = dg.MetadataValue.md(
        markdown_table(
            ["reason", "rows"],
            [(reason, result.quarantined[reason]) for reason in QUARANTINE_REASONS]
            + [("exact duplicates dropped", result.duplicates_dropped)],
        )
    )
    common = {
        "rows_read": result.rows_read,
        "duplicates_dropped": result.duplicates_dropped,
        "quarantined": result.quarantined_total,
        "input_files": len(result.files),
        "input_fingerprint": accounting["input_fingerprint"],
    }
    yield dg.MaterializeResult(
        asset_key="clean_plays",
        metadata={
            "dagster/row_count": result.clean_plays,
            **common,
            "accounting": per_reason,
            "preview": clean_preview,
        },
    )
    yield dg.MaterializeResult(
        asset_key="play_quarantine",
        metadata={
            "dagster/row_count": result.quarantined_total,
            **{f"quarantined_{reason}": result.quarantined[reason] for reason in QUARANTINE_REASONS},
            **common,
            "per_reason": per_reason,
            "preview": quarantine_preview,
        },
    )

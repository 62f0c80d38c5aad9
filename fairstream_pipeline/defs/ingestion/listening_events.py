"""``ingest_listening_events``: the month's event files become ``clean_plays`` and ``play_quarantine``.

A graph of ops: ``plan_event_days`` writes the month's dictionaries and fans out one
``ingest_event_day`` step per UTC day (``DynamicOut``); each day validates, de-duplicates and
quarantines its rows and writes its clean plays integer-coded, one file per user bucket
(``lib.ingestion.plays``, ``lib.ingestion.clean_plays``); ``merge_event_days`` publishes both assets
together. Steps pass folder paths in the warehouse, never data.

The clean plays are bucketed when the month is ingested: by ``FAIRSTREAM_USER_BUCKETS`` when it is
set, else by one bucket per ``FAIRSTREAM_PLAYS_PER_USER_BUCKET`` landing rows (at least 8); the
allocation's shards read their own bucket's files when they use the same number.
"""

import time
from datetime import date

import dagster as dg

from fairstream_pipeline.defs.metadata import (
    contract_failures,
    lake_metadata,
    markdown_table,
    plottable,
    preview,
)
from fairstream_pipeline.defs.resources import (
    DuckDBEngine,
    LandingZoneResource,
    WarehouseResource,
)
from fairstream_pipeline.defs.retries import READ_LANDING_ZONE
from fairstream_pipeline.defs.specs import lake_out, monthly_graph_asset
from fairstream_pipeline.lib.assets import BILLED_USERS, CLEAN_PLAYS, LANDING_MONTH, PLAY_QUARANTINE
from fairstream_pipeline.lib.ingestion.clean_plays import attach_clean_plays, clean_plays_preview, dictionary_record
from fairstream_pipeline.lib.ingestion.landing_files import fingerprint
from fairstream_pipeline.lib.lake.memory import RssSampler
from fairstream_pipeline.lib.ingestion.play_day import ingest_play_day
from fairstream_pipeline.lib.ingestion.play_merge import merge_play_days
from fairstream_pipeline.lib.ingestion.play_plan import plan_plays
from fairstream_pipeline.lib.ingestion.plays import QUARANTINE_REASONS
from fairstream_pipeline.lib.lake.scratch import RunScratch
from fairstream_pipeline.lib.lake.tables import file_rows
from fairstream_pipeline.lib.format import percent_number
from fairstream_pipeline.lib.ingestion.user_buckets import user_buckets

INGESTION = "ingestion"
SCRATCH = "_ingestion"


def scratch(warehouse: WarehouseResource, context: dg.OpExecutionContext) -> RunScratch:
    return RunScratch(warehouse.root, SCRATCH, context.partition_key, context.run_id)


@dg.op(
    out=dg.DynamicOut(list),
    ins={name: dg.In(dg.Nothing) for name in (BILLED_USERS, LANDING_MONTH)},
    retry_policy=READ_LANDING_ZONE,
    description="List the month's event files, choose its user buckets, write the month's user and track "
    "dictionaries, and fan out one step per UTC day. Removes scratch folders left by killed runs of the month.",
)
def plan_event_days(
    context: dg.OpExecutionContext,
    landing_zone: LandingZoneResource,
    warehouse: WarehouseResource,
    duckdb: DuckDBEngine,
):
    month, store = context.partition_key, scratch(warehouse, context)
    removed = store.remove_leftovers()
    if removed:
        context.log.info(f"removed ingestion folders of earlier runs of {month}: {', '.join(removed)}")
    plan = store.part_dir("plan", fresh=True)

    def buckets(event_rows: int) -> int:
        try:
            return user_buckets(event_rows)
        except ValueError as exc:  # a configuration error: retrying cannot fix it
            raise dg.Failure(description=str(exc), allow_retries=False) from exc

    with contract_failures(), duckdb.connect() as con:
        days = plan_plays(
            con, landing_zone.zone(), month, warehouse.lake().parquet_glob(BILLED_USERS, month), buckets, plan
        )
    context.log.info(f"{month}: {len(days)} days, {dictionary_record(plan)['buckets']} user buckets")
    for day in days:
        yield dg.DynamicOutput([day.isoformat(), str(plan)], mapping_key=day.strftime("d%Y_%m_%d"))


@dg.op(
    retry_policy=READ_LANDING_ZONE,
    description="Validate, de-duplicate and quarantine one UTC day of listening events; write its clean "
    "plays integer-coded, one file per user bucket.",
)
def ingest_event_day(
    context: dg.OpExecutionContext,
    day_plan: list,
    landing_zone: LandingZoneResource,
    warehouse: WarehouseResource,
    duckdb: DuckDBEngine,
) -> dg.Output[str]:
    """``day_plan`` is ``[day, plan folder]``; returns the folder holding the day's results."""
    day, plan = date.fromisoformat(day_plan[0]), day_plan[1]
    out = scratch(warehouse, context).part_dir(f"day={day.isoformat()}", fresh=True)
    started = time.monotonic()
    with RssSampler() as rss, contract_failures(), duckdb.connect() as con:
        result = ingest_play_day(con, landing_zone.zone().root, plan, day, out)
    return dg.Output(
        str(out),
        metadata={
            "day": day.isoformat(),
            "rows_read": result.rows_read,
            "clean_plays": result.clean_plays,
            "duplicates_dropped": result.duplicates_dropped,
            "quarantined": result.quarantined_total,
            "input_files": len(result.files),
            "seconds": round(time.monotonic() - started, 3),
            "peak_rss_mib": round(rss.peak() / 2**20, 1),
        },
    )


@dg.op(
    out={CLEAN_PLAYS: dg.Out(dg.Nothing), PLAY_QUARANTINE: dg.Out(dg.Nothing)},
    description="Put the days together and publish clean_plays and play_quarantine at once.",
)
def merge_event_days(
    context: dg.OpExecutionContext,
    days: list[str],
    landing_zone: LandingZoneResource,
    warehouse: WarehouseResource,
    duckdb: DuckDBEngine,
):
    month, lake, store = context.partition_key, warehouse.lake(), scratch(warehouse, context)
    with contract_failures(), duckdb.connect() as con, lake.write_partitions(
        [(CLEAN_PLAYS, month), (PLAY_QUARANTINE, month)]
    ) as (clean_out, quarantine_out):
        result = merge_play_days(
            con, landing_zone.zone().root, days, clean_out.staging_dir, quarantine_out.file(), store.part_dir("plan")
        )
        accounting = {
            "rows_read": result.rows_read,
            "clean_plays": result.clean_plays,
            "duplicates_dropped": result.duplicates_dropped,
            "quarantined": result.quarantined,
            "input_files": len(result.files),
            "input_fingerprint": fingerprint(result.files),
        }
        dictionary = dictionary_record(clean_out.staging_dir)
        clean_out.manifest.update(rows=result.clean_plays, user_buckets=dictionary["buckets"], **accounting)
        clean_out.content_digests = result.play_digests  # the play files are unsorted: their content counts
        quarantine_out.manifest.update(rows=result.quarantined_total, **accounting)
        quarantine_preview = preview(file_rows(con, quarantine_out.file(), limit=20))
    with duckdb.connect() as con:
        attach_clean_plays(con, lake, month)
        clean_preview = preview(clean_plays_preview(con))
    store.remove_month()
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
    yield dg.Output(
        None,
        CLEAN_PLAYS,
        metadata={
            "dagster/row_count": result.clean_plays,
            **common,
            "user_buckets": dictionary["buckets"],
            "users_in_dictionary": dictionary["users"],
            "accounting": per_reason,
            **acps_inputs_metadata(result, dictionary),
            "preview": clean_preview,
            **lake_metadata(lake, CLEAN_PLAYS, month),
        },
    )
    yield dg.Output(
        None,
        PLAY_QUARANTINE,
        metadata={
            "dagster/row_count": result.quarantined_total,
            **{f"quarantined_{reason}": result.quarantined[reason] for reason in QUARANTINE_REASONS},
            **common,
            "per_reason": per_reason,
            "preview": quarantine_preview,
            **lake_metadata(lake, PLAY_QUARANTINE, month),
        },
    )


def acps_inputs_metadata(result, dictionary: dict) -> dict:
    """What ACPS v1 reads from the landing zone: the active plays, and the ``source`` and
    ``content_type`` values outside the contract (counted, never dropped: they count as not active
    and as music)."""
    unknown_sources = result.unknown_sources
    unknown_types = dictionary.get("unknown_content_types", {})
    return {
        "active_plays": dg.MetadataValue.int(result.active_plays),
        "active_share": plottable(percent_number(result.active_plays, result.clean_plays)),
        "unknown_sources": dg.MetadataValue.int(sum(unknown_sources.values())),
        "unknown_content_types": dg.MetadataValue.int(sum(unknown_types.values())),
        "values_outside_the_contract": dg.MetadataValue.md(
            markdown_table(
                ["column", "value", "rows", "counts as"],
                [("listening_events.source", v, f"{n:,}", "not active") for v, n in unknown_sources.items()]
                + [("tracks.content_type", v, f"{n:,}", "music") for v, n in unknown_types.items()],
            )
            if unknown_sources or unknown_types
            else "none: every source and content_type is one the contract lists (or null)"
        ),
    }


@monthly_graph_asset(
    name="ingest_listening_events",
    group=INGESTION,
    ins=[BILLED_USERS, LANDING_MONTH],
    outs={
        CLEAN_PLAYS: lake_out(
            "The month's valid, de-duplicated plays: one row per event, from users billed this month, "
            "integer-coded (user and track indexes from the month's dictionaries) and stored by user "
            "bucket and UTC day. Plays of tracks missing from the catalog are kept (they pay "
            "suspense). Read it with fairstream_pipeline.lib.ingestion.clean_plays.",
            "ingest-plays-v3",
        ),
        PLAY_QUARANTINE: lake_out(
            "Event rows that cannot count, each with one reason (invalid_row, outside_partition, "
            "conflicting_duplicate, unknown_user) and the file and row it came from.",
            "ingest-plays-v3",
        ),
    },
)
def ingest_listening_events(billed_users, landing_month):
    """Validate the month's listening events one UTC day per step, then publish them together."""
    days = plan_event_days(billed_users=billed_users, landing_month=landing_month).map(ingest_event_day)
    clean_plays, play_quarantine = merge_event_days(days.collect())
    return {CLEAN_PLAYS: clean_plays, PLAY_QUARANTINE: play_quarantine}

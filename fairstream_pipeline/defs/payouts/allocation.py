"""``count_and_allocate``: rules 1-6 for a month, sharded by user bucket, as one graph of ops.

``plan_user_buckets`` fans out one ``allocate_user_bucket`` step per bucket (``DynamicOut``); each
runs rules 1-4 on its users only and leaves its results in the lake's shard folder
(``lib.payouts.shards``); ``merge_user_buckets`` adds the shards up in integers, prices the segments
(rules 5-6) and publishes ``user_streams``, ``flagged_users``, ``segment_pools`` and
``track_earnings`` together. Steps pass bucket numbers and paths, never data.

The number of buckets is the run's ``plan_user_buckets`` config (``buckets``), else the number the
month's clean plays are stored in (``FAIRSTREAM_USER_BUCKETS`` when the month was ingested); then
each shard reads only its own bucket's files. Any number gives the same cents
(``lib.payouts.engine``, tested); another number than the stored one makes every shard read the
whole month.
"""


import time

import dagster as dg

from fairstream_pipeline.defs.metadata import contract_failures, lake_metadata, markdown_table, plottable, preview
from fairstream_pipeline.defs.payouts.assets import CODE_VERSION, PAYOUTS, month_rules, rules_metadata
from fairstream_pipeline.defs.resources import DuckDBEngine, PayoutRulesResource, WarehouseResource
from fairstream_pipeline.defs.specs import lake_out, monthly_graph_asset
from fairstream_pipeline.lib.assets import (
    AD_REVENUE,
    BILLED_USERS,
    CLEAN_PLAYS,
    FLAGGED_USERS,
    PROFESSIONAL_ARTISTS,
    SEGMENT_POOLS,
    TRACK_EARNINGS,
    USER_STREAMS,
)
from fairstream_pipeline.lib.ingestion.clean_plays import (
    artists_file,
    attach_coded_plays,
    attach_track_attributes,
    decode_shard,
    decode_track_earnings,
    track_dictionary_file,
)
from fairstream_pipeline.lib.payouts.professional_artists import (
    artists_near_the_line,
    name_professional_artists,
    professional_summary,
)
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.lake.tables import attach_month, publish_month
from fairstream_pipeline.lib.lake.memory import RssSampler
from fairstream_pipeline.lib.payouts.segment_pricing import price_segments
from fairstream_pipeline.lib.payouts.shard_allocation import allocate_shard
from fairstream_pipeline.lib.format import eur, percent, percent_number
from fairstream_pipeline.lib.payouts.report import flagged_users_preview, segment_summary, stream_totals
from fairstream_pipeline.lib.payouts.rules import PayoutRules
from fairstream_pipeline.lib.close.period_close import closed_month
from fairstream_pipeline.lib.payouts.shards import ShardStore, attach_shards, shard_records, shard_track_dictionary
from fairstream_pipeline.lib.ingestion.user_buckets import check_buckets

HEAVY = "duckdb_heavy"


def stored_buckets(warehouse: WarehouseResource, month: str) -> int:
    """The number of user buckets the month's clean plays are stored in."""
    return warehouse.lake().manifest(CLEAN_PLAYS, month).get("user_buckets", 1)


class BucketPlan(dg.Config):
    """How many user buckets this run shards the month into: 0 means as many as the month's clean
    plays are stored in (FAIRSTREAM_USER_BUCKETS when they were ingested), which lets each shard
    read only its own files.

    Per run: ``ops: {count_and_allocate: {ops: {plan_user_buckets: {config: {buckets: 16}}}}}``.
    """

    buckets: int = 0


def rules_for(context: dg.OpExecutionContext, payout_rules: PayoutRulesResource, warehouse: WarehouseResource) -> PayoutRules:
    """The month's rules (a closed month's are the ones it was closed with)."""
    return month_rules(context, payout_rules, closed_month(warehouse.lake(), context.partition_key))


@dg.op(
    out=dg.DynamicOut(list),
    ins={name: dg.In(dg.Nothing) for name in (CLEAN_PLAYS, BILLED_USERS, AD_REVENUE)},
    description="Choose the user buckets of the month (FAIRSTREAM_USER_BUCKETS) and remove shard "
    "folders left by killed runs of the month.",
)
def plan_user_buckets(context: dg.OpExecutionContext, config: BucketPlan, warehouse: WarehouseResource):
    try:
        buckets = check_buckets(config.buckets) if config.buckets else stored_buckets(warehouse, context.partition_key)
    except ValueError as exc:  # a configuration error: retrying cannot fix it
        raise dg.Failure(description=f"plan_user_buckets config: {exc}", allow_retries=False) from exc
    store = ShardStore(warehouse.root, context.partition_key, context.run_id)
    removed = store.remove_leftovers()
    if removed:
        context.log.info(f"removed shard folders of earlier runs of {context.partition_key}: {', '.join(removed)}")
    for bucket in range(buckets):
        yield dg.DynamicOutput([bucket, buckets], mapping_key=f"bucket_{bucket}")


@dg.op(
    pool=HEAVY,
    description="Rules 1-4 for one user bucket: caps per user, track and day, flagged users, S_u, "
    "and each paid user's contribution floor-divided over their tracks, summed per segment and track.",
)
def allocate_user_bucket(
    context: dg.OpExecutionContext,
    shard: list,
    warehouse: WarehouseResource,
    duckdb: DuckDBEngine,
    payout_rules: PayoutRulesResource,
) -> dg.Output[str]:
    """``shard`` is ``[bucket, buckets]``: which bucket of how many, as the plan chose for this run.
    Returns the folder holding the bucket's results."""
    bucket, buckets = shard
    month, lake = context.partition_key, warehouse.lake()
    rules = rules_for(context, payout_rules, warehouse)
    store = ShardStore(warehouse.root, month, context.run_id)
    started = time.monotonic()
    with RssSampler() as rss, contract_failures(), duckdb.connect() as con:
        days = attach_coded_plays(con, lake, month, bucket, buckets)
        allocate_shard(con, rules, days)
        decode_shard(con)
        totals = stream_totals(con)
        folder, rows = store.write(con, bucket, buckets, track_dictionary_file(lake, month))
    return dg.Output(
        str(folder),
        metadata={
            "bucket": bucket,
            "buckets": buckets,
            "users": totals.users,
            "counted_streams": totals.counted_streams,
            "flagged_users": totals.flagged_users,
            "track_share_rows": rows["track_shares"],
            "seconds": round(time.monotonic() - started, 3),
            "peak_rss_mib": round(rss.peak() / 2**20, 1),
            "shard_folder": dg.MetadataValue.path(str(folder)),
        },
    )


def _price_shards(con, lake: Lake, month: str, rules: PayoutRules, shards: list[str]) -> int:
    """Add the shards up, judge the artists and price every segment on ``con``; returns the number of
    user buckets."""
    attach_month(con, lake, month, {"billed_users": BILLED_USERS, "ad_revenue": AD_REVENUE})
    records = shard_records(shards)  # (read once)
    dictionary = shard_track_dictionary(shards, records)
    buckets = attach_shards(con, shards, records)
    if dictionary is not None:
        attach_track_attributes(con, dictionary)
    price_segments(con, rules)
    if dictionary is not None:  # the shards were added up on track indexes: the ids come back once
        decode_track_earnings(con, dictionary)
    name_professional_artists(con, rules, artists_file(lake, month))
    return buckets


@dg.op(
    pool=HEAVY,
    out={
        USER_STREAMS: dg.Out(dg.Nothing),
        FLAGGED_USERS: dg.Out(dg.Nothing),
        SEGMENT_POOLS: dg.Out(dg.Nothing),
        TRACK_EARNINGS: dg.Out(dg.Nothing),
        PROFESSIONAL_ARTISTS: dg.Out(dg.Nothing),
    },
    description="Add the buckets up in integers, judge the artists (ACPS), price every segment (rules 5-6 "
    "and 11) and publish the five tables together.",
)
def merge_user_buckets(
    context: dg.OpExecutionContext,
    shards: list[str],
    warehouse: WarehouseResource,
    duckdb: DuckDBEngine,
    payout_rules: PayoutRulesResource,
):
    month, lake = context.partition_key, warehouse.lake()
    rules = rules_for(context, payout_rules, warehouse)
    with contract_failures(), duckdb.connect() as con:
        buckets = _price_shards(con, lake, month, rules, shards)
        totals = stream_totals(con)
        rows = publish_month(
            con,
            lake,
            month,
            [USER_STREAMS, FLAGGED_USERS, SEGMENT_POOLS, TRACK_EARNINGS, PROFESSIONAL_ARTISTS],
            {"rules": rules.as_dict(), "counted_streams": totals.counted_streams, "user_buckets": buckets},
        )
        flagged_preview = preview(flagged_users_preview(con, limit=20))
        pools = segment_summary(con)
        professionals = professional_summary(con)
        near_the_line = preview(artists_near_the_line(con))
    ShardStore(warehouse.root, month, context.run_id).remove_month()
    common = {**rules_metadata(rules), "user_buckets": buckets}

    def output(asset: str, **metadata) -> dg.Output:
        return dg.Output(
            None,
            asset,
            metadata={"dagster/row_count": rows[asset], **metadata, **lake_metadata(lake, asset, month), **common},
        )

    yield output(
        USER_STREAMS,
        counted_streams=totals.counted_streams,
        streaming_users=totals.streaming_users,
        flagged_users=totals.flagged_users,
    )
    yield output(FLAGGED_USERS, preview=flagged_preview)
    yield output(
        SEGMENT_POOLS,
        target_cents=sum(p[4] for p in pools),
        segments=dg.MetadataValue.md(
            markdown_table(
                ["country", "tier", "users", "counted streams", "target", "residual", "UC unallocated"],
                [(*p[:3], f"{p[3]:,}", eur(p[4]), eur(p[5]), eur(p[6])) for p in pools],
            )
        ),
    )
    yield output(TRACK_EARNINGS)
    yield output(
        PROFESSIONAL_ARTISTS,
        summary=dg.MetadataValue.md(
            f"**{professionals.professional:,}** of {professionals.artists:,} artists with a counted music "
            f"stream are professional this month (at least {rules.acps_pro_min_streams:,} counted music "
            f"streams and {rules.acps_pro_min_listeners:,} listeners); they hold "
            f"{percent(professionals.professional_streams, professionals.music_streams)} of the counted "
            f"music streams, and their streams weigh {rules.acps_pro_boost}× under ACPS."
        ),
        professional_artists=dg.MetadataValue.int(professionals.professional),
        artists=dg.MetadataValue.int(professionals.artists),
        professional_stream_share=plottable(
            percent_number(professionals.professional_streams, professionals.music_streams)
        ),
        nearest_the_thresholds=near_the_line,
    )


@monthly_graph_asset(
    name="count_and_allocate",
    group=PAYOUTS,
    ins=[CLEAN_PLAYS, BILLED_USERS, AD_REVENUE],
    outs={
        USER_STREAMS: lake_out(
            "Each billed user of the month: segment, counted streams S_u, whether flagged, and their "
            "contribution in pico-cents. A play counts when it lasts at least min_play_ms, at most "
            "max_daily_plays_per_track per user, track and UTC day, and not at all for flagged users.",
            CODE_VERSION,
        ),
        FLAGGED_USERS: lake_out(
            "Users whose capped streams on a single UTC day exceed max_daily_streams_per_user, with "
            "their worst day and its count. None of their streams count this month.",
            CODE_VERSION,
        ),
        SEGMENT_POOLS: lake_out(
            "One row per segment (country, tier): users, counted streams, the pool in pico-cents, "
            "the target in cents, the residual of silent and flagged users, and what goes unallocated.",
            CODE_VERSION,
        ),
        TRACK_EARNINGS: lake_out(
            "Per segment and track: counted streams, user-centric and pro-rata pico-cents, the ACPS weight "
            "W_t in micro-streams and the ACPS pico-cents, before splits.",
            CODE_VERSION,
        ),
        PROFESSIONAL_ARTISTS: lake_out(
            "ACPS v1: each artist with a counted music stream this month, platform-wide: counted music "
            "streams and distinct listeners against the two thresholds, and whether the artist is "
            "professional (their streams then weigh acps_pro_boost times). Noise counts for nobody.",
            CODE_VERSION,
        ),
    },
)
def count_and_allocate(clean_plays, billed_users, ad_revenue):
    """Rules 1-6 and ACPS v1 (rule 11), sharded by user bucket: one step per bucket, then one merge."""
    shards = plan_user_buckets(clean_plays=clean_plays, billed_users=billed_users, ad_revenue=ad_revenue).map(allocate_user_bucket)
    user_streams, flagged_users, segment_pools, track_earnings, professional_artists = merge_user_buckets(
        shards.collect()
    )
    return {
        USER_STREAMS: user_streams,
        FLAGGED_USERS: flagged_users,
        SEGMENT_POOLS: segment_pools,
        TRACK_EARNINGS: track_earnings,
        PROFESSIONAL_ARTISTS: professional_artists,
    }

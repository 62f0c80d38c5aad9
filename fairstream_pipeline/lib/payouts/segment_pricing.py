"""Rules 2-6 and ACPS v1's pricing (rule 11) for the whole month (:func:`price_segments`): the
professional artists, the pools and targets of each segment, and each (segment, track)'s money."""

from __future__ import annotations

import duckdb

from fairstream_pipeline.lib.payouts import sql_script
from fairstream_pipeline.lib.payouts.fixed_point import BIGINT_MAX, product_floor_div, quotient_and_remainder, scaled_floor_div
from fairstream_pipeline.lib.payouts.rules import PICO_PER_CENT, PPM, PayoutRules
from fairstream_pipeline.lib.payouts.shard_allocation import attach_default_attributes

# each artist's month of counted music streams and listeners, and whether that makes them professional
JUDGE_ARTISTS = """
        CREATE OR REPLACE TEMP TABLE professional_artists AS
        SELECT artist_id, sum(streams)::BIGINT AS streams, sum(listeners)::BIGINT AS listeners,
               sum(streams) >= {streams} AND sum(listeners) >= {listeners}
                   AS professional
        FROM artist_reach GROUP BY ALL ORDER BY artist_id;
        """

# rule 4's direct shares, the counted streams and the ACPS weight W_t, summed over the shards
TOTAL_TRACKS = """
        CREATE OR REPLACE TEMP TABLE track_totals AS
        SELECT s.country, s.tier, s.track_id, sum(s.streams)::BIGINT AS streams,
               sum(s.direct_pico::HUGEINT)::HUGEINT AS direct_pico,
               sum(CASE WHEN coalesce(p.professional, false) THEN s.acps_pro_weight ELSE s.acps_weight END)::HUGEINT
                   AS acps_weight
        FROM track_shares s
        LEFT JOIN track_attributes a USING (track_id)
        LEFT JOIN professional_artists p ON p.artist_id = a.artist_id
        GROUP BY s.country, s.tier, s.track_id;
        """


def price_segments(con: duckdb.DuckDBPyConnection, rules: PayoutRules) -> None:
    """Rules 2-6 and ACPS v1 (rule 11) from ``user_streams``, ``track_shares``, ``artist_reach``,
    ``track_attributes`` and ``ad_revenue``: pools, targets, professional artists and track money.

    ``user_streams``, ``track_shares`` and ``artist_reach`` may be the union of several shards'
    tables (views): a (segment, track) then has one ``track_shares`` row per shard, and an artist
    one ``artist_reach`` row per shard, added up here in integers. A ``track_shares`` *table* is
    dropped once added up (the merge's copy; it is the largest table of the merge).

    ``professional_artists`` has one row per artist with a counted music stream: ``artist_id``,
    ``streams``, ``listeners`` and ``professional``. ``segment_pools`` has one row per (country,
    tier) with the users, counted streams, the pool in pico-cents, the target in cents, the residual
    R of silent and flagged users, the ACPS weight of the segment, and what goes to
    ``__unallocated__`` under each model. ``track_earnings`` has one row per (segment, track) with
    the segment's counted streams of the track, its ACPS weight W_t and its user-centric, pro-rata
    and ACPS pico-cents.
    """
    attach_default_attributes(con)
    if not sql_script.has_relation(con, "artist_reach"):
        sql_script.run(con, "CREATE OR REPLACE TEMP VIEW artist_reach AS "
                            "SELECT artist_id, 0::BIGINT AS streams, 0::BIGINT AS listeners FROM track_attributes WHERE false")
    sql_script.run(con, JUDGE_ARTISTS.format(streams=rules.acps_pro_min_streams, listeners=rules.acps_pro_min_listeners))
    sql_script.run(con, TOTAL_TRACKS)
    if sql_script.is_table(con, "track_shares"):  # (the merge's copy: totalled now)
        sql_script.run(con, "DROP TABLE track_shares;")
    _pool_segments(con, rules)
    _price_tracks(con, rules)


def _pool_segments(con: duckdb.DuckDBPyConnection, rules: PayoutRules) -> None:
    """``segment_pools``: rules 2-3 and 5-6's pools, targets and unallocated money per segment."""
    share = f"{rules.royalty_share_ppm}::HUGEINT * {PPM}"  # pico-cents per cent of revenue
    sql_script.run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE segment_pools AS
        WITH by_users AS (
            SELECT country, tier, count(*) AS users,
                   count(*) FILTER (WHERE streams > 0) AS streaming_users,
                   sum(streams)::BIGINT AS counted_streams,
                   sum(contribution_pico::HUGEINT)::HUGEINT AS paid_pool_pico,
                   coalesce(sum(contribution_pico::HUGEINT) FILTER (WHERE streams = 0), 0)::HUGEINT AS silent_pico
            FROM user_streams GROUP BY country, tier
        ),
        weights AS (SELECT country, tier, sum(acps_weight)::HUGEINT AS acps_weight FROM track_totals GROUP BY ALL),
        segments AS (
            SELECT coalesce(u.country, a.country) AS country, coalesce(u.tier, 'free') AS tier,
                   coalesce(u.users, 0) AS users, coalesce(u.streaming_users, 0) AS streaming_users,
                   coalesce(u.counted_streams, 0)::BIGINT AS counted_streams,
                   CASE WHEN coalesce(u.tier, 'free') = 'free'
                        THEN coalesce(a.net_cents, 0) * {share}
                        ELSE u.paid_pool_pico END AS pool_pico,
                   CASE WHEN coalesce(u.tier, 'free') = 'paid' THEN u.silent_pico ELSE 0::HUGEINT END AS residual_pico
            FROM by_users u
            FULL OUTER JOIN (SELECT country, net_cents, 'free' AS tier FROM ad_revenue) a
              ON u.country = a.country AND u.tier = a.tier
        )
        SELECT s.country, s.tier, users, streaming_users, counted_streams, pool_pico,
               (pool_pico // {PICO_PER_CENT})::BIGINT AS target_cents,
               residual_pico,
               CASE WHEN counted_streams = 0 THEN pool_pico
                    WHEN s.tier = 'paid' AND '{rules.residual_policy}' = 'retain' THEN residual_pico
                    ELSE 0::HUGEINT END AS uc_unallocated_pico,
               CASE WHEN counted_streams = 0 THEN pool_pico ELSE 0::HUGEINT END AS pr_unallocated_pico,
               coalesce(w.acps_weight, 0)::HUGEINT AS acps_weight,
               CASE WHEN coalesce(w.acps_weight, 0) = 0 THEN pool_pico ELSE 0::HUGEINT END AS acps_unallocated_pico
        FROM segments s LEFT JOIN weights w USING (country, tier)
        ORDER BY s.country, s.tier
        """,
    )


def _price_tracks(con: duckdb.DuckDBPyConnection, rules: PayoutRules) -> None:
    """``track_earnings``: each (segment, track)'s user-centric (rules 4-5), pro-rata (rule 6) and
    ACPS (rule 11) pico-cents."""
    redistribute_residual = "true" if rules.residual_policy == "pro_rata" else "false"
    # ACPS: floor(pool * W_t / W) as q * W_t + floor(r * W_t / W) with pool = q * W + r, in 128 bits
    # (W is far within 64 bits, so r * W_t < W^2 fits).
    acps = (
        "(p.acps_q * s.acps_weight + CASE WHEN p.acps_w64 IS NOT NULL "
        f"THEN {product_floor_div('p.acps_r', 's.acps_weight', 'p.acps_w64')} "
        "ELSE (p.acps_r * s.acps_weight) // p.acps_weight END)"
    )
    sql_script.run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE track_earnings AS
        WITH pools AS (  -- floor(X * streams / S_seg) as in ``lib.payouts.fixed_point``
            SELECT country, tier, counted_streams, acps_weight,
                   {quotient_and_remainder('pool_pico', 'counted_streams', 'pool')},
                   {quotient_and_remainder('residual_pico', 'counted_streams', 'residual')},
                   CASE WHEN acps_weight > 0 THEN pool_pico // acps_weight END AS acps_q,
                   CASE WHEN acps_weight > 0 THEN pool_pico % acps_weight END AS acps_r,
                   CASE WHEN acps_weight <= {BIGINT_MAX} THEN acps_weight::BIGINT END AS acps_w64
            FROM segment_pools WHERE counted_streams > 0
        )
        SELECT s.country, s.tier, s.track_id, s.streams,
               CASE WHEN s.tier = 'paid'
                    THEN s.direct_pico
                         + CASE WHEN {redistribute_residual}
                                THEN {scaled_floor_div('p.residual', 's.streams', 'p.counted_streams')} ELSE 0 END
                    ELSE {scaled_floor_div('p.pool', 's.streams', 'p.counted_streams')}  -- rule 5
               END AS uc_pico,
               {scaled_floor_div('p.pool', 's.streams', 'p.counted_streams')} AS pr_pico,  -- rule 6
               s.acps_weight,
               CASE WHEN p.acps_weight > 0 THEN {acps} ELSE 0 END::HUGEINT AS acps_pico  -- rule 11
        FROM track_totals s
        JOIN pools p USING (country, tier)
        ORDER BY country, tier, track_id;
        DROP TABLE track_totals;
        """,
    )

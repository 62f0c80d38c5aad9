"""The payout rules (v4) in DuckDB SQL, exactly as ``docs/payout-rules.md`` states them.

Each stage reads views or tables of fixed names from the connection and creates its output tables:

=========================  =============================================  =======================================
stage                      reads                                          creates
=========================  =============================================  =======================================
:func:`validate_splits`    ``split_rows``, ``catalog_tracks``             ``track_splits``
:func:`count_and_allocate` ``clean_plays``, ``billed_users``,             ``flagged_users``, ``user_streams``,
                           ``ad_revenue`` (``track_attributes``)          ``professional_artists``,
                                                                          ``segment_pools``, ``track_earnings``
 = :func:`allocate_shard`  ``clean_plays``, ``billed_users`` (a shard's)  ``flagged_users``, ``user_streams``,
                           (``track_attributes``)                         ``track_shares``, ``artist_reach``
 + :func:`price_segments`  ``user_streams``, ``track_shares``,            ``professional_artists``,
                           ``artist_reach`` (every shard's),              ``segment_pools``, ``track_earnings``
                           ``ad_revenue`` (``track_attributes``)
:func:`pay_payees`         ``segment_pools``, ``track_earnings``,         ``payee_earnings``
                           ``track_splits``
:func:`roll_statements`    ``payee_earnings``, ``previous_statements``,   ``payee_statements``
                           ``payee_adjustments`` (``payment_standing``)
=========================  =============================================  =======================================

Money is integer pico-cents (10^-12 cent) in ``HUGEINT`` until it is rounded to integer cents once,
per segment and payee. Every division is ``//`` on non-negative integers, i.e. it truncates
(written through ``lib.payouts.fixed_point``, which divides in 64 bits whenever the numbers fit). No
value ever passes through a float: DuckDB turns ``/`` on integers or DECIMALs into a DOUBLE, so
``/`` does not appear in this module. Pico-cent columns are written to Parquet as
``DECIMAL(38,0)``, because DuckDB writes ``HUGEINT`` to Parquet as a DOUBLE (``lib.lake.tables``
holds which columns are pico-cents).

**Shards.** Rules 1-4 are per user: a play counts or not by its user's caps, a user is flagged by
their own days, and a paid user's contribution is floor-divided over their own tracks. So the users
can be split into disjoint shards (``lib.ingestion.user_buckets``), :func:`allocate_shard` run on each, and
the shards' ``track_shares`` added up in integers: the sum is exact, whatever the number of shards.
ACPS v1's weights are per user too (M_u, K, w(u,t)); only whether an artist is professional needs
the whole month (its listeners are distinct users, and a user is in one shard), so each shard sums
both weights, w with and without the professional boost, floored per user, plus its artists'
streams and listeners, and the merge picks. Rules 5-8 and 11's pricing need the month's totals
and stay in one merge (:func:`price_segments`, then :func:`pay_payees`).
"""

from __future__ import annotations

import duckdb

from fairstream_pipeline.lib.lake.faults import fault_point
from fairstream_pipeline.lib.lake.tables import columns_of
from fairstream_pipeline.lib.payouts.fixed_point import BIGINT_MAX, floor_div, quotient_and_remainder, scaled_floor_div
from fairstream_pipeline.lib.payouts.rules import (
    MICRO,
    NO_PAYMENT_DETAILS,
    PICO_PER_CENT,
    PPM,
    SPECIAL_PAYEES,
    SUSPENSE,
    UNALLOCATED,
    PayoutRules,
)


def _run(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    con.execute(sql).fetchall()


def validate_splits(con: duckdb.DuckDBPyConnection) -> None:
    """Rule 7 (validity): a track's splits are valid when its payees are distinct, every share is
    > 0 and the shares sum to exactly 1,000,000.

    ``track_splits(track_id, payee_id, share_ppm, valid, problem)`` keeps every split row with its
    track's verdict, plus one row (``payee_id`` null) for each catalog track without split rows.
    """
    _run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE track_splits AS
        WITH verdicts AS (
            SELECT track_id,
                   CASE
                       WHEN count(*) FILTER (WHERE payee_id IS NULL OR payee_id = '' OR share_ppm IS NULL) > 0
                           THEN 'a split row has no payee or no share'
                       WHEN count(DISTINCT payee_id) < count(*) THEN 'a payee is listed twice'
                       WHEN min(share_ppm) <= 0 THEN 'a share is not positive'
                       WHEN sum(share_ppm) <> {PPM}
                           THEN 'shares sum to ' || sum(share_ppm) || ', not {PPM}'
                   END AS problem
            FROM split_rows GROUP BY track_id
        )
        SELECT s.track_id, s.payee_id, s.share_ppm::BIGINT AS share_ppm,
               v.problem IS NULL AS valid, v.problem
        FROM split_rows s JOIN verdicts v USING (track_id)
        UNION ALL
        SELECT t.track_id, NULL, NULL, false, 'no split rows'
        FROM catalog_tracks t ANTI JOIN split_rows s USING (track_id)
        ORDER BY track_id, payee_id NULLS FIRST
        """,
    )


def count_and_allocate(con: duckdb.DuckDBPyConnection, rules: PayoutRules) -> None:
    """Rules 1-6 and 11 for the whole month in one go: :func:`allocate_shard` on every user, then
    :func:`price_segments`. Creates ``flagged_users``, ``user_streams``, ``professional_artists``,
    ``segment_pools`` and ``track_earnings``."""
    allocate_shard(con, rules)
    price_segments(con, rules)
    _run(con, "DROP TABLE IF EXISTS track_shares; DROP TABLE artist_reach")


def _is_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    (found,) = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = $1", [name]).fetchall()[0]
    return found > 0


def _has_relation(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """A table or a view of that name."""
    (found,) = con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = $1", [name]).fetchall()[0]
    return found > 0 or _is_table(con, name)


def _attach_default_attributes(con: duckdb.DuckDBPyConnection) -> None:
    """Without ``track_attributes`` every track is music and has no artist (nobody is professional)."""
    if not _has_relation(con, "track_attributes"):
        _run(con, "CREATE OR REPLACE TEMP VIEW track_attributes AS "
                  "SELECT NULL::VARCHAR AS track_id, NULL::VARCHAR AS artist_id, false AS noise WHERE false")


def allocate_shard(con: duckdb.DuckDBPyConnection, rules: PayoutRules, days: list | None = None) -> None:
    """Rules 1-4 and ACPS v1's per-user weights for a shard of users: counted streams, flagged users,
    the paid users' direct shares, the users' ACPS weights and the artists' reach.

    Reads ``clean_plays`` (``user_id``, ``track_id``, ``day``, ``ms_played``, optionally ``active``),
    ``billed_users`` (both holding the shard's users only, or every user) and, when it exists,
    ``track_attributes`` (``track_id``, ``artist_id``, ``noise``; without it every track is music
    and has no artist). Creates ``flagged_users``, ``user_streams`` (every billed user of the shard),
    ``track_shares`` (``country``, ``tier``, ``track_id``, ``streams``, ``direct_pico``: the shard's
    counted streams of the track in the segment, and the sum of its paid users' ``floor(c_u * s(u,t)
    / S_u)``; ``acps_weight`` and ``acps_pro_weight``: the sum of its users' ACPS weights w(u,t),
    with the artist not professional and professional) and ``artist_reach`` (``artist_id``,
    ``streams``, ``listeners``: the shard's counted music streams of the artist and its users with
    one; users are in one shard only, so the shards add up to the month's).

    - Rule 1: a play counts when ``ms_played >= min_play_ms``, at most ``max_daily_plays_per_track``
      per (user, track, UTC day), active plays first; a user whose capped streams on one day exceed
      ``max_daily_streams_per_user`` is flagged (worst day: most streams, earliest on a tie) and
      none of their streams count.
    - Rules 2-4: S_u, the contribution c_u and its floor division over the user's tracks.
    - ACPS v1 (rule 11): M_u, the user's counted music streams; K = min(M_u, C) or C; and
      w(u,t) = floor(b(u,t) * K * 10^6 / M_u) with b = b_pro * ((n - a) + active_boost * a).
      Whether an artist is professional is only known for the whole month, so both weights are
      summed, each floored per user, and the merge takes the one that applies.

    The plays are capped one UTC day at a time (a day's aggregate fits in memory, and DuckDB reads
    only that day's files); the capped (user, track, day) rows are then rolled up once into s(u,t).
    The roll-up is the one large aggregation; DuckDB spills it to ``temp_directory`` when it
    outgrows the memory limit.
    """
    share = f"{rules.royalty_share_ppm}::HUGEINT * {PPM}"  # pico-cents per cent of revenue
    _attach_default_attributes(con)
    active = "active" if "active" in columns_of(con, "clean_plays") else "false"
    # The day tables take their id types from ``clean_plays``: INTEGER codes in a shard, so that
    # every aggregation below hashes 4-byte integers (declared VARCHAR, they cost a shard 2 s more).
    _run(
        con,
        """
        CREATE OR REPLACE TEMP TABLE capped_daily AS
        SELECT user_id, track_id, 0::BIGINT AS streams, 0::BIGINT AS active FROM clean_plays WHERE false;
        CREATE OR REPLACE TEMP TABLE busy_days AS
        SELECT user_id, day, 0::BIGINT AS streams FROM clean_plays WHERE false;
        """,
    )
    if days is None:  # (the caller may know the days without a scan of the plays)
        days = [row[0] for row in con.execute("SELECT DISTINCT day FROM clean_plays ORDER BY day").fetchall()]
    cap = rules.max_daily_plays_per_track
    for day in days:
        fault_point("counting")
        _run(
            con,
            f"""
            CREATE OR REPLACE TEMP TABLE day_capped AS
            SELECT user_id, track_id, least(count(*), {cap}) AS streams,
                   least(count(*) FILTER (WHERE {active}), {cap}) AS active  -- active plays count first
            FROM clean_plays
            WHERE day = DATE '{day.isoformat()}' AND ms_played >= {rules.min_play_ms}
            GROUP BY ALL;
            INSERT INTO capped_daily SELECT * FROM day_capped;
            INSERT INTO busy_days
            SELECT user_id, DATE '{day.isoformat()}', sum(streams) FROM day_capped
            GROUP BY user_id HAVING sum(streams) > {rules.max_daily_streams_per_user};
            DROP TABLE day_capped;
            """,
        )
    k = "least(music_streams, {c})" if rules.acps_cap_mode == "cap" else "{c}"
    k = k.format(c=rules.acps_user_stream_cap)
    # b(u,t) * K * 10^6 with the professional boost: in 64 bits when the rules bound it there (a
    # (user, track) counts at most 31 days * max_daily_plays_per_track streams), else in 128.
    largest = 31 * rules.max_daily_plays_per_track * rules.acps_active_boost * rules.acps_user_stream_cap * MICRO
    weight_type = "BIGINT" if largest * rules.acps_pro_boost <= BIGINT_MAX else "HUGEINT"
    x = f"((t.streams - t.active) + {rules.acps_active_boost} * t.active)::{weight_type} * k.k * {MICRO}"
    _run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE flagged_users AS
        SELECT user_id, day AS worst_day, streams::BIGINT AS worst_day_streams FROM (
            SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY streams DESC, day) AS rank
            FROM busy_days
        ) WHERE rank = 1;
        DROP TABLE busy_days;
        CREATE OR REPLACE TEMP TABLE user_tracks AS  -- s(u,t) and a(u,t), then the track's artist and noise
        SELECT t.*, coalesce(a.noise, false) AS noise, a.artist_id
        FROM (
            SELECT user_id, track_id, sum(streams)::BIGINT AS streams, sum(active)::BIGINT AS active
            FROM capped_daily ANTI JOIN flagged_users USING (user_id)
            GROUP BY user_id, track_id
        ) t
        LEFT JOIN track_attributes a USING (track_id);
        DROP TABLE capped_daily;
        CREATE OR REPLACE TEMP TABLE user_stream_totals AS
        SELECT user_id, sum(streams)::BIGINT AS streams,
               coalesce(sum(streams) FILTER (WHERE NOT noise), 0)::BIGINT AS music_streams
        FROM user_tracks GROUP BY ALL;
        -- Rule 4, floor(c_u * s / S_u), as q * s + floor(r * s / S_u) with c_u = q * S_u + r: one
        -- 128-bit division per user, and 64-bit ones per (user, track) (``lib.payouts.fixed_point``).
        CREATE OR REPLACE TEMP TABLE user_quotients AS
        SELECT user_id, country, tier, total, music_streams, {k}::BIGINT AS k,
               {quotient_and_remainder('contribution', 'total', 'contribution')}
        FROM (
            SELECT t.user_id, b.country, b.tier, t.streams AS total, t.music_streams,
                   CASE WHEN b.tier = 'paid' THEN b.net_cents * {share} ELSE 0::HUGEINT END AS contribution
            FROM user_stream_totals t JOIN billed_users b USING (user_id)
        );
        CREATE OR REPLACE TEMP TABLE track_shares AS
        SELECT country, tier, track_id, sum(streams)::BIGINT AS streams, sum(direct_pico)::HUGEINT AS direct_pico,
               coalesce(sum({floor_div('plain', 'music_streams')}), 0)::HUGEINT AS acps_weight,
               coalesce(sum({floor_div('pro', 'music_streams')}), 0)::HUGEINT AS acps_pro_weight
        FROM (  -- noise weighs nothing (null), and a user with noise only has no music stream to divide by
            SELECT u.country, u.tier, t.track_id, t.streams, nullif(u.music_streams, 0) AS music_streams,
                   {scaled_floor_div('u.contribution', 't.streams', 'u.total')} AS direct_pico,
                   CASE WHEN NOT t.noise THEN {x.replace('k.k', 'u.k')} END AS plain,
                   CASE WHEN NOT t.noise THEN {x.replace('k.k', 'u.k')} * {rules.acps_pro_boost} END AS pro
            FROM user_tracks t JOIN user_quotients u USING (user_id)
        )
        GROUP BY ALL;
        CREATE OR REPLACE TEMP TABLE artist_reach AS  -- (a user's tracks of one artist: one listener)
        SELECT artist_id, sum(streams)::BIGINT AS streams, count(*)::BIGINT AS listeners
        FROM (
            SELECT artist_id, user_id, sum(streams) AS streams FROM user_tracks
            WHERE NOT noise AND artist_id IS NOT NULL GROUP BY artist_id, user_id
        )
        GROUP BY artist_id;
        DROP TABLE user_tracks;
        DROP TABLE user_quotients;
        CREATE OR REPLACE TEMP TABLE user_streams AS
        SELECT b.user_id, b.country, b.tier,
               coalesce(t.streams, 0)::BIGINT AS streams,
               f.user_id IS NOT NULL AS flagged,
               CASE WHEN b.tier = 'paid' THEN b.net_cents * {share} ELSE 0::HUGEINT END AS contribution_pico
        FROM billed_users b
        LEFT JOIN user_stream_totals t USING (user_id)
        LEFT JOIN flagged_users f USING (user_id);
        DROP TABLE user_stream_totals;
        """,
    )


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
    share = f"{rules.royalty_share_ppm}::HUGEINT * {PPM}"
    _attach_default_attributes(con)
    if not _has_relation(con, "artist_reach"):
        _run(con, "CREATE OR REPLACE TEMP VIEW artist_reach AS "
                  "SELECT artist_id, 0::BIGINT AS streams, 0::BIGINT AS listeners FROM track_attributes WHERE false")
    _run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE professional_artists AS
        SELECT artist_id, sum(streams)::BIGINT AS streams, sum(listeners)::BIGINT AS listeners,
               sum(streams) >= {rules.acps_pro_min_streams} AND sum(listeners) >= {rules.acps_pro_min_listeners}
                   AS professional
        FROM artist_reach GROUP BY ALL ORDER BY artist_id;
        -- rule 4's direct shares, the counted streams and the ACPS weight W_t, summed over the shards
        CREATE OR REPLACE TEMP TABLE track_totals AS
        SELECT s.country, s.tier, s.track_id, sum(s.streams)::BIGINT AS streams,
               sum(s.direct_pico::HUGEINT)::HUGEINT AS direct_pico,
               sum(CASE WHEN coalesce(p.professional, false) THEN s.acps_pro_weight ELSE s.acps_weight END)::HUGEINT
                   AS acps_weight
        FROM track_shares s
        LEFT JOIN track_attributes a USING (track_id)
        LEFT JOIN professional_artists p ON p.artist_id = a.artist_id
        GROUP BY s.country, s.tier, s.track_id;
        {"DROP TABLE track_shares;" if _is_table(con, "track_shares") else ""}  -- (the merge's copy: totalled now)
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
    redistribute_residual = "true" if rules.residual_policy == "pro_rata" else "false"
    # ACPS: floor(pool * W_t / W) as q * W_t + floor(r * W_t / W) with pool = q * W + r, in 128 bits
    # (W is far within 64 bits, so r * W_t < W^2 fits).
    acps = (
        "(p.acps_q * s.acps_weight + CASE WHEN p.acps_w64 IS NOT NULL "
        f"THEN {floor_div('p.acps_r * s.acps_weight', 'p.acps_w64')} "
        "ELSE (p.acps_r * s.acps_weight) // p.acps_weight END)"
    )
    _run(
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


def pay_payees(con: duckdb.DuckDBPyConnection) -> None:
    """Rules 7-8: split each track's money among its payees, then round to cents once, for each of
    the three models (``uc_cents``, ``pr_cents``, ``acps_cents``).

    Each payee's pico-cents are floored to cents; the cents still missing to reach the segment's
    target go one each to the payees with the largest remainders, ties by ascending ``payee_id``
    (byte order, which is DuckDB's default string order). ``payee_earnings`` has one row per
    (segment, payee) with a non-zero amount.

    Segments and payees are numbered first (a payee's number is its rank in ``payee_id`` order,
    so ordering by it is ordering by the id), so that the 33M split rows of a 200M-play month are
    grouped and ranked on integers; the ids come back at the end.
    """
    _run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE valid_splits AS
        SELECT track_id, payee_id, share_ppm FROM track_splits WHERE valid;
        CREATE OR REPLACE TEMP TABLE payee_codes AS
        SELECT (row_number() OVER (ORDER BY payee_id) - 1)::INTEGER AS payee_index, payee_id
        FROM (SELECT payee_id FROM valid_splits UNION SELECT '{SUSPENSE}' UNION SELECT '{UNALLOCATED}');
        CREATE OR REPLACE TEMP TABLE segment_codes AS
        SELECT (row_number() OVER (ORDER BY country, tier) - 1)::INTEGER AS segment_index, country, tier, target_cents
        FROM segment_pools;
        CREATE OR REPLACE TEMP TABLE payee_pico AS
        WITH coded_splits AS (
            SELECT v.track_id, c.payee_index, v.share_ppm FROM valid_splits v JOIN payee_codes c USING (payee_id)
        ),
        earnings AS (
            SELECT g.segment_index, e.track_id, e.uc_pico, e.pr_pico, e.acps_pico
            FROM track_earnings e JOIN segment_codes g USING (country, tier)
        ),
        shares AS (  -- floor(A * share_ppm / 10^6) as in ``lib.payouts.fixed_point``
            SELECT e.segment_index, s.payee_index,
                   {scaled_floor_div('e.uc', 's.share_ppm', PPM)} AS uc_pico,
                   {scaled_floor_div('e.pr', 's.share_ppm', PPM)} AS pr_pico,
                   {scaled_floor_div('e.acps', 's.share_ppm', PPM)} AS acps_pico
            FROM (
                SELECT segment_index, track_id,
                       {quotient_and_remainder('uc_pico', PPM, 'uc')}, {quotient_and_remainder('pr_pico', PPM, 'pr')},
                       {quotient_and_remainder('acps_pico', PPM, 'acps')}
                FROM earnings
            ) e JOIN coded_splits s USING (track_id)
            UNION ALL
            SELECT segment_index, (SELECT payee_index FROM payee_codes WHERE payee_id = '{SUSPENSE}'),
                   uc_pico, pr_pico, acps_pico
            FROM earnings ANTI JOIN (SELECT DISTINCT track_id FROM valid_splits) USING (track_id)
            UNION ALL
            SELECT g.segment_index, (SELECT payee_index FROM payee_codes WHERE payee_id = '{UNALLOCATED}'),
                   p.uc_unallocated_pico, p.pr_unallocated_pico, p.acps_unallocated_pico
            FROM segment_pools p JOIN segment_codes g USING (country, tier)
            WHERE p.uc_unallocated_pico > 0 OR p.pr_unallocated_pico > 0 OR p.acps_unallocated_pico > 0
        )
        SELECT segment_index, payee_index, sum(uc_pico) AS uc_pico, sum(pr_pico) AS pr_pico,
               sum(acps_pico) AS acps_pico
        FROM shares GROUP BY ALL;
        DROP TABLE valid_splits;
        """,
    )
    rounded = {}
    for model in ("uc", "pr", "acps"):
        rounded[model] = f"""
            SELECT segment_index, payee_index,
                   (floor_cents + CASE WHEN rank <= deficit THEN 1 ELSE 0 END)::BIGINT AS {model}_cents
            FROM (
                SELECT p.segment_index, p.payee_index, p.cents_q AS floor_cents,
                       row_number() OVER (
                           PARTITION BY p.segment_index ORDER BY p.cents_r DESC, p.payee_index
                       ) AS rank,
                       g.target_cents - sum(p.cents_q) OVER (PARTITION BY p.segment_index) AS deficit
                FROM (
                    SELECT segment_index, payee_index,
                           {quotient_and_remainder(f'{model}_pico', PICO_PER_CENT, 'cents')}
                    FROM payee_pico
                ) p JOIN segment_codes g USING (segment_index)
            )
        """
    _run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE payee_earnings AS
        SELECT g.country, g.tier, c.payee_id, uc.uc_cents, pr.pr_cents, acps.acps_cents
        FROM ({rounded['uc']}) uc JOIN ({rounded['pr']}) pr USING (segment_index, payee_index)
        JOIN ({rounded['acps']}) acps USING (segment_index, payee_index)
        JOIN segment_codes g USING (segment_index)
        JOIN payee_codes c USING (payee_index)
        WHERE uc.uc_cents <> 0 OR pr.pr_cents <> 0 OR acps.acps_cents <> 0
        ORDER BY g.country, g.tier, c.payee_id;
        DROP TABLE payee_codes;
        DROP TABLE segment_codes;
        """,
    )


def roll_statements(con: duckdb.DuckDBPyConnection, rules: PayoutRules, payment_standing: bool = False) -> None:
    """Rules 9 and 10: opening + earned + adjustment; pay it all when it reaches the threshold and the
    payee can be paid, else carry it. Earned is the cents of the rules' ``payout_model``; the
    statement keeps the pro-rata and ACPS cents beside it (``pro_rata_cents``, ``acps_cents``) and
    names the model (``payout_model``).

    ``previous_statements`` is last month's ``payee_statements`` (empty in the first month) and
    ``payee_adjustments`` this month's adjustments for restated closed months and returned payments.
    A balance may be negative (a clawback): it carries over and is recovered from future earnings.
    ``__suspense__`` and ``__unallocated__`` are never paid; their balance accumulates.

    With ``payment_standing`` (the landing zone has payment details), the view ``payment_standing
    (payee_id, hold_reason)`` says who can be paid (``hold_reason`` null) and who cannot; a payee
    missing from it has no payment details. A payee due a payment who cannot be paid is **held**:
    nothing is paid, the whole due carries over, and ``hold_reason`` says why. ``hold_reason`` is
    null for everybody else.
    """
    special = ", ".join(f"'{p}'" for p in SPECIAL_PAYEES)
    standing = (
        "LEFT JOIN payment_standing s USING (payee_id)" if payment_standing else
        "LEFT JOIN (SELECT NULL::VARCHAR AS payee_id, NULL::VARCHAR AS hold_reason WHERE false) s USING (payee_id)"
    )
    held = f"CASE WHEN s.payee_id IS NULL THEN '{NO_PAYMENT_DETAILS}' ELSE s.hold_reason END" if payment_standing else "NULL"
    _run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE payee_statements AS
        WITH month AS (
            SELECT payee_id, sum({rules.earned_column})::BIGINT AS earned, sum(pr_cents)::BIGINT AS pro_rata,
                   sum(acps_cents)::BIGINT AS acps
            FROM payee_earnings GROUP BY payee_id
        ),
        adjusted AS (SELECT payee_id, sum(cents)::BIGINT AS adjustment FROM payee_adjustments GROUP BY payee_id),
        joined AS (
            SELECT payee_id,
                   coalesce(p.closing_balance_cents, 0)::BIGINT AS opening_balance_cents,
                   coalesce(m.earned, 0)::BIGINT AS earned_cents,
                   coalesce(a.adjustment, 0)::BIGINT AS adjustment_cents,
                   coalesce(m.pro_rata, 0)::BIGINT AS pro_rata_cents,
                   coalesce(m.acps, 0)::BIGINT AS acps_cents
            FROM month m
            FULL OUTER JOIN previous_statements p USING (payee_id)
            FULL OUTER JOIN adjusted a USING (payee_id)
        ),
        due AS (
            SELECT j.*, opening_balance_cents + earned_cents + adjustment_cents AS due,
                   payee_id NOT IN ({special})
                       AND opening_balance_cents + earned_cents + adjustment_cents >= {rules.payout_threshold_cents}
                       AND opening_balance_cents + earned_cents + adjustment_cents > 0 AS is_due,
                   ({held})::VARCHAR AS standing
            FROM joined j {standing}
        )
        SELECT payee_id, opening_balance_cents, earned_cents, adjustment_cents, pro_rata_cents, paid_cents,
               due - paid_cents AS closing_balance_cents, hold_reason, acps_cents,
               '{rules.payout_model}' AS payout_model
        FROM (
            SELECT *,
                   CASE WHEN is_due AND standing IS NULL THEN due ELSE 0 END::BIGINT AS paid_cents,
                   CASE WHEN is_due THEN standing END AS hold_reason
            FROM due
        )
        WHERE opening_balance_cents <> 0 OR earned_cents <> 0 OR adjustment_cents <> 0 OR pro_rata_cents <> 0
              OR acps_cents <> 0
        ORDER BY payee_id
        """,
    )

"""Rules 1-4 and ACPS v1's per-user weights for a shard of users (:func:`allocate_shard`).

The plays are capped one UTC day at a time (a day's aggregate fits in memory, and DuckDB reads
only that day's files); the capped (user, track, day) rows are then rolled up once into s(u,t).
The roll-up is the one large aggregation; DuckDB spills it to ``temp_directory`` when it
outgrows the memory limit. Each step below is one stage of that SQL, run in this order.
"""

from __future__ import annotations

import duckdb

from fairstream_pipeline.lib.lake.faults import fault_point
from fairstream_pipeline.lib.lake.tables import columns_of
from fairstream_pipeline.lib.payouts import sql_script
from fairstream_pipeline.lib.payouts.fixed_point import BIGINT_MAX, floor_div, quotient_and_remainder, scaled_floor_div
from fairstream_pipeline.lib.payouts.rules import MICRO, PPM, PayoutRules

# The day tables take their id types from ``clean_plays``: INTEGER codes in a shard, so that
# every aggregation below hashes 4-byte integers (declared VARCHAR, they cost a shard 2 s more).
EMPTY_DAY_TABLES = """
        CREATE OR REPLACE TEMP TABLE capped_daily AS
        SELECT user_id, track_id, 0::BIGINT AS streams, 0::BIGINT AS active FROM clean_plays WHERE false;
        CREATE OR REPLACE TEMP TABLE busy_days AS
        SELECT user_id, day, 0::BIGINT AS streams FROM clean_plays WHERE false;
        """

FLAG_USERS = """
        CREATE OR REPLACE TEMP TABLE flagged_users AS
        SELECT user_id, day AS worst_day, streams::BIGINT AS worst_day_streams FROM (
            SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY streams DESC, day) AS rank
            FROM busy_days
        ) WHERE rank = 1;
        DROP TABLE busy_days;
        """

ROLL_UP_USER_TRACKS = """
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
        """

REACH_ARTISTS = """
        CREATE OR REPLACE TEMP TABLE artist_reach AS  -- (a user's tracks of one artist: one listener)
        SELECT artist_id, sum(streams)::BIGINT AS streams, count(*)::BIGINT AS listeners
        FROM (
            SELECT artist_id, user_id, sum(streams) AS streams FROM user_tracks
            WHERE NOT noise AND artist_id IS NOT NULL GROUP BY artist_id, user_id
        )
        GROUP BY artist_id;
        DROP TABLE user_tracks;
        DROP TABLE user_quotients;
        """


def attach_default_attributes(con: duckdb.DuckDBPyConnection) -> None:
    """Without ``track_attributes`` every track is music and has no artist (nobody is professional)."""
    if not sql_script.has_relation(con, "track_attributes"):
        sql_script.run(con, "CREATE OR REPLACE TEMP VIEW track_attributes AS "
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
    """
    attach_default_attributes(con)
    active = "active" if "active" in columns_of(con, "clean_plays") else "false"
    sql_script.run(con, EMPTY_DAY_TABLES)
    if days is None:  # (the caller may know the days without a scan of the plays)
        days = [row[0] for row in con.execute("SELECT DISTINCT day FROM clean_plays ORDER BY day").fetchall()]
    for day in days:
        fault_point("counting")
        _cap_day(con, rules, day, active)
    sql_script.run(con, FLAG_USERS)
    sql_script.run(con, ROLL_UP_USER_TRACKS)
    _share_tracks(con, rules)
    sql_script.run(con, REACH_ARTISTS)
    _stream_users(con, rules)


def _contribution(rules: PayoutRules) -> str:
    """SQL for c_u in pico-cents, from ``billed_users b``: the paid user's net cents times the royalty
    share (pico-cents per cent of revenue), 0 for a free user."""
    share = f"{rules.royalty_share_ppm}::HUGEINT * {PPM}"
    return f"CASE WHEN b.tier = 'paid' THEN b.net_cents * {share} ELSE 0::HUGEINT END"


def _cap_day(con: duckdb.DuckDBPyConnection, rules: PayoutRules, day, active: str) -> None:
    """Rule 1 on one UTC day: each (user, track)'s counted plays, active first, into ``capped_daily``,
    and the users over the daily limit into ``busy_days``."""
    cap = rules.max_daily_plays_per_track
    sql_script.run(
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


def _share_tracks(con: duckdb.DuckDBPyConnection, rules: PayoutRules) -> None:
    """Rule 4's direct shares and ACPS's weights per (segment, track): ``user_quotients``, then
    ``track_shares``."""
    k = "least(music_streams, {c})" if rules.acps_cap_mode == "cap" else "{c}"
    k = k.format(c=rules.acps_user_stream_cap)
    # b(u,t) * K * 10^6 with the professional boost: in 64 bits when the rules bound it there (a
    # (user, track) counts at most 31 days * max_daily_plays_per_track streams), else in 128.
    largest = 31 * rules.max_daily_plays_per_track * rules.acps_active_boost * rules.acps_user_stream_cap * MICRO
    weight_type = "BIGINT" if largest * rules.acps_pro_boost <= BIGINT_MAX else "HUGEINT"
    x = f"((t.streams - t.active) + {rules.acps_active_boost} * t.active)::{weight_type} * k.k * {MICRO}"
    sql_script.run(
        con,
        f"""
        -- Rule 4, floor(c_u * s / S_u), as q * s + floor(r * s / S_u) with c_u = q * S_u + r: one
        -- 128-bit division per user, and 64-bit ones per (user, track) (``lib.payouts.fixed_point``).
        CREATE OR REPLACE TEMP TABLE user_quotients AS
        SELECT user_id, country, tier, total, music_streams, {k}::BIGINT AS k,
               {quotient_and_remainder('contribution', 'total', 'contribution')}
        FROM (
            SELECT t.user_id, b.country, b.tier, t.streams AS total, t.music_streams,
                   {_contribution(rules)} AS contribution
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
        """,
    )


def _stream_users(con: duckdb.DuckDBPyConnection, rules: PayoutRules) -> None:
    """``user_streams``: every billed user of the shard, with their counted streams, whether they
    are flagged and their contribution."""
    sql_script.run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE user_streams AS
        SELECT b.user_id, b.country, b.tier,
               coalesce(t.streams, 0)::BIGINT AS streams,
               f.user_id IS NOT NULL AS flagged,
               {_contribution(rules)} AS contribution_pico
        FROM billed_users b
        LEFT JOIN user_stream_totals t USING (user_id)
        LEFT JOIN flagged_users f USING (user_id);
        DROP TABLE user_stream_totals;
        """,
    )

"""The payout rules (v1) in DuckDB SQL, exactly as ``docs/payout-rules.md`` states them.

Each stage reads views or tables of fixed names from the connection and creates its output tables:

=========================  =============================================  =======================================
stage                      reads                                          creates
=========================  =============================================  =======================================
:func:`count_streams`      ``clean_plays``                                ``counted_streams``, ``flagged_users``
:func:`validate_splits`    ``split_rows``, ``catalog_tracks``             ``track_splits``
:func:`allocate_pools`     ``billed_users``, ``ad_revenue``,              ``segment_pools``, ``track_earnings``
                           ``counted_streams``
:func:`pay_payees`         ``segment_pools``, ``track_earnings``,         ``payee_earnings``
                           ``track_splits``
:func:`roll_statements`    ``payee_earnings``, ``previous_statements``    ``payee_statements``
=========================  =============================================  =======================================

Money is integer pico-cents (10^-12 cent) in ``HUGEINT`` until it is rounded to integer cents once,
per segment and payee. Every division is ``//`` on non-negative integers, i.e. it truncates. No
value ever passes through a float: DuckDB turns ``/`` on integers or DECIMALs into a DOUBLE, so
``/`` does not appear in this module. Pico-cent columns are written to Parquet as
``DECIMAL(38,0)``, because DuckDB writes ``HUGEINT`` to Parquet as a DOUBLE.
"""

from __future__ import annotations

import duckdb

from fairstream_pipeline.lib.payout_rules import PICO_PER_CENT, PPM, SPECIAL_PAYEES, SUSPENSE, UNALLOCATED, PayoutRules

PICO_DECIMAL = "DECIMAL(38,0)"


def _run(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    con.execute(sql).fetchall()


def count_streams(con: duckdb.DuckDBPyConnection, rules: PayoutRules) -> None:
    """Rule 1: qualify, cap per (user, track, UTC day), flag users over the daily limit.

    ``counted_streams(user_id, track_id, streams)`` holds s(u,t) for users who are not flagged;
    ``flagged_users(user_id, worst_day, worst_day_streams)`` the flagged users, with the day of
    their most capped streams (the earliest such day on a tie).
    """
    _run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE capped_daily AS
        SELECT user_id, track_id, CAST(played_at AS DATE) AS day,
               least(count(*), {rules.max_daily_plays_per_track}) AS streams
        FROM clean_plays
        WHERE ms_played >= {rules.min_play_ms}
        GROUP BY ALL
        """,
    )
    _run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE flagged_users AS
        SELECT user_id, day AS worst_day, streams AS worst_day_streams
        FROM (
            SELECT user_id, day, sum(streams)::BIGINT AS streams,
                   row_number() OVER (PARTITION BY user_id ORDER BY sum(streams) DESC, day) AS rank
            FROM capped_daily GROUP BY user_id, day
        )
        WHERE rank = 1 AND streams > {rules.max_daily_streams_per_user}
        ORDER BY user_id
        """,
    )
    _run(
        con,
        """
        CREATE OR REPLACE TEMP TABLE counted_streams AS
        SELECT user_id, track_id, sum(streams)::BIGINT AS streams
        FROM capped_daily ANTI JOIN flagged_users USING (user_id)
        GROUP BY ALL
        ORDER BY user_id, track_id
        """,
    )
    _run(con, "DROP TABLE capped_daily")


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


def allocate_pools(con: duckdb.DuckDBPyConnection, rules: PayoutRules) -> None:
    """Rules 2-6: price each segment's pool and share it among its tracks.

    ``segment_pools`` has one row per (country, tier) with the users, counted streams, the pool in
    pico-cents, the target in cents, the residual R of silent and flagged users, and what goes to
    ``__unallocated__`` under each model. ``track_earnings`` has one row per (segment, track) with
    the segment's counted streams of the track and its user-centric and pro-rata pico-cents.
    """
    share = f"{rules.royalty_share_ppm}::HUGEINT * {PPM}"  # pico-cents per cent of revenue
    _run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE user_shares AS
        SELECT b.user_id, b.country, b.tier,
               CASE WHEN b.tier = 'paid' THEN b.net_cents * {share} ELSE 0::HUGEINT END AS contribution_pico,
               coalesce(t.streams, 0)::BIGINT AS user_streams
        FROM billed_users b
        LEFT JOIN (SELECT user_id, sum(streams) AS streams FROM counted_streams GROUP BY user_id) t
        USING (user_id)
        """,
    )
    _run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE segment_pools AS
        WITH by_users AS (
            SELECT country, tier, count(*) AS users,
                   count(*) FILTER (WHERE user_streams > 0) AS streaming_users,
                   sum(user_streams)::BIGINT AS counted_streams,
                   sum(contribution_pico) AS paid_pool_pico,
                   coalesce(sum(contribution_pico) FILTER (WHERE user_streams = 0), 0) AS silent_pico
            FROM user_shares GROUP BY country, tier
        ),
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
        SELECT country, tier, users, streaming_users, counted_streams, pool_pico,
               (pool_pico // {PICO_PER_CENT})::BIGINT AS target_cents,
               residual_pico,
               CASE WHEN counted_streams = 0 THEN pool_pico
                    WHEN tier = 'paid' AND '{rules.residual_policy}' = 'retain' THEN residual_pico
                    ELSE 0::HUGEINT END AS uc_unallocated_pico,
               CASE WHEN counted_streams = 0 THEN pool_pico ELSE 0::HUGEINT END AS pr_unallocated_pico
        FROM segments
        ORDER BY country, tier
        """,
    )
    redistribute_residual = "true" if rules.residual_policy == "pro_rata" else "false"
    _run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE track_earnings AS
        WITH direct AS (  -- rule 4: each paid user's contribution, split over what they played
            SELECT u.country, u.tier, c.track_id,
                   sum((u.contribution_pico * c.streams) // u.user_streams) AS pico
            FROM counted_streams c JOIN user_shares u USING (user_id)
            WHERE u.tier = 'paid'
            GROUP BY ALL
        ),
        streams AS (
            SELECT u.country, u.tier, c.track_id, sum(c.streams)::BIGINT AS streams
            FROM counted_streams c JOIN user_shares u USING (user_id)
            GROUP BY ALL
        )
        SELECT s.country, s.tier, s.track_id, s.streams,
               CASE WHEN s.tier = 'paid'
                    THEN coalesce(d.pico, 0)
                         + CASE WHEN {redistribute_residual}
                                THEN (p.residual_pico * s.streams) // p.counted_streams ELSE 0 END
                    ELSE (p.pool_pico * s.streams) // p.counted_streams  -- rule 5
               END AS uc_pico,
               (p.pool_pico * s.streams) // p.counted_streams AS pr_pico  -- rule 6
        FROM streams s
        JOIN segment_pools p USING (country, tier)
        LEFT JOIN direct d USING (country, tier, track_id)
        ORDER BY country, tier, track_id
        """,
    )
    _run(con, "DROP TABLE user_shares")


def pay_payees(con: duckdb.DuckDBPyConnection) -> None:
    """Rules 7-8: split each track's money among its payees, then round to cents once.

    Each payee's pico-cents are floored to cents; the cents still missing to reach the segment's
    target go one each to the payees with the largest remainders, ties by ascending ``payee_id``
    (byte order, which is DuckDB's default string order). ``payee_earnings`` has one row per
    (segment, payee) with a non-zero amount.
    """
    _run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE payee_pico AS
        WITH valid_splits AS (SELECT track_id, payee_id, share_ppm FROM track_splits WHERE valid),
        shares AS (
            SELECT e.country, e.tier, s.payee_id,
                   (e.uc_pico * s.share_ppm) // {PPM} AS uc_pico,
                   (e.pr_pico * s.share_ppm) // {PPM} AS pr_pico
            FROM track_earnings e JOIN valid_splits s USING (track_id)
            UNION ALL
            SELECT country, tier, '{SUSPENSE}', uc_pico, pr_pico
            FROM track_earnings ANTI JOIN (SELECT DISTINCT track_id FROM valid_splits) USING (track_id)
            UNION ALL
            SELECT country, tier, '{UNALLOCATED}', uc_unallocated_pico, pr_unallocated_pico
            FROM segment_pools WHERE uc_unallocated_pico > 0 OR pr_unallocated_pico > 0
        )
        SELECT country, tier, payee_id, sum(uc_pico) AS uc_pico, sum(pr_pico) AS pr_pico
        FROM shares GROUP BY ALL
        """,
    )
    rounded = {}
    for model in ("uc", "pr"):
        rounded[model] = f"""
            SELECT country, tier, payee_id,
                   (floor_cents + CASE WHEN rank <= deficit THEN 1 ELSE 0 END)::BIGINT AS {model}_cents
            FROM (
                SELECT p.country, p.tier, p.payee_id,
                       p.{model}_pico // {PICO_PER_CENT} AS floor_cents,
                       row_number() OVER (
                           PARTITION BY p.country, p.tier
                           ORDER BY p.{model}_pico % {PICO_PER_CENT} DESC, p.payee_id
                       ) AS rank,
                       s.target_cents - sum(p.{model}_pico // {PICO_PER_CENT})
                           OVER (PARTITION BY p.country, p.tier) AS deficit
                FROM payee_pico p JOIN segment_pools s USING (country, tier)
            )
        """
    _run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE payee_earnings AS
        SELECT country, tier, payee_id, uc.uc_cents, pr.pr_cents
        FROM ({rounded['uc']}) uc JOIN ({rounded['pr']}) pr USING (country, tier, payee_id)
        WHERE uc.uc_cents <> 0 OR pr.pr_cents <> 0
        ORDER BY country, tier, payee_id
        """,
    )


def roll_statements(con: duckdb.DuckDBPyConnection, rules: PayoutRules) -> None:
    """Rule 9: opening + earned; pay it all when it reaches the threshold, else carry it over.

    ``previous_statements`` is last month's ``payee_statements`` (empty in the first month).
    ``__suspense__`` and ``__unallocated__`` are never paid; their balance accumulates.
    """
    special = ", ".join(f"'{p}'" for p in SPECIAL_PAYEES)
    _run(
        con,
        f"""
        CREATE OR REPLACE TEMP TABLE payee_statements AS
        WITH month AS (
            SELECT payee_id, sum(uc_cents)::BIGINT AS earned, sum(pr_cents)::BIGINT AS pro_rata
            FROM payee_earnings GROUP BY payee_id
        ),
        joined AS (
            SELECT payee_id,
                   coalesce(p.closing_balance_cents, 0)::BIGINT AS opening_balance_cents,
                   coalesce(m.earned, 0)::BIGINT AS earned_cents,
                   coalesce(m.pro_rata, 0)::BIGINT AS pro_rata_cents
            FROM month m FULL OUTER JOIN previous_statements p USING (payee_id)
        )
        SELECT payee_id, opening_balance_cents, earned_cents, pro_rata_cents,
               paid_cents, opening_balance_cents + earned_cents - paid_cents AS closing_balance_cents
        FROM (
            SELECT *,
                   CASE WHEN payee_id NOT IN ({special})
                             AND opening_balance_cents + earned_cents >= {rules.payout_threshold_cents}
                        THEN opening_balance_cents + earned_cents ELSE 0 END::BIGINT AS paid_cents
            FROM joined
        )
        WHERE opening_balance_cents <> 0 OR earned_cents <> 0 OR pro_rata_cents <> 0
        ORDER BY payee_id
        """,
    )


def lake_columns(table: str) -> str:
    """The ``SELECT`` list that writes ``table`` to Parquet without losing a pico-cent."""
    pico = {
        "segment_pools": ("pool_pico", "residual_pico", "uc_unallocated_pico", "pr_unallocated_pico"),
        "track_earnings": ("uc_pico", "pr_pico"),
    }.get(table, ())
    if not pico:
        return "*"
    return f"* REPLACE ({', '.join(f'CAST({c} AS {PICO_DECIMAL}) AS {c}' for c in pico)})"


def lake_view(table: str) -> str:
    """The ``SELECT`` list that reads ``table`` back from Parquet with pico-cents as ``HUGEINT``."""
    return lake_columns(table).replace(PICO_DECIMAL, "HUGEINT")

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
``/`` does not appear in the engine's modules. Pico-cent columns are written to Parquet as
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

:func:`allocate_shard` lives in ``lib.payouts.shard_allocation``, :func:`price_segments` in
``lib.payouts.segment_pricing``; every stage runs its SQL through ``lib.payouts.sql_script``.
"""

from __future__ import annotations

import duckdb

from fairstream_pipeline.lib.payouts import sql_script
from fairstream_pipeline.lib.payouts.fixed_point import quotient_and_remainder, scaled_floor_div
from fairstream_pipeline.lib.payouts.rules import (
    NO_PAYMENT_DETAILS,
    PICO_PER_CENT,
    PPM,
    SPECIAL_PAYEES,
    SUSPENSE,
    UNALLOCATED,
    PayoutRules,
)
from fairstream_pipeline.lib.payouts.segment_pricing import price_segments
from fairstream_pipeline.lib.payouts.shard_allocation import allocate_shard


def validate_splits(con: duckdb.DuckDBPyConnection) -> None:
    """Rule 7 (validity): a track's splits are valid when its payees are distinct, every share is
    > 0 and the shares sum to exactly 1,000,000.

    ``track_splits(track_id, payee_id, share_ppm, valid, problem)`` keeps every split row with its
    track's verdict, plus one row (``payee_id`` null) for each catalog track without split rows.
    """
    sql_script.run(
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
    sql_script.run(con, "DROP TABLE IF EXISTS track_shares; DROP TABLE artist_reach")


# Rules 7-8 number the payees by id (the special payees included) and the segments by country and tier.
NUMBER_PAYEES_AND_SEGMENTS = f"""
        CREATE OR REPLACE TEMP TABLE valid_splits AS
        SELECT track_id, payee_id, share_ppm FROM track_splits WHERE valid;
        CREATE OR REPLACE TEMP TABLE payee_codes AS
        SELECT (row_number() OVER (ORDER BY payee_id) - 1)::INTEGER AS payee_index, payee_id
        FROM (SELECT payee_id FROM valid_splits UNION SELECT '{SUSPENSE}' UNION SELECT '{UNALLOCATED}');
        CREATE OR REPLACE TEMP TABLE segment_codes AS
        SELECT (row_number() OVER (ORDER BY country, tier) - 1)::INTEGER AS segment_index, country, tier, target_cents
        FROM segment_pools;
        """


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
    sql_script.run(con, NUMBER_PAYEES_AND_SEGMENTS)
    _split_track_money(con)
    _round_to_cents(con)


def _split_track_money(con: duckdb.DuckDBPyConnection) -> None:
    """Rule 7: ``payee_pico``, each (segment, payee)'s pico-cents under each model: a valid track's
    money by its shares, the rest of the tracks' to ``__suspense__``, what no stream claimed to
    ``__unallocated__``."""
    sql_script.run(
        con,
        f"""
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


def _rounded_cents_sql(model: str) -> str:
    """Rule 8 for ``model`` (``uc``, ``pr``, ``acps``): ``(segment_index, payee_index,
    {model}_cents)``, floored, plus one cent each for the largest remainders up to the target."""
    return f"""
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


def _round_to_cents(con: duckdb.DuckDBPyConnection) -> None:
    """Rule 8 under the three models, then the ids back: ``payee_earnings``."""
    rounded = {model: _rounded_cents_sql(model) for model in ("uc", "pr", "acps")}
    sql_script.run(
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
    sql_script.run(
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

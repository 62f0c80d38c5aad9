"""Money checks, computed from the inputs rather than from the engine's own intermediates.

The segment targets are recomputed here from ``billed_users`` and ``ad_revenue``, so a corrupted
``segment_pools`` or ``track_earnings`` cannot vouch for itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from fairstream_pipeline.lib.payouts.rules import (
    ARTIST_CENTRIC,
    HOLD_REASONS,
    PAYOUT_MODELS,
    PRO_RATA,
    NO_PAYMENT_DETAILS,
    PICO_PER_CENT,
    PPM,
    SPECIAL_PAYEES,
    SUSPENSE,
)

MODELS = ("uc", "pr", "acps")  # the cents columns of payee_earnings: user-centric, pro-rata, ACPS v1


@dataclass(frozen=True)
class Finding:
    """The outcome of one check: ``problems`` lists offending rows (empty when it passed)."""

    checked: int
    problems: list[tuple]

    @property
    def passed(self) -> bool:
        return not self.problems


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def expected_targets_sql(royalty_share_ppm: int) -> str:
    """Every segment's target in cents, straight from ``billed_users`` and ``ad_revenue``."""
    return f"""
        SELECT country, tier, (sum(pool) // {PICO_PER_CENT})::BIGINT AS target_cents FROM (
            SELECT country, tier,
                   CASE WHEN tier = 'paid' THEN net_cents::HUGEINT * {royalty_share_ppm} * {PPM}
                        ELSE 0::HUGEINT END AS pool
            FROM billed_users
            UNION ALL
            SELECT country, 'free', net_cents::HUGEINT * {royalty_share_ppm} * {PPM} FROM ad_revenue
        ) GROUP BY country, tier
    """


def segments_reconcile(con: duckdb.DuckDBPyConnection, model: str, royalty_share_ppm: int) -> Finding:
    """Per segment, the payees' ``{model}_cents`` sum exactly to the target recomputed from inputs.

    Problems are ``(country, tier, expected_cents, actual_cents)``.
    """
    rows = _rows(
        con,
        f"""
        SELECT coalesce(t.country, e.country), coalesce(t.tier, e.tier),
               coalesce(t.target_cents, 0), coalesce(e.cents, 0)
        FROM ({expected_targets_sql(royalty_share_ppm)}) t
        FULL OUTER JOIN (
            SELECT country, tier, sum({model}_cents)::BIGINT AS cents FROM payee_earnings GROUP BY ALL
        ) e ON t.country = e.country AND t.tier = e.tier
        ORDER BY 1, 2
        """,
    )
    return Finding(len(rows), [r for r in rows if r[2] != r[3]])


def no_negative_earnings(con: duckdb.DuckDBPyConnection) -> Finding:
    """No payee has a negative amount under any model."""
    checked = _rows(con, "SELECT count(*) FROM payee_earnings")[0][0]
    problems = _rows(
        con,
        "SELECT country, tier, payee_id, uc_cents, pr_cents, acps_cents FROM payee_earnings "
        "WHERE uc_cents < 0 OR pr_cents < 0 OR acps_cents < 0 ORDER BY 1, 2, 3 LIMIT 20",
    )
    return Finding(checked, problems)


def model_totals(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """The month's total in cents under each model (``uc``, ``pr``, ``acps``)."""
    row = _rows(con, f"SELECT {', '.join(f'coalesce(sum({m}_cents), 0)::BIGINT' for m in MODELS)} FROM payee_earnings")[0]
    return dict(zip(MODELS, row))


def model_totals_finding(con: duckdb.DuckDBPyConnection, royalty_share_ppm: int) -> Finding:
    """Each model's total equals the month's target (the sum of the segment targets recomputed from
    the inputs): the three models share the same money. Problems are ``(model, target, total)``."""
    (target,) = _rows(con, f"SELECT coalesce(sum(target_cents), 0)::BIGINT FROM ({expected_targets_sql(royalty_share_ppm)})")[0]
    totals = model_totals(con)
    return Finding(len(totals), [(f"{m}_cents", target, total) for m, total in totals.items() if total != target])


def statements_balance(con: duckdb.DuckDBPyConnection, threshold_cents: int, standing: bool | None = False) -> Finding:
    """Every statement: opening + earned + adjustment - paid = closing; earned (the cents of the
    statement's ``payout_model``, one per month), pro-rata and ACPS equal the payee's ``payee_earnings`` and the adjustment the sum of their ``payee_adjustments``; openings
    equal last month's closings; nothing but a closing balance (a clawback) is negative; special
    payees are never paid; a payment is the whole balance and reaches the threshold; a payee due a
    payment who is not paid is held, with a known ``hold_reason``, and nobody else has one.

    ``standing`` (rule 10): True when the view ``payment_standing`` says who can be paid (each hold
    must then be exactly its reason, and nobody it holds is paid); False when the landing zone has no
    payment details (nobody may be held); None to skip that comparison (a closed month, checked
    against its closed bytes instead). Problems are ``(payee_id, what is wrong)``.
    """
    problems = _rows(con, _statement_problems_sql(threshold_cents, standing))
    missing = _rows(
        con,
        """SELECT payee_id, 'payee has earnings, an adjustment or a balance but no statement' FROM (
               SELECT payee_id FROM payee_earnings WHERE uc_cents <> 0 OR pr_cents <> 0 OR acps_cents <> 0
               UNION SELECT payee_id FROM payee_adjustments WHERE cents <> 0
               UNION SELECT payee_id FROM previous_statements WHERE closing_balance_cents <> 0)
           ANTI JOIN payee_statements USING (payee_id) ORDER BY payee_id LIMIT 20""",
    )
    checked = _rows(con, "SELECT count(*) FROM payee_statements")[0][0]
    return Finding(checked, problems + missing)


def _statement_problems_sql(threshold_cents: int, standing: bool | None) -> str:
    """The first 20 statements of ``payee_statements`` that do not balance against their inputs, as
    ``(payee_id, problem)`` (:func:`statements_balance`)."""
    special = ", ".join(f"'{p}'" for p in SPECIAL_PAYEES)
    reasons = ", ".join(f"'{r}'" for r in HOLD_REASONS)
    models = ", ".join(f"'{m}'" for m in PAYOUT_MODELS)
    is_due = f"(payee_id NOT IN ({special}) AND due >= {threshold_cents} AND due > 0)"
    standing_join = "LEFT JOIN payment_standing ps USING (payee_id)" if standing else ""
    expected_hold = (
        f"CASE WHEN ps.payee_id IS NULL THEN '{NO_PAYMENT_DETAILS}' ELSE ps.hold_reason END" if standing else "NULL"
    )
    standing_problem = (
        "" if standing is None else
        f"""WHEN {is_due} AND hold_reason IS DISTINCT FROM expected_hold
                    THEN 'hold_reason ' || coalesce(hold_reason, 'null') || ' but the payment details say '
                         || coalesce(expected_hold, 'payable')"""
    )
    return f"""
        WITH earned AS (
            SELECT payee_id, sum(uc_cents)::BIGINT AS uc, sum(pr_cents)::BIGINT AS pr,
                   sum(acps_cents)::BIGINT AS acps
            FROM payee_earnings GROUP BY payee_id
        ),
        adjusted AS (SELECT payee_id, sum(cents)::BIGINT AS cents FROM payee_adjustments GROUP BY payee_id),
        s AS (
            SELECT st.*,
                   coalesce(CASE st.payout_model WHEN '{PRO_RATA}' THEN e.pr WHEN '{ARTIST_CENTRIC}' THEN e.acps
                                 ELSE e.uc END, 0) AS expected_earned,
                   coalesce(e.pr, 0) AS expected_pr, coalesce(e.acps, 0) AS expected_acps,
                   coalesce(a.cents, 0) AS expected_adjustment,
                   coalesce(p.closing_balance_cents, 0) AS expected_opening,
                   st.opening_balance_cents + st.earned_cents + st.adjustment_cents AS due,
                   {expected_hold} AS expected_hold
            FROM payee_statements st
            LEFT JOIN earned e USING (payee_id)
            LEFT JOIN adjusted a USING (payee_id)
            LEFT JOIN previous_statements p USING (payee_id)
            {standing_join}
        )
        SELECT payee_id, problem FROM (
            SELECT payee_id, CASE
                WHEN due - paid_cents <> closing_balance_cents
                    THEN 'opening + earned + adjustment - paid <> closing'
                WHEN least(earned_cents, pro_rata_cents, acps_cents, paid_cents) < 0
                    THEN 'negative earned, pro-rata, ACPS or paid'
                WHEN earned_cents <> expected_earned THEN 'earned differs from payee_earnings'
                WHEN pro_rata_cents <> expected_pr THEN 'pro_rata differs from payee_earnings'
                WHEN acps_cents <> expected_acps THEN 'acps differs from payee_earnings'
                WHEN payout_model NOT IN ({models}) THEN 'unknown payout_model ' || payout_model
                WHEN min(payout_model) OVER () <> max(payout_model) OVER () THEN 'two payout models in one month'
                WHEN adjustment_cents <> expected_adjustment THEN 'adjustment differs from payee_adjustments'
                WHEN opening_balance_cents <> expected_opening THEN 'opening differs from last closing'
                WHEN paid_cents > 0 AND payee_id IN ({special}) THEN 'a special payee was paid'
                WHEN paid_cents > 0 AND (closing_balance_cents <> 0 OR paid_cents < {threshold_cents})
                    THEN 'a payment must be the whole balance and reach the threshold'
                WHEN hold_reason IS NOT NULL AND hold_reason NOT IN ({reasons})
                    THEN 'unknown hold_reason ' || hold_reason
                WHEN hold_reason IS NOT NULL AND (paid_cents <> 0 OR NOT {is_due})
                    THEN 'a hold_reason on a payee who was paid or not due a payment'
                WHEN paid_cents = 0 AND {is_due} AND hold_reason IS NULL
                    THEN 'a balance at or over the threshold was not paid'
                {standing_problem}
            END AS problem FROM s
        ) WHERE problem IS NOT NULL ORDER BY payee_id LIMIT 20
        """


def held_cents(con: duckdb.DuckDBPyConnection, column: str = "uc_cents") -> tuple[int, int]:
    """The month's cents of the paying model (``column`` of ``payee_earnings``, user-centric by
    default) held in ``__suspense__`` + ``__unallocated__``, and its total."""
    if column not in {f"{m}_cents" for m in MODELS}:
        raise ValueError(f"not a model's cents column of payee_earnings: {column!r}")
    special = ", ".join(f"'{p}'" for p in SPECIAL_PAYEES)
    held, total = _rows(
        con,
        f"""SELECT coalesce(sum({column}) FILTER (WHERE payee_id IN ({special})), 0)::BIGINT,
                   coalesce(sum({column}), 0)::BIGINT FROM payee_earnings""",
    )[0]
    return held, total


def held_share_ok(held: int, total: int, max_held_share_ppm: int) -> bool:
    """held / total <= max_held_share_ppm / 10^6, compared in integers."""
    return held * PPM <= max_held_share_ppm * total


def revenue_without_streams(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int, int]:
    """(paying users, their net cents, ad net cents, counted streams) from ``billed_users``,
    ``ad_revenue`` and ``segment_pools``: a month with revenue and no counted stream cannot be right."""
    return _rows(
        con,
        """SELECT (SELECT count(*) FILTER (WHERE net_cents > 0) FROM billed_users),
                  (SELECT coalesce(sum(net_cents), 0)::BIGINT FROM billed_users),
                  (SELECT coalesce(sum(net_cents), 0)::BIGINT FROM ad_revenue),
                  (SELECT coalesce(sum(counted_streams), 0)::BIGINT FROM segment_pools)""",
    )[0]


def suspense_tracks(con: duckdb.DuckDBPyConnection, limit: int = 10) -> list[tuple[str, str, int, int]]:
    """The tracks whose money goes to ``__suspense__``, largest user-centric amount first, with why:
    (track_id, reason, counted streams, user-centric cents before rounding, floored). Reads
    ``track_earnings`` and ``track_splits``; a played track absent from ``track_splits`` is not in
    the catalog."""
    return _rows(
        con,
        f"""
        WITH verdicts AS (
            SELECT track_id, bool_or(valid) AS valid, min(problem) AS problem FROM track_splits GROUP BY track_id
        )
        SELECT e.track_id, coalesce(v.problem, 'not in the catalog') AS reason,
               sum(e.streams)::BIGINT AS streams, (sum(e.uc_pico) // {PICO_PER_CENT})::BIGINT AS uc_cents
        FROM track_earnings e LEFT JOIN verdicts v USING (track_id)
        WHERE v.valid IS NULL OR NOT v.valid
        GROUP BY e.track_id, v.problem
        ORDER BY sum(e.uc_pico) DESC, e.track_id LIMIT {int(limit)}
        """,
    )


def suspense_cents(con: duckdb.DuckDBPyConnection) -> int:
    """The month's user-centric cents in ``__suspense__`` (from ``payee_earnings``)."""
    return _rows(
        con, f"SELECT coalesce(sum(uc_cents), 0)::BIGINT FROM payee_earnings WHERE payee_id = '{SUSPENSE}'"
    )[0][0]


def payees_without_email(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """The payees named in ``track_splits`` whom ``payee_directory`` gives no email address, by id:
    ``(payee_id, 'not in payees.parquet')`` or ``(payee_id, 'no email')`` (empty or blank)."""
    return _rows(
        con,
        """SELECT s.payee_id, CASE WHEN d.payee_id IS NULL THEN 'not in payees.parquet' ELSE 'no email' END
           FROM (SELECT DISTINCT payee_id FROM track_splits WHERE payee_id IS NOT NULL) s
           LEFT JOIN payee_directory d USING (payee_id)
           WHERE d.payee_id IS NULL OR d.email IS NULL OR trim(d.email) = ''
           ORDER BY s.payee_id""",
    )

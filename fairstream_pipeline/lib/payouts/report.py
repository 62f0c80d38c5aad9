"""What a finance reviewer reads about a month: user-centric, pro-rata and artist-centric side by
side, in integer cents."""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb

from fairstream_pipeline.lib.assets import PAYEE_DIRECTORY
from fairstream_pipeline.lib.format import percent, percent_number
from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.lake.tables import Rows, first_rows
from fairstream_pipeline.lib.payouts.rules import (
    ARTIST_CENTRIC,
    PAYOUT_MODELS,
    PICO_PER_CENT,
    PRO_RATA,
    SPECIAL_PAYEES,
    USER_CENTRIC,
)


MODEL_LABELS = {USER_CENTRIC: "user-centric", PRO_RATA: "pro-rata", ARTIST_CENTRIC: "artist-centric"}
MODEL_ABBREVIATIONS = {USER_CENTRIC: "UC", PRO_RATA: "PR", ARTIST_CENTRIC: "ACPS"}


def model_label(model: str) -> str:
    """A payout model as a reader reads it: ``user-centric``, ``pro-rata``, ``artist-centric``."""
    return MODEL_LABELS[model]


@dataclass(frozen=True)
class PayeeChange:
    """One payee under two models: what ``model`` pays compared with ``baseline`` (user-centric
    against pro-rata, or artist-centric against user-centric)."""

    payee_id: str
    name: str | None
    cents: int  # under the model
    baseline_cents: int  # under the baseline

    @property
    def change_cents(self) -> int:
        return self.cents - self.baseline_cents

    @property
    def change_percent(self) -> str:
        """The change in percent of the baseline (``n/a`` for a payee the baseline pays nothing)."""
        return percent(self.change_cents, self.baseline_cents)


@dataclass(frozen=True)
class ModelComparison:
    uc_total_cents: int
    pr_total_cents: int
    payees: int
    top_1pct_payees: int
    uc_top_1pct_cents: int  # the top 1% ranked by user-centric, their user-centric cents
    pr_top_1pct_cents: int  # the top 1% ranked by pro-rata, their pro-rata cents
    special_cents: dict[str, tuple[int, int, int]]  # payee -> (uc, pr, acps) cents, in PAYOUT_MODELS order
    top_payees: list[tuple[str, int, int, int]]  # (payee_id, uc, pr, acps), by the paying model's cents desc
    pr_top_1pct_uc_cents: int = 0  # the top 1% ranked by pro-rata, their user-centric cents
    names: dict[str, str] = field(default_factory=dict)  # payee_id -> name, for the payees listed here
    winners: list[PayeeChange] = field(default_factory=list)  # UC against PR: biggest UC - PR first
    losers: list[PayeeChange] = field(default_factory=list)  # most negative UC - PR first
    acps_total_cents: int = 0
    acps_top_1pct_cents: int = 0  # the top 1% ranked by artist-centric, their artist-centric cents
    acps_winners: list[PayeeChange] = field(default_factory=list)  # ACPS against UC: biggest ACPS - UC first
    acps_losers: list[PayeeChange] = field(default_factory=list)  # most negative ACPS - UC first
    paying_model: str = USER_CENTRIC  # whose cents the month's statements earn (PayoutRules.payout_model)

    @property
    def moved_share_points(self) -> float | None:
        """How much of the month's money the top 1% of payees by pro-rata lose under user-centric,
        in percentage points: their PR share minus their UC share (positive: UC moves money away
        from the most streamed)."""
        pr, uc = (percent_number(c, self.pr_total_cents) for c in (self.pr_top_1pct_cents, self.pr_top_1pct_uc_cents))
        return None if pr is None or uc is None else round(pr - uc, 2)

    def total_cents(self, model: str) -> int:
        """The month's cents under ``model`` (special payees included)."""
        totals = (self.uc_total_cents, self.pr_total_cents, self.acps_total_cents)
        return totals[PAYOUT_MODELS.index(model)]

    def top_1pct_cents(self, model: str) -> int:
        """What the top 1% of payees ranked by ``model`` earn under ``model``."""
        tops = (self.uc_top_1pct_cents, self.pr_top_1pct_cents, self.acps_top_1pct_cents)
        return tops[PAYOUT_MODELS.index(model)]

    def held_cents(self, model: str) -> int:
        """What the special payees (suspense, unallocated) hold under ``model``: never paid."""
        return sum(self.special_under(model).values())

    def special_under(self, model: str) -> dict[str, int]:
        """Each special payee's cents under ``model``."""
        return {payee: amounts[PAYOUT_MODELS.index(model)] for payee, amounts in self.special_cents.items()}


def compare_models(
    con: duckdb.DuckDBPyConnection, top: int = 10, names_view: str | None = None, paying_model: str = USER_CENTRIC
) -> ModelComparison:
    """Totals, the top payees, the share of the top 1% of payees under each model (user-centric,
    pro-rata, artist-centric), and the biggest winners and losers of user-centric against pro-rata
    and of artist-centric against user-centric, from ``payee_earnings``.

    The top 1% is ``ceil(1% of real payees)``, ranked separately under each model (ties by
    ``payee_id``); the moved share holds the pro-rata top 1% fixed and compares their two shares.
    The top payees are ranked by ``paying_model``, the model whose cents the month pays.
    The special payees (suspense, unallocated) are reported on their own and never ranked.
    ``names_view`` (``payee_id``, ``name``), when given, names the payees listed.
    """
    if paying_model not in PAYOUT_MODELS:
        raise ValueError(f"paying_model must be one of {', '.join(PAYOUT_MODELS)}, got {paying_model!r}")
    special = ", ".join(f"'{p}'" for p in SPECIAL_PAYEES)
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE payee_totals AS
        SELECT payee_id, sum(uc_cents)::BIGINT AS uc, sum(pr_cents)::BIGINT AS pr, sum(acps_cents)::BIGINT AS acps
        FROM payee_earnings GROUP BY payee_id
        """
    ).fetchall()
    uc_total, pr_total, acps_total = con.execute(
        "SELECT coalesce(sum(uc), 0)::BIGINT, coalesce(sum(pr), 0)::BIGINT, coalesce(sum(acps), 0)::BIGINT "
        "FROM payee_totals"
    ).fetchall()[0]
    payees = con.execute(f"SELECT count(*) FROM payee_totals WHERE payee_id NOT IN ({special})").fetchall()[0][0]
    top_n = -(-payees // 100)  # ceil(1%)
    (uc_top,), (pr_top_uc, pr_top), (acps_top,) = _top_1pct_cents(con, special, top_n)
    specials = {
        payee: (uc, pr, acps)
        for payee, uc, pr, acps in con.execute(
            f"SELECT payee_id, uc, pr, acps FROM payee_totals WHERE payee_id IN ({special}) ORDER BY payee_id"
        ).fetchall()
    }
    ranked_by = {USER_CENTRIC: "uc", PRO_RATA: "pr", ARTIST_CENTRIC: "acps"}[paying_model]
    top_payees = con.execute(
        f"""SELECT payee_id, uc, pr, acps FROM payee_totals WHERE payee_id NOT IN ({special})
            ORDER BY {ranked_by} DESC, payee_id LIMIT {top}"""
    ).fetchall()
    changes = _biggest_changes(con, special, top)
    con.execute("DROP TABLE payee_totals").fetchall()
    listed = sorted({p for p, *_ in top_payees} | {p for rows in changes.values() for p, *_ in rows})
    names = _payee_names(con, names_view, listed)
    winners, losers, acps_winners, acps_losers = (
        [PayeeChange(p, names.get(p), cents, baseline) for p, cents, baseline in changes[key]]
        for key in (("uc", "pr", "DESC"), ("uc", "pr", "ASC"), ("acps", "uc", "DESC"), ("acps", "uc", "ASC"))
    )
    return ModelComparison(
        uc_total_cents=uc_total,
        pr_total_cents=pr_total,
        payees=payees,
        top_1pct_payees=top_n,
        uc_top_1pct_cents=uc_top,
        pr_top_1pct_cents=pr_top,
        special_cents=specials,
        top_payees=top_payees,
        pr_top_1pct_uc_cents=pr_top_uc,
        names=names,
        winners=winners,
        losers=losers,
        acps_total_cents=acps_total,
        acps_top_1pct_cents=acps_top,
        acps_winners=acps_winners,
        acps_losers=acps_losers,
        paying_model=paying_model,
    )


def _top_1pct_cents(con: duckdb.DuckDBPyConnection, special: str, top_n: int) -> list[tuple]:
    """What the top ``top_n`` real payees of ``payee_totals`` earn, ranked by each model: (UC,), (UC,
    PR) of the pro-rata top, (ACPS,)."""
    return [
        con.execute(
            f"""SELECT {columns} FROM (
                    SELECT uc, pr, acps FROM payee_totals WHERE payee_id NOT IN ({special})
                    ORDER BY {model} DESC, payee_id LIMIT {top_n})"""
        ).fetchall()[0]
        for model, columns in (
            ("uc", "coalesce(sum(uc), 0)::BIGINT"),
            ("pr", "coalesce(sum(uc), 0)::BIGINT, coalesce(sum(pr), 0)::BIGINT"),
            ("acps", "coalesce(sum(acps), 0)::BIGINT"),
        )
    ]


def _biggest_changes(con: duckdb.DuckDBPyConnection, special: str, top: int) -> dict[tuple[str, str, str], list[tuple]]:
    """(model, baseline, direction) -> the ``top`` real payees of ``payee_totals`` whose ``model``
    cents gain most (DESC) or lose most (ASC) against ``baseline``: (payee_id, model cents,
    baseline cents); UC against PR and ACPS against UC."""
    return {
        (model, baseline, direction): con.execute(
            f"""SELECT payee_id, {model}, {baseline} FROM payee_totals
                WHERE payee_id NOT IN ({special}) AND {model} {'>' if direction == 'DESC' else '<'} {baseline}
                ORDER BY {model} - {baseline} {direction}, payee_id LIMIT {top}"""
        ).fetchall()
        for model, baseline in (("uc", "pr"), ("acps", "uc"))
        for direction in ("DESC", "ASC")
    }


def _payee_names(con: duckdb.DuckDBPyConnection, names_view: str | None, payees: list[str]) -> dict[str, str]:
    """payee_id -> name of the ``payees`` that ``names_view`` names (none without a view)."""
    if not names_view or not payees:
        return {}
    return dict(
        con.execute(
            f"SELECT payee_id, name FROM {names_view} WHERE payee_id IN (SELECT unnest(?)) AND name IS NOT NULL",
            [payees],
        ).fetchall()
    )


@dataclass(frozen=True)
class StatementSummary:
    """A month's statements in totals: what is paid, what carries over, what is held."""

    payees: int
    paid_payees: int
    paid_cents: int
    carried_payees: int  # real payees below the threshold with a positive balance to carry
    carried_cents: int
    negative_payees: int  # real payees owing money (a clawback carried over)
    negative_cents: int
    held_cents: int  # what the special payees (suspense, unallocated) hold, never paid
    opening_cents: int
    earned_cents: int
    adjustment_cents: int
    adjusted_payees: int
    due_held_payees: int  # rule 10: payees due a payment but held (no or invalid details, a returned payment)
    due_held_cents: int


def summarize_statements(con: duckdb.DuckDBPyConnection) -> StatementSummary:
    """Totals of the ``payee_statements`` view; the special payees count only as held."""
    special = ", ".join(f"'{p}'" for p in SPECIAL_PAYEES)
    row = con.execute(
        f"""SELECT count(*) FILTER (WHERE NOT held),
                   count(*) FILTER (WHERE NOT held AND paid_cents > 0),
                   coalesce(sum(paid_cents), 0)::BIGINT,
                   count(*) FILTER (WHERE NOT held AND paid_cents = 0 AND closing_balance_cents > 0
                                          AND hold_reason IS NULL),
                   coalesce(sum(closing_balance_cents) FILTER (WHERE NOT held AND closing_balance_cents > 0
                                                               AND hold_reason IS NULL), 0)::BIGINT,
                   count(*) FILTER (WHERE NOT held AND closing_balance_cents < 0),
                   coalesce(sum(closing_balance_cents) FILTER (WHERE NOT held AND closing_balance_cents < 0), 0)::BIGINT,
                   coalesce(sum(closing_balance_cents) FILTER (WHERE held), 0)::BIGINT,
                   coalesce(sum(opening_balance_cents), 0)::BIGINT,
                   coalesce(sum(earned_cents), 0)::BIGINT,
                   coalesce(sum(adjustment_cents), 0)::BIGINT,
                   count(*) FILTER (WHERE adjustment_cents <> 0),
                   count(*) FILTER (WHERE hold_reason IS NOT NULL),
                   coalesce(sum(closing_balance_cents) FILTER (WHERE hold_reason IS NOT NULL), 0)::BIGINT
            FROM (SELECT *, payee_id IN ({special}) AS held FROM payee_statements)"""
    ).fetchall()[0]
    return StatementSummary(*row)


def carried_over(
    con: duckdb.DuckDBPyConnection, names_view: str, negative: bool = False, limit: int = 20
) -> list[tuple]:
    """Real payees whose balance carries over, largest first: below the threshold (positive), or
    owing money (``negative``); held payees are :func:`held_payees`'. Rows: (payee_id, name,
    opening, earned, adjustment, closing)."""
    special = ", ".join(f"'{p}'" for p in SPECIAL_PAYEES)
    return con.execute(
        f"""SELECT s.payee_id, n.name, s.opening_balance_cents, s.earned_cents, s.adjustment_cents,
                   s.closing_balance_cents
            FROM payee_statements s LEFT JOIN {names_view} n USING (payee_id)
            WHERE s.payee_id NOT IN ({special}) AND s.paid_cents = 0 AND s.hold_reason IS NULL
              AND s.closing_balance_cents {'<' if negative else '>'} 0
            ORDER BY abs(s.closing_balance_cents) DESC, s.payee_id LIMIT {int(limit)}"""
    ).fetchall()


def held_payees(con: duckdb.DuckDBPyConnection, names_view: str, limit: int = 20) -> list[tuple]:
    """Payees due a payment but held (rule 10), largest first: (payee_id, name, hold_reason, closing)."""
    return con.execute(
        f"""SELECT s.payee_id, n.name, s.hold_reason, s.closing_balance_cents
            FROM payee_statements s LEFT JOIN {names_view} n USING (payee_id)
            WHERE s.hold_reason IS NOT NULL
            ORDER BY s.closing_balance_cents DESC, s.payee_id LIMIT {int(limit)}"""
    ).fetchall()


def holds_by_reason(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int, int]]:
    """Held payees per ``hold_reason``: (reason, payees, cents held)."""
    return con.execute(
        """SELECT hold_reason, count(*), sum(closing_balance_cents)::BIGINT FROM payee_statements
           WHERE hold_reason IS NOT NULL GROUP BY 1 ORDER BY 1"""
    ).fetchall()


def largest_adjustments(con: duckdb.DuckDBPyConnection, names_view: str, limit: int = 20) -> list[tuple]:
    """The month's ``payee_adjustments``, largest first: (payee_id, name, source_month, reason, cents)."""
    return con.execute(
        f"""SELECT a.payee_id, n.name, a.source_month, a.reason, a.cents
            FROM payee_adjustments a LEFT JOIN {names_view} n USING (payee_id)
            ORDER BY abs(a.cents) DESC, a.payee_id, a.source_month, a.reason LIMIT {int(limit)}"""
    ).fetchall()


def adjustments_by_source(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Per source month of ``payee_adjustments``: payees, net, credits and debits in cents."""
    return con.execute(
        """SELECT source_month, count(*), sum(cents)::BIGINT,
                  coalesce(sum(cents) FILTER (WHERE cents > 0), 0)::BIGINT,
                  coalesce(sum(cents) FILTER (WHERE cents < 0), 0)::BIGINT
           FROM payee_adjustments GROUP BY 1 ORDER BY 1"""
    ).fetchall()


def attach_payee_names(con: duckdb.DuckDBPyConnection, lake: Lake, month: str, view: str = "payee_names") -> str:
    """A view (``payee_id``, ``name``) of the month's ``payee_directory``, empty when the month has
    none (statements rolled from earnings alone): names are shown when known, never required."""
    source = (
        f"SELECT payee_id, name FROM {read_parquet(lake.parquet_glob(PAYEE_DIRECTORY, month))}"
        if lake.exists(PAYEE_DIRECTORY, month)
        else "SELECT NULL::VARCHAR AS payee_id, NULL::VARCHAR AS name WHERE false"
    )
    con.execute(f"CREATE OR REPLACE VIEW {view} AS {source}").fetchall()
    return view


# The catalog snapshot, the counted streams and the segments, as the UI shows them ---------------


def tracks_by_verdict(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    """Tracks of ``track_splits`` per verdict (``valid``, or why not), most tracks first."""
    return con.execute(
        """SELECT coalesce(problem, 'valid'), count(DISTINCT track_id) FROM track_splits
           GROUP BY ALL ORDER BY 2 DESC, 1"""
    ).fetchall()


def invalid_tracks(con: duckdb.DuckDBPyConnection, limit: int = 20) -> Rows:
    """The first tracks of ``track_splits`` whose splits are invalid, by id: track_id, problem, and
    their split rows' payees and shares."""
    return first_rows(
        con,
        "SELECT track_id, problem, list(payee_id) AS payees, list(share_ppm) AS shares "
        "FROM track_splits WHERE NOT valid GROUP BY track_id, problem ORDER BY track_id",
        limit,
    )


def directory_without_email(con: duckdb.DuckDBPyConnection) -> int:
    """How many payees of ``payee_directory`` have no email address (null or empty)."""
    return con.execute("SELECT count(*) FROM payee_directory WHERE email IS NULL OR email = ''").fetchall()[0][0]


@dataclass(frozen=True)
class StreamTotals:
    """The users of ``user_streams`` and their counted streams."""

    users: int
    counted_streams: int
    streaming_users: int  # with at least one counted stream
    flagged_users: int


def stream_totals(con: duckdb.DuckDBPyConnection) -> StreamTotals:
    """Totals of ``user_streams`` (a shard's, or the month's)."""
    return StreamTotals(
        *con.execute(
            """SELECT count(*), coalesce(sum(streams), 0)::BIGINT, count(*) FILTER (WHERE streams > 0),
                      count(*) FILTER (WHERE flagged) FROM user_streams"""
        ).fetchall()[0]
    )


def flagged_users_preview(con: duckdb.DuckDBPyConnection, limit: int = 20) -> Rows:
    """The first rows of ``flagged_users``, the busiest worst day first."""
    return first_rows(con, "SELECT * FROM flagged_users ORDER BY worst_day_streams DESC", limit)


def segment_summary(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, int, int, int, int, int]]:
    """Each segment of ``segment_pools`` by country and tier: (country, tier, users, counted
    streams, target cents, residual cents, user-centric unallocated cents), pico-cents floored."""
    return con.execute(
        f"""SELECT country, tier, users, counted_streams, target_cents,
                   (residual_pico // {PICO_PER_CENT})::BIGINT, (uc_unallocated_pico // {PICO_PER_CENT})::BIGINT
            FROM segment_pools ORDER BY country, tier"""
    ).fetchall()

"""What a finance reviewer reads about a month: user-centric beside pro-rata, in integer cents."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from fairstream_pipeline.lib.payout_rules import SPECIAL_PAYEES


def percent(part: int, whole: int) -> str:
    """``part / whole`` as a percentage with two decimals, computed in integers (truncated)."""
    if whole == 0:
        return "n/a"
    sign = "-" if (part < 0) != (whole < 0) and part != 0 else ""
    basis_points = abs(part) * 10_000 // abs(whole)
    return f"{sign}{basis_points // 100}.{basis_points % 100:02d}%"


def cents(amount: int) -> str:
    """Integer cents as ``1,234.56`` (EUR)."""
    sign = "-" if amount < 0 else ""
    whole, rest = divmod(abs(amount), 100)
    return f"{sign}{whole:,}.{rest:02d}"


@dataclass(frozen=True)
class ModelComparison:
    uc_total_cents: int
    pr_total_cents: int
    payees: int
    top_1pct_payees: int
    uc_top_1pct_cents: int
    pr_top_1pct_cents: int
    special_cents: dict[str, tuple[int, int]]
    top_payees: list[tuple[str, int, int]]  # (payee_id, uc_cents, pr_cents), by uc desc


def compare_models(con: duckdb.DuckDBPyConnection, top: int = 10) -> ModelComparison:
    """Totals, the top payees, and the share of the top 1% of payees, from ``payee_earnings``.

    The top 1% is ``ceil(1% of real payees)``, ranked separately under each model; the special
    payees (suspense, unallocated) are reported on their own and never ranked.
    """
    special = ", ".join(f"'{p}'" for p in SPECIAL_PAYEES)
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE payee_totals AS
        SELECT payee_id, sum(uc_cents)::BIGINT AS uc, sum(pr_cents)::BIGINT AS pr
        FROM payee_earnings GROUP BY payee_id
        """
    ).fetchall()
    uc_total, pr_total = con.execute(
        "SELECT coalesce(sum(uc), 0)::BIGINT, coalesce(sum(pr), 0)::BIGINT FROM payee_totals"
    ).fetchall()[0]
    payees = con.execute(f"SELECT count(*) FROM payee_totals WHERE payee_id NOT IN ({special})").fetchall()[0][0]
    top_n = -(-payees // 100)  # ceil(1%)
    uc_top, pr_top = (
        con.execute(
            f"""SELECT coalesce(sum({model}), 0)::BIGINT FROM (
                    SELECT {model} FROM payee_totals WHERE payee_id NOT IN ({special})
                    ORDER BY {model} DESC, payee_id LIMIT {top_n})"""
        ).fetchall()[0][0]
        for model in ("uc", "pr")
    )
    specials = {
        payee: (uc, pr)
        for payee, uc, pr in con.execute(
            f"SELECT payee_id, uc, pr FROM payee_totals WHERE payee_id IN ({special}) ORDER BY payee_id"
        ).fetchall()
    }
    top_payees = con.execute(
        f"""SELECT payee_id, uc, pr FROM payee_totals WHERE payee_id NOT IN ({special})
            ORDER BY uc DESC, payee_id LIMIT {top}"""
    ).fetchall()
    con.execute("DROP TABLE payee_totals").fetchall()
    return ModelComparison(
        uc_total_cents=uc_total,
        pr_total_cents=pr_total,
        payees=payees,
        top_1pct_payees=top_n,
        uc_top_1pct_cents=uc_top,
        pr_top_1pct_cents=pr_top,
        special_cents=specials,
        top_payees=top_payees,
    )

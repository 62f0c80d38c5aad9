"""The Markdown the UI shows for payee earnings and statements, exactly, on a tiny hand-made month:
money in EUR, names beside ids, the special payees and table cells read literally."""

from fairstream_pipeline.lib.payouts.earnings_markdown import (
    acps_winners_and_losers,
    models_summary,
    top_payees_table,
    winners_and_losers,
)
from fairstream_pipeline.lib.payouts.report import ModelComparison, PayeeChange, StatementSummary
from fairstream_pipeline.lib.payouts.statements_markdown import (
    adjustment_audit,
    adjustments_table,
    balances_table,
    held_markdown,
    statement_summary_markdown,
)

COMPARISON = ModelComparison(
    uc_total_cents=10_000,
    pr_total_cents=10_000,
    payees=2,
    top_1pct_payees=1,
    uc_top_1pct_cents=6_000,
    pr_top_1pct_cents=7_000,
    special_cents={"__suspense__": (500, 500, 500), "__unallocated__": (0, 0, 100)},
    top_payees=[("A", 6_000, 7_000, 5_000), ("B|x", 3_500, 2_500, 4_400)],
    pr_top_1pct_uc_cents=6_000,
    names={"A": "Ana"},
    winners=[PayeeChange("B|x", None, 3_500, 2_500)],
    losers=[PayeeChange("A", "Ana", 6_000, 7_000)],
    acps_total_cents=10_000,
    acps_top_1pct_cents=5_000,
    acps_winners=[PayeeChange("B|x", None, 4_400, 3_500)],
    acps_losers=[PayeeChange("A", "Ana", 5_000, 6_000)],
)


def test_the_models_side_by_side():
    assert models_summary(COMPARISON) == (
        "Paid under **user-centric** (payout_model user\\_centric): **100.00 EUR** over 2 payees; the other "
        "two models are comparisons.\n\n"
        "|  | user-centric (pays) | pro-rata | artist-centric |\n"
        "|---|---|---|---|\n"
        "| total | 100.00 EUR | 100.00 EUR | 100.00 EUR |\n"
        "| top 1% of payees (1) hold | 60.00% | 70.00% | 50.00% |\n"
        "| held, never paid | 5.00 EUR | 5.00 EUR | 6.00 EUR |\n\n"
        "The top 1% of payees by pro-rata (1) hold 70.00% of the money pro-rata and 60.00% user-centric: "
        "**10.00 points** move to other payees under user-centric.\n\n"
        "Held, never paid (user-centric): \\_\\_suspense\\_\\_ 5.00 EUR, \\_\\_unallocated\\_\\_ 0.00 EUR "
        "(5.00% of the money)."
    )
    assert top_payees_table(COMPARISON) == (
        "| payee | user-centric | pro-rata | UC - PR | artist-centric | ACPS - UC |\n"
        "|---|---|---|---|---|---|\n"
        "| Ana (A) | 60.00 EUR | 70.00 EUR | -10.00 EUR | 50.00 EUR | -10.00 EUR |\n"
        "| B\\|x | 35.00 EUR | 25.00 EUR | 10.00 EUR | 44.00 EUR | 9.00 EUR |"
    )


def test_winners_and_losers_under_each_comparison():
    assert winners_and_losers(COMPARISON) == (
        "**Gain most under user-centric** (EUR)\n\n"
        "| payee | user-centric | pro-rata | UC - PR | UC - PR (% of PR) |\n"
        "|---|---|---|---|---|\n"
        "| B\\|x | 35.00 EUR | 25.00 EUR | 10.00 EUR | 40.00% |\n\n"
        "**Lose most under user-centric** (EUR)\n\n"
        "| payee | user-centric | pro-rata | UC - PR | UC - PR (% of PR) |\n"
        "|---|---|---|---|---|\n"
        "| Ana (A) | 60.00 EUR | 70.00 EUR | -10.00 EUR | -14.28% |"
    )
    assert acps_winners_and_losers(COMPARISON) == (
        "**Gain most under artist-centric**, against user-centric (EUR)\n\n"
        "| payee | artist-centric | user-centric | ACPS - UC | ACPS - UC (% of UC) |\n"
        "|---|---|---|---|---|\n"
        "| B\\|x | 44.00 EUR | 35.00 EUR | 9.00 EUR | 25.71% |\n\n"
        "**Lose most under artist-centric**, against user-centric (EUR)\n\n"
        "| payee | artist-centric | user-centric | ACPS - UC | ACPS - UC (% of UC) |\n"
        "|---|---|---|---|---|\n"
        "| Ana (A) | 50.00 EUR | 60.00 EUR | -10.00 EUR | -16.66% |"
    )


def test_the_statements_in_a_paragraph():
    summary = StatementSummary(
        payees=3, paid_payees=1, paid_cents=12_345, carried_payees=1, carried_cents=99, negative_payees=1,
        negative_cents=-250, held_cents=600, opening_cents=1_000, earned_cents=11_000, adjustment_cents=-56,
        adjusted_payees=2, due_held_payees=1, due_held_cents=4_200,
    )
    assert statement_summary_markdown(summary, 5_000) == (
        "**Paid 123.45 EUR** to 1 of 3 payees.\n\n"
        "Carried over below the 50.00 EUR threshold: 0.99 EUR for 1 payees. Held although due (no valid "
        "payment details, or a returned payment): 42.00 EUR for 1 payees. Negative balances (clawbacks, "
        "recovered from future earnings): 1, -2.50 EUR.\n\n"
        "Opening balances 10.00 EUR, earned 110.00 EUR, adjustments -0.56 EUR for 2 payees. Held for "
        "\\_\\_suspense\\_\\_ and \\_\\_unallocated\\_\\_, never paid: 6.00 EUR."
    )


def test_balances_and_holds():
    assert balances_table([("P1", "Nina Sky", 50, 49, 0, 99), ("__suspense__", None, 100, 500, 0, 600)]) == (
        "| payee | opening | earned | adjustment | closing (carried over) |\n"
        "|---|---|---|---|---|\n"
        "| Nina Sky (P1) | 0.50 EUR | 0.49 EUR | 0.00 EUR | 0.99 EUR |\n"
        "| \\_\\_suspense\\_\\_ | 1.00 EUR | 5.00 EUR | 0.00 EUR | 6.00 EUR |"
    )
    assert held_markdown(True, [("no_payment_details", 1, 4_200)], [("P2", None, "no_payment_details", 4_200)]) == (
        "| hold reason | payees | held |\n"
        "|---|---|---|\n"
        "| no\\_payment\\_details | 1 | 42.00 EUR |\n\n"
        "**Largest held balances** (paid once the payee's details are valid)\n\n"
        "| payee | hold reason | balance |\n"
        "|---|---|---|\n"
        "| P2 | no\\_payment\\_details | 42.00 EUR |"
    )
    assert held_markdown(True, [], []) == "Nobody is held: every payee due a payment has valid payment details."
    assert held_markdown(False, [], []) == (
        "Payment details are not managed for this landing zone (no catalog/payment_details.parquet): nobody is held."
    )


def test_adjustments_and_their_audit():
    assert adjustments_table([("P1", "Nina Sky", "2024-01", "late_data", -56)]) == (
        "| payee | source month | reason | adjustment |\n"
        "|---|---|---|---|\n"
        "| Nina Sky (P1) | 2024-01 | late\\_data | -0.56 EUR |"
    )
    assert adjustments_table([]) == "No adjustments this month."
    audit = [{
        "source_month": "2024-01",
        "closed_at": "2024-02-02T10:00:00+00:00",
        "restated_by_run": "0123456789abcdef",
        "restated_at": "2024-03-01T04:00:00+00:00",
        "landing_at_close": "abc",
        "landing_now": "def",
        "changed_files": [{"path": "events/2024-01-31/part-0.parquet", "change": "added", "at_close": None, "now": "f00d"}],
    }]
    assert adjustment_audit(audit, [("2024-01", 1, -56, 0, -56)]) == (
        "| source month | closed at | restated by run | restated at | landing at close -\\> now | payees | net "
        "| credits | debits |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
        "| 2024-01 | 2024-02-02T10:00:00+00:00 | [01234567](/runs/0123456789abcdef) | 2024-03-01T04:00:00+00:00 "
        "| abc -\\> def | 1 | -0.56 EUR | 0.00 EUR | -0.56 EUR |\n\n"
        "**Landing files changed in 2024-01 since its close** (reason: late data for 2024-01)\n\n"
        "| file | change | fingerprint at close | fingerprint now |\n"
        "|---|---|---|---|\n"
        "| events/2024-01-31/part-0.parquet | added |  | f00d |"
    )
    assert adjustment_audit([], []) == "No closed month was restated: nothing to adjust."

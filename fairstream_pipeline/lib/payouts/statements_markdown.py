"""The statements and adjustments as the UI shows them: the month in a paragraph, the carried-over,
held and adjusted balances, and the audit of restated months, in EUR (Markdown for the metadata of
``payee_statements`` and ``payee_adjustments``)."""

from __future__ import annotations

from fairstream_pipeline.lib.markdown import Markdown, markdown_table, md_text, payee_label
from fairstream_pipeline.lib.format import eur
from fairstream_pipeline.lib.payouts.report import StatementSummary


def statement_summary_markdown(s: StatementSummary, threshold_cents: int) -> str:
    """The month's statements in one paragraph, in EUR."""
    return (
        f"**Paid {eur(s.paid_cents)}** to {s.paid_payees:,} of {s.payees:,} payees.\n\n"
        f"Carried over below the {eur(threshold_cents)} threshold: {eur(s.carried_cents)} "
        f"for {s.carried_payees:,} payees. Held although due (no valid payment details, or a returned "
        f"payment): {eur(s.due_held_cents)} for {s.due_held_payees:,} payees. Negative balances (clawbacks, recovered from future "
        f"earnings): {s.negative_payees:,}, {eur(s.negative_cents)}.\n\n"
        f"Opening balances {eur(s.opening_cents)}, earned {eur(s.earned_cents)}, adjustments "
        f"{eur(s.adjustment_cents)} for {s.adjusted_payees:,} payees. Held for {md_text('__suspense__')} and "
        f"{md_text('__unallocated__')}, never paid: {eur(s.held_cents)}."
    )


def held_markdown(configured: bool, by_reason: list[tuple], held: list[tuple]) -> str:
    """Who is due a payment but held (rule 10), by reason and largest first, in EUR."""
    if not configured:
        return "Payment details are not managed for this landing zone (no catalog/payment_details.parquet): nobody is held."
    if not by_reason:
        return "Nobody is held: every payee due a payment has valid payment details."
    return (
        markdown_table(["hold reason", "payees", "held"], [(r, f"{n:,}", eur(c)) for r, n, c in by_reason])
        + "\n\n**Largest held balances** (paid once the payee's details are valid)\n\n"
        + markdown_table(["payee", "hold reason", "balance"], [(payee_label(p, name), r, eur(c)) for p, name, r, c in held])
    )


def balances_table(rows: list[tuple]) -> str:
    """Balances carried over: ``(payee, name, opening, earned, adjustment, closing)`` rows, in EUR."""
    return markdown_table(
        ["payee", "opening", "earned", "adjustment", "closing (carried over)"],
        [(payee_label(p, name), eur(o), eur(e), eur(a), eur(c)) for p, name, o, e, a, c in rows],
    )


def adjustments_table(adjustments: list[tuple]) -> str:
    """The largest adjustments: ``(payee, name, source month, reason, cents)`` rows, in EUR."""
    if not adjustments:
        return "No adjustments this month."
    return markdown_table(
        ["payee", "source month", "reason", "adjustment"],
        [(payee_label(p, name), source, reason, eur(amount)) for p, name, source, reason, amount in adjustments],
    )


def adjustment_audit(audit: list[dict], by_source: list[tuple]) -> str:
    """For each restated month: who restated it, the landing files that changed, what it posts."""
    if not audit:
        return "No closed month was restated: nothing to adjust."
    totals = {source: row for source, *row in by_source}
    parts = [
        markdown_table(
            ["source month", "closed at", "restated by run", "restated at", "landing at close -> now", "payees",
             "net", "credits", "debits"],
            [
                (a["source_month"], a["closed_at"], Markdown(f"[{a['restated_by_run'][:8]}](/runs/{a['restated_by_run']})"),
                 a["restated_at"], f"{a['landing_at_close']} -> {a['landing_now']}", totals[a["source_month"]][0],
                 eur(totals[a["source_month"]][1]), eur(totals[a["source_month"]][2]),
                 eur(totals[a["source_month"]][3]))
                for a in audit
            ],
        )
    ]
    for a in audit:
        parts.append(f"\n**Landing files changed in {a['source_month']} since its close** (reason: late data for {a['source_month']})\n")
        parts.append(
            markdown_table(
                ["file", "change", "fingerprint at close", "fingerprint now"],
                [(f["path"], f["change"], f["at_close"], f["now"]) for f in a["changed_files"]],
            )
            if a["changed_files"]
            else "No landing file changed: the month was recomputed with other inputs (catalog or code)."
        )
    return "\n".join(parts)

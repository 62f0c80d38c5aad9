"""The payee earnings as the UI shows them: the three payout models side by side, in EUR, with the
payees' names (Markdown for ``payee_earnings``' metadata)."""

from __future__ import annotations

from fairstream_pipeline.lib.markdown import markdown_table, md_text, payee_label
from fairstream_pipeline.lib.format import eur, percent
from fairstream_pipeline.lib.payouts.report import (
    MODEL_ABBREVIATIONS,
    ModelComparison,
    PayeeChange,
    model_label,
)
from fairstream_pipeline.lib.payouts.rules import PAYOUT_MODELS


def payee_changes_table(changes: list[PayeeChange], model: str = "user_centric", baseline: str = "pro_rata") -> str:
    """Payees under ``model`` against ``baseline`` (payout models, e.g. ``artist_centric``), in EUR."""
    short = MODEL_ABBREVIATIONS
    change = f"{short[model]} - {short[baseline]}"
    return markdown_table(
        ["payee", model_label(model), model_label(baseline), change, f"{change} (% of {short[baseline]})"],
        [(payee_label(c.payee_id, c.name), eur(c.cents), eur(c.baseline_cents), eur(c.change_cents), c.change_percent)
         for c in changes],
    )


def models_summary(c: ModelComparison) -> str:
    """Which model pays and how much, the three models' totals, what the top 1% hold and what is
    held, never paid."""
    paying = c.paying_model
    held = c.held_cents(paying)
    moved = c.moved_share_points
    models = markdown_table(
        ["", *(f"{model_label(m)} (pays)" if m == paying else model_label(m) for m in PAYOUT_MODELS)],
        [
            ("total", *(eur(c.total_cents(m)) for m in PAYOUT_MODELS)),
            (f"top 1% of payees ({c.top_1pct_payees:,}) hold",
             *(percent(c.top_1pct_cents(m), c.total_cents(m)) for m in PAYOUT_MODELS)),
            ("held, never paid", *(eur(c.held_cents(m)) for m in PAYOUT_MODELS)),
        ],
    )
    return (
        f"Paid under **{model_label(paying)}** (payout_model {md_text(paying)}): **{eur(c.total_cents(paying))}** "
        f"over {c.payees:,} payees; the other two models are comparisons.\n\n"
        f"{models}\n\n"
        f"The top 1% of payees by pro-rata ({c.top_1pct_payees:,}) hold "
        f"{percent(c.pr_top_1pct_cents, c.pr_total_cents)} of the money pro-rata and "
        f"{percent(c.pr_top_1pct_uc_cents, c.uc_total_cents)} user-centric: "
        + (f"**{moved:.2f} points** move to other payees under user-centric." if moved is not None else "no money.")
        + f"\n\nHeld, never paid ({model_label(paying)}): "
        + (", ".join(f"{md_text(p)} {eur(cents)}" for p, cents in c.special_under(paying).items()) or "nothing")
        + f" ({percent(held, c.total_cents(paying))} of the money)."
    )


def top_payees_table(c: ModelComparison) -> str:
    """The largest payees under the three models, with the differences between them, in EUR."""
    return markdown_table(
        ["payee", "user-centric", "pro-rata", "UC - PR", "artist-centric", "ACPS - UC"],
        [(payee_label(p, c.names.get(p)), eur(uc), eur(pr), eur(uc - pr), eur(acps), eur(acps - uc))
         for p, uc, pr, acps in c.top_payees],
    )


def winners_and_losers(c: ModelComparison) -> str:
    """Who gains and who loses most under user-centric against pro-rata."""
    return (
        f"**Gain most under user-centric** (EUR)\n\n{payee_changes_table(c.winners)}\n\n"
        f"**Lose most under user-centric** (EUR)\n\n{payee_changes_table(c.losers)}"
    )


def acps_winners_and_losers(c: ModelComparison) -> str:
    """Who gains and who loses most under artist-centric against user-centric."""
    return (
        "**Gain most under artist-centric**, against user-centric (EUR)\n\n"
        f"{payee_changes_table(c.acps_winners, 'artist_centric', 'user_centric')}\n\n"
        "**Lose most under artist-centric**, against user-centric (EUR)\n\n"
        f"{payee_changes_table(c.acps_losers, 'artist_centric', 'user_centric')}"
    )

"""The monthly statement email: subject, text and HTML bodies (Jinja2 templates in ``templates/``),
the CSV of lines, a stable Message-ID. It shows what the three payout models (user-centric,
pro-rata, artist-centric) give the payee for the month, and names the one that paid."""

from __future__ import annotations

import calendar
import csv
import functools
import hashlib
import html
import io
from dataclasses import dataclass
from pathlib import Path

import jinja2
import markupsafe

from fairstream_pipeline.lib.months import parse_month
from fairstream_pipeline.lib.notifications.message import Message
from fairstream_pipeline.lib.format import cents
from fairstream_pipeline.lib.payouts.report import model_label
from fairstream_pipeline.lib.payouts.rules import (
    ARTIST_CENTRIC,
    MODEL_COLUMNS,
    PAYOUT_MODELS,
    PRO_RATA,
    USER_CENTRIC,
)

STATEMENT_KIND = "monthly_statement"
TEMPLATES = Path(__file__).parent / "templates"  # statement.txt.j2, statement.html.j2


LINE_MODELS = (USER_CENTRIC, PRO_RATA, ARTIST_CENTRIC)  # the order of a line's cents


@dataclass(frozen=True)
class Statement:
    """One payee's closed statement; the fields in the order of ``closed_statements.statement_rows``."""

    month: str
    payee_id: str
    name: str | None
    email: str | None
    opening_balance_cents: int
    earned_cents: int  # under payout_model
    pro_rata_cents: int
    acps_cents: int  # artist-centric (ACPS v1); 0 in months computed before rules v4
    paid_cents: int
    closing_balance_cents: int
    payout_model: str  # the model whose cents are earned_cents (user_centric before rules v4)
    lines: tuple[tuple[str, str, int, int, int], ...]  # (country, tier, uc_cents, pr_cents, acps_cents)
    adjustment_cents: int = 0
    # (source_month, cents, reason): late_data (a restated closed month) or returned_payment
    adjustments: tuple[tuple[str, int, str], ...] = ()
    hold_reason: str | None = None  # rule 10: why a payee due a payment was not paid

    def __post_init__(self) -> None:
        if self.payout_model not in PAYOUT_MODELS:
            raise ValueError(f"payout_model must be one of {', '.join(PAYOUT_MODELS)}, got {self.payout_model!r}")

    def model_cents(self, model: str) -> int:
        """The month's cents under ``model``: ``earned_cents`` under the paying model, and the
        statement's figure for the other two (user-centric, which a statement of another model
        does not keep, is the sum of its lines)."""
        if model == self.payout_model:
            return self.earned_cents
        if model == USER_CENTRIC:
            return sum(line[2] for line in self.lines)
        return {PRO_RATA: self.pro_rata_cents, ARTIST_CENTRIC: self.acps_cents}[model]


def message_id(month: str, payee_id: str, kind: str, domain: str) -> str:
    """The same (month, payee, kind) always gives the same Message-ID, so a resend is recognisable."""
    digest = hashlib.sha256(f"{month}\0{payee_id}\0{kind}".encode()).hexdigest()[:24]
    return f"<{kind}.{month}.{digest}@{domain}>"


def month_title(month: str) -> str:
    first = parse_month(month)
    return f"{calendar.month_name[first.month]} {first.year}"


def adjustment_reason(source_month: str, reason: str = "late_data") -> str:
    """Why an adjustment was posted, in words: a restated (late-data) closed month, or a payment
    the bank returned, credited back."""
    if reason == "returned_payment":
        return f"payment for {source_month} returned by the bank, credited back"
    return f"late data for {source_month}"


# What a held payee reads (rule 10): why they were not paid and what to do. Never a bank detail.
HOLD_MESSAGES = {
    "no_payment_details": (
        "we have no bank details for you. Add your IBAN in your FairStream account: your balance is "
        "paid with the first statement after that"
    ),
    "invalid_payment_details": (
        "the bank details we have for you are not valid (the IBAN or the BIC is wrong). Correct them in "
        "your FairStream account: your balance is paid with the first statement after that"
    ),
    "returned_payment": (
        "your bank returned our last payment, so it was credited back to your balance. Check and update "
        "your bank details in your FairStream account: your balance is paid with the first statement after that"
    ),
}


# How each model shares the money, in the words a payee reads.
MODEL_HOW = {
    USER_CENTRIC: "each subscriber's money goes only to what they listened to",
    PRO_RATA: "each pool is shared by stream count",
    ARTIST_CENTRIC: (
        "each pool is shared by weighted streams, in which plays a listener chose and streams of "
        "professional artists weigh more and noise weighs nothing"
    ),
}
MODEL_ADVERBS = {USER_CENTRIC: "user-centrically", PRO_RATA: "pro-rata", ARTIST_CENTRIC: "artist-centrically"}


def model_explanation(paying: str) -> str:
    """The footer: how the paying model shares the money, and what the other figures are."""
    others = [m for m in PAYOUT_MODELS if m != paying]
    return (
        f"FairStream paid you {MODEL_ADVERBS[paying]} this month: {MODEL_HOW[paying]}. The "
        + " and ".join(model_label(m) for m in others)
        + " figures show what the other models would have paid you: "
        + "; ".join(f"under {model_label(m)}, {MODEL_HOW[m]}" for m in others)
        + "."
    )


def render_statement(statement: Statement, threshold_cents: int, domain: str) -> Message:
    """The email for one payee's statement (bodies from the templates): amounts in EUR from integer
    cents, formatted in Python (the templates' ``money`` filter), never floats."""
    s = statement
    title = month_title(s.month)
    if s.paid_cents:
        payment = f"Paid this month: {cents(s.paid_cents)} EUR."
    elif s.hold_reason:
        payment = f"Not paid this month: your balance of {cents(s.closing_balance_cents)} EUR is held because {HOLD_MESSAGES[s.hold_reason]}."
    elif s.closing_balance_cents < 0:
        payment = (
            f"Not paid this month: your balance is negative ({cents(s.closing_balance_cents)} EUR) after "
            "adjustments for earlier months; it will be recovered from your future earnings."
        )
    else:
        payment = (
            f"Not paid this month: your balance is below the {cents(threshold_cents)} EUR payout "
            "threshold and carries over to next month."
        )
    context = {
        "greeting": f"Hello {s.name}," if s.name else "Hello,",
        "title": title,
        "payee_id": s.payee_id,
        "rows": [
            (f"Earned this month ({model_label(s.payout_model)})", s.earned_cents),
            *(
                (f"{model_label(m).capitalize()} would have paid", s.model_cents(m))
                for m in PAYOUT_MODELS
                if m != s.payout_model
            ),
            ("Opening balance", s.opening_balance_cents),
            *([("Adjustments for earlier months", s.adjustment_cents)] if s.adjustments else []),
            ("Paid this month", s.paid_cents),
            ("Closing balance", s.closing_balance_cents),
        ],
        "adjustments": [
            {"title": month_title(source), "reason": adjustment_reason(source, reason), "cents": amount}
            for source, amount, reason in s.adjustments
        ],
        "payment": payment,
        "paid_under": model_label(s.payout_model),
        "explanation": model_explanation(s.payout_model),
        "line_count": len(s.lines),
    }
    text_template, html_template = _templates()
    return Message(
        month=s.month,
        payee_id=s.payee_id,
        kind=STATEMENT_KIND,
        recipient=(s.email or "").strip() or None,
        subject=f"Your FairStream statement for {title}",
        body_text=text_template.render(context),
        body_html=html_template.render(context),
        attachment_name=f"fairstream-statement-{s.month}-{_safe(s.payee_id)}.csv",
        attachment_csv=_statement_csv(s),
        message_id=message_id(s.month, s.payee_id, STATEMENT_KIND, domain),
    )


def _statement_csv(s: Statement) -> str:
    """The attachment: the statement's earned lines (cents under each model), then its
    adjustments, whose cents are in the paying model's column."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = [MODEL_COLUMNS[m] for m in LINE_MODELS]
    writer.writerow(["month", "payee_id", "line", "source_month", "country", "tier", *columns, "reason"])
    writer.writerows((s.month, s.payee_id, "earned", s.month, *line, "") for line in s.lines)
    writer.writerows(
        (s.month, s.payee_id, "adjustment", source, "", "",
         *(amount if m == s.payout_model else "" for m in LINE_MODELS), adjustment_reason(source, reason))
        for source, amount, reason in s.adjustments
    )
    return buffer.getvalue()


@jinja2.pass_eval_context
def _escape_like_html_module(eval_ctx, value):
    """Autoescape with ``html.escape`` (``&quot;``, ``&#x27;``), as the bodies always were, not
    MarkupSafe's ``&#34;``/``&#39;``: the same bytes for every name."""
    if eval_ctx.autoescape and not hasattr(value, "__html__"):
        return markupsafe.Markup(html.escape(str(value)))
    return value


@functools.cache
def _templates() -> tuple[jinja2.Template, jinja2.Template]:
    """The text and HTML templates, loaded once (HTML autoescaped, undefined names are errors)."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html.j2"]),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
        finalize=_escape_like_html_module,
        auto_reload=False,
    )
    environment.filters["money"] = cents
    return environment.get_template("statement.txt.j2"), environment.get_template("statement.html.j2")


def _safe(payee_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in payee_id)


STATEMENT_CSV_FOLDER = "statements"


def write_statement_csvs(messages: list, folder: Path) -> Path:
    """Each message's CSV attachment (its statement lines) as a file of its own in
    ``folder/statements/``, named as attached; the reviewer opens them from the UI's path."""
    target = Path(folder) / STATEMENT_CSV_FOLDER
    target.mkdir(parents=True, exist_ok=True)
    for message in messages:
        (target / message.attachment_name).write_text(message.attachment_csv, encoding="utf-8")
    return target

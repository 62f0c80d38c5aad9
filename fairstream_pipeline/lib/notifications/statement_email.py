"""The monthly statement email: subject, text and HTML bodies (Jinja2 templates in ``templates/``),
the CSV of lines, a stable Message-ID."""

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
from fairstream_pipeline.lib.payouts.report import cents

STATEMENT_KIND = "monthly_statement"
TEMPLATES = Path(__file__).parent / "templates"  # statement.txt.j2, statement.html.j2


@dataclass(frozen=True)
class Statement:
    month: str
    payee_id: str
    name: str | None
    email: str | None
    opening_balance_cents: int
    earned_cents: int
    pro_rata_cents: int
    paid_cents: int
    closing_balance_cents: int
    lines: tuple[tuple[str, str, int, int], ...]  # (country, tier, uc_cents, pr_cents)
    adjustment_cents: int = 0
    # (source_month, cents, reason): late_data (a restated closed month) or returned_payment
    adjustments: tuple[tuple[str, int, str], ...] = ()
    hold_reason: str | None = None  # rule 10: why a payee due a payment was not paid


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
            ("Earned this month (user-centric)", s.earned_cents),
            ("Pro-rata would have paid", s.pro_rata_cents),
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
    """The attachment: the statement's earned lines, then its adjustments."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["month", "payee_id", "line", "source_month", "country", "tier", "uc_cents", "pr_cents", "reason"])
    writer.writerows((s.month, s.payee_id, "earned", s.month, *line, "") for line in s.lines)
    writer.writerows(
        (s.month, s.payee_id, "adjustment", source, "", "", amount, "", adjustment_reason(source, reason))
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

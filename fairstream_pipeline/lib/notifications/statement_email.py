"""The monthly statement email: subject, text and HTML bodies, the CSV of lines, a stable Message-ID."""

from __future__ import annotations

import calendar
import csv
from pathlib import Path
import hashlib
import html
import io
from dataclasses import dataclass

from fairstream_pipeline.lib.months import parse_month
from fairstream_pipeline.lib.payouts.report import cents

STATEMENT_KIND = "monthly_statement"


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
    adjustments: tuple[tuple[str, int], ...] = ()  # (source_month, cents): restated closed months


@dataclass(frozen=True)
class Message:
    month: str
    payee_id: str
    kind: str
    recipient: str | None  # None: the payee has no email address (status no_address)
    subject: str
    body_text: str
    body_html: str
    attachment_name: str
    attachment_csv: str
    message_id: str

    @property
    def status(self) -> str:
        return "pending" if self.recipient else "no_address"

    def as_row(self) -> tuple:
        return (
            self.month, self.payee_id, self.kind, self.recipient, self.subject, self.body_text,
            self.body_html, self.attachment_name, self.attachment_csv, self.message_id, self.status,
        )


def message_id(month: str, payee_id: str, kind: str, domain: str) -> str:
    """The same (month, payee, kind) always gives the same Message-ID, so a resend is recognisable."""
    digest = hashlib.sha256(f"{month}\0{payee_id}\0{kind}".encode()).hexdigest()[:24]
    return f"<{kind}.{month}.{digest}@{domain}>"


def month_title(month: str) -> str:
    first = parse_month(month)
    return f"{calendar.month_name[first.month]} {first.year}"


def adjustment_reason(source_month: str) -> str:
    """Why an adjustment was posted: the only cause today is a restated (late-data) closed month."""
    return f"late data for {source_month}"


def render_statement(statement: Statement, threshold_cents: int, domain: str) -> Message:
    """The email for one payee's statement: amounts in EUR from integer cents, never floats."""
    s = statement
    title = month_title(s.month)
    if s.paid_cents:
        payment = f"Paid this month: {cents(s.paid_cents)} EUR."
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
    rows = [
        ("Earned this month (user-centric)", s.earned_cents),
        ("Pro-rata would have paid", s.pro_rata_cents),
        ("Opening balance", s.opening_balance_cents),
        *([("Adjustments for earlier months", s.adjustment_cents)] if s.adjustments else []),
        ("Paid this month", s.paid_cents),
        ("Closing balance", s.closing_balance_cents),
    ]
    adjustment_lines = [
        f"  {month_title(source)} ({adjustment_reason(source)}): {cents(amount)} EUR" for source, amount in s.adjustments
    ]
    greeting = f"Hello {s.name}," if s.name else "Hello,"
    text = "\n".join(
        [
            greeting,
            "",
            f"Here is your FairStream royalty statement for {title} (payee {s.payee_id}).",
            "",
            *[f"{label + ':':<34}{cents(amount):>14} EUR" for label, amount in rows],
            "",
            *(["Adjustments posted this month:", *adjustment_lines, ""] if adjustment_lines else []),
            payment,
            "",
            "FairStream pays user-centrically: each subscriber's money goes only to what they listened",
            "to. The pro-rata figure shows what a pool shared by stream count would have paid you.",
            f"The attached CSV lists your earnings by country and tier ({len(s.lines)} lines)"
            + (f" and the {len(s.adjustments)} adjustment(s)." if s.adjustments else "."),
            "",
        ]
    )
    table = "".join(
        f"<tr><td>{html.escape(label)}</td><td style=\"text-align:right\">{cents(amount)} EUR</td></tr>"
        for label, amount in rows
    )
    body_html = (
        "<html><body>"
        f"<p>{html.escape(greeting)}</p>"
        f"<p>Here is your FairStream royalty statement for {html.escape(title)} "
        f"(payee {html.escape(s.payee_id)}).</p>"
        f"<table>{table}</table>"
        + (
            "<p>Adjustments posted this month:</p><ul>"
            + "".join(f"<li>{html.escape(line.strip())}</li>" for line in adjustment_lines)
            + "</ul>"
            if adjustment_lines
            else ""
        )
        + f"<p><strong>{html.escape(payment)}</strong></p>"
        "<p>FairStream pays user-centrically: each subscriber's money goes only to what they "
        "listened to. The pro-rata figure shows what a pool shared by stream count would have paid you.</p>"
        "</body></html>"
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["month", "payee_id", "line", "source_month", "country", "tier", "uc_cents", "pr_cents", "reason"])
    writer.writerows((s.month, s.payee_id, "earned", s.month, *line, "") for line in s.lines)
    writer.writerows(
        (s.month, s.payee_id, "adjustment", source, "", "", amount, "", adjustment_reason(source))
        for source, amount in s.adjustments
    )
    return Message(
        month=s.month,
        payee_id=s.payee_id,
        kind=STATEMENT_KIND,
        recipient=(s.email or "").strip() or None,
        subject=f"Your FairStream statement for {title}",
        body_text=text,
        body_html=body_html,
        attachment_name=f"fairstream-statement-{s.month}-{_safe(s.payee_id)}.csv",
        attachment_csv=buffer.getvalue(),
        message_id=message_id(s.month, s.payee_id, STATEMENT_KIND, domain),
    )


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

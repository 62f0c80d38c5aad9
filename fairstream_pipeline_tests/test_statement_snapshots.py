"""Statement emails pinned byte for byte: the rendered fields, and the MIME message as recipients see it.

The snapshots in ``snapshots/statement_email/`` were written by the code before the templates and
``EmailMessage`` (``python -m fairstream_pipeline_tests.test_statement_snapshots`` rewrites them).
The rendered subject, bodies, CSV, attachment name and Message-ID are compared exactly. The MIME
message is compared as a recipient sees it: the headers' decoded values (Date only as a current UTC time),
the part tree, and each part's content type, charset, disposition, filename and decoded content,
exactly. Boundaries, transfer encodings, header order and folding are NOT compared: they may differ.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import default
from pathlib import Path

import pytest

from fairstream_pipeline.lib.notifications.mime_message import build_message, render
from fairstream_pipeline.lib.notifications.statement_email import (
    Statement,
    render_statement,
)

SNAPSHOTS = Path(__file__).parent / "snapshots" / "statement_email"
MAIL_FROM = "FairStream Statements <statements@fairstream.test>"
DOMAIN = "statements.example"
THRESHOLD = 1000
LINES = (("DE", "premium", 70, 66, 61), ("FR", "free", 23, 73, 80), ("FR", "paid", 1200, 1500, 1350))
UC, PR, ACPS = "user_centric", "pro_rata", "artist_centric"
STATEMENTS = {
    "paid": (Statement("2026-10", "artist-7", "Ana Lua", "ana@example.org", 250, 123_456_789, 98_765_432, 110_000_000,
                       123_457_039, 0, UC, LINES), MAIL_FROM),
    "carried_over": (Statement("2026-02", "BEA", "Bea", "  bea@example.org ", 300, 450, 520, 480, 0, 750, UC, LINES[1:2]),
                     MAIL_FROM),
    "negative": (Statement("2024-03", "X", "Xavier", "x@example.org", 0, 1000, 1000, 900, 0, -1500, UC,
                           (("FR", "paid", 1000, 1000, 900),),
                           adjustment_cents=-2500, adjustments=(("2023-12", -1800, "late_data"), ("2024-01", -700, "late_data"))), MAIL_FROM),
    "html_special": (Statement("2025-07", "w<1>&\"'", "<b>&\"'", "w1@example.org", 5, 995, 1000, 990, 1000, 0, UC,
                               (("US", "<paid>", 995, 1000, 990),)), "statements@fairstream.test"),
    "non_ascii": (Statement("2025-12", "zoë-1", "Zoë Ångström 李", "zoe@example.org", 0, 2500, 2400, 2450, 2500, 0, UC,
                            (("SE", "premium", 2500, 2400, 2450),)), "FairStream Relevés <statements@fairstream.test>"),
    "no_address": (Statement("2026-09", "NOMAIL", None, None, 0, 640, 600, 620, 0, 640, UC, ()), MAIL_FROM),
    # Rule 10: held payees are told why and what to do, never shown a bank detail.
    "held_no_details": (Statement("2026-10", "Z", "Zed", "z@example.org", 1200, 1200, 1200, 1100, 0, 2400, UC,
                                  (("FR", "paid", 1200, 1200, 1100),), hold_reason="no_payment_details"), MAIL_FROM),
    "held_returned": (Statement("2024-02", "X", "Xavier", "x@example.org", 0, 2000, 2000, 1900, 0, 4000, UC,
                                (("FR", "paid", 2000, 2000, 1900),), adjustment_cents=2000,
                                adjustments=(("2024-01", 2000, "returned_payment"),), hold_reason="returned_payment"),
                      MAIL_FROM),
    # Rules v4: a month paid under artist-centric (earned is the ACPS figure), with an adjustment.
    "artist_centric": (Statement("2026-11", "artist-7", "Ana Lua", "ana@example.org", 0, 1491, 1639, 1491, 1481, 0,
                                 ACPS, LINES, adjustment_cents=-10, adjustments=(("2026-10", -10, "late_data"),)),
                       MAIL_FROM),
    # Rules v4: a month paid under pro-rata, carried over.
    "pro_rata": (Statement("2026-12", "BEA", "Bea", "bea@example.org", 0, 73, 73, 80, 0, 73, PR, LINES[1:2]),
                 MAIL_FROM),
}
HEADERS = ("From", "To", "Subject", "Message-ID", "Auto-Submitted", "MIME-Version")


def message_view(message) -> dict:
    """The rendered message's fields (and its initial outbox status)."""
    return {**{f.name: getattr(message, f.name) for f in dataclasses.fields(message)}, "status": message.status}


def mime_view(raw: bytes) -> dict:
    """What a recipient sees of the bytes on the wire: decoded headers, the part tree, decoded parts."""
    parsed = BytesParser(policy=default).parsebytes(raw)
    assert not parsed.defects, parsed.defects
    sent_at = parsed["Date"].datetime  # the time of sending, in UTC
    assert sent_at.utcoffset() == timedelta(0) and abs(datetime.now(UTC) - sent_at) < timedelta(minutes=1)
    parts = [
        {
            "content_type": part.get_content_type(),
            "charset": part.get_content_charset(),
            "disposition": part.get_content_disposition(),
            "filename": part.get_filename(),
            "content": None if part.is_multipart() else part.get_content(),
        }
        for part in parsed.walk()
    ]
    return {"header_names": sorted(parsed.keys()), "headers": {name: str(parsed[name]) for name in HEADERS}, "parts": parts}


def snapshot(case: str) -> dict:
    statement, mail_from = STATEMENTS[case]
    message = render_statement(statement, threshold_cents=THRESHOLD, domain=DOMAIN)
    view = {"message": message_view(message)}
    if message.recipient:
        view["mime"] = mime_view(render(build_message(message, mail_from)))
    return view


@pytest.mark.parametrize("case", sorted(STATEMENTS))
def test_statement_email_matches_its_snapshot(case):
    expected = json.loads((SNAPSHOTS / f"{case}.json").read_text(encoding="utf-8"))
    actual = snapshot(case)
    assert actual["message"] == expected["message"]
    assert actual.get("mime") == expected.get("mime")


def test_a_non_ascii_subject_is_seen_as_written():
    message = dataclasses.replace(render_statement(STATEMENTS["non_ascii"][0], THRESHOLD, DOMAIN), subject="Relevé für Zoë 李")
    view = mime_view(render(build_message(message, MAIL_FROM)))
    assert view["headers"]["Subject"] == "Relevé für Zoë 李"


@pytest.mark.parametrize("field", ["recipient", "subject"])
def test_a_header_with_a_line_break_is_a_bad_row_not_a_crash(field):
    """A ValueError: the sender records the row as dead (``classify``) instead of stopping."""
    message = render_statement(STATEMENTS["paid"][0], THRESHOLD, DOMAIN)
    with pytest.raises(ValueError, match="linefeed or carriage return"):
        render(build_message(dataclasses.replace(message, **{field: "a@example.org\nBcc: b@example.org"}), MAIL_FROM))


def write_snapshots() -> None:
    SNAPSHOTS.mkdir(parents=True, exist_ok=True)
    for case in STATEMENTS:
        text = json.dumps(snapshot(case), indent=2, ensure_ascii=True) + "\n"
        (SNAPSHOTS / f"{case}.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    write_snapshots()
    sys.exit(0)

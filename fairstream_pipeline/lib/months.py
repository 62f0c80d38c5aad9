"""Month keys (``YYYY-MM``) and the UTC days they cover."""

from __future__ import annotations

import re
from datetime import date, timedelta

from fairstream_pipeline.settings import get_settings

_MONTH_KEY = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def parse_month(key: str) -> date:
    """Return the first day of the month ``key`` (``YYYY-MM``); raise ``ValueError`` otherwise."""
    match = _MONTH_KEY.match(key or "")
    if not match:
        raise ValueError(f"{key!r} is not a month key of the form YYYY-MM")
    return date(int(match.group(1)), int(match.group(2)), 1)


def month_key(day: date) -> str:
    """The ``YYYY-MM`` key of the month containing ``day``."""
    return f"{day.year:04d}-{day.month:02d}"


def next_month_start(key: str) -> date:
    first = parse_month(key)
    return date(first.year + (first.month == 12), first.month % 12 + 1, 1)


def days_of_month(key: str) -> list[date]:
    """Every UTC day of the month, in order."""
    first, end = parse_month(key), next_month_start(key)
    return [first + timedelta(days=i) for i in range((end - first).days)]


def previous_month(key: str) -> str:
    return month_key(parse_month(key) - timedelta(days=1))


def following_month(key: str) -> str:
    return month_key(next_month_start(key))


def first_month() -> str:
    """The first payout month (``FAIRSTREAM_FIRST_MONTH``), validated as ``YYYY-MM``; read when called."""
    value = get_settings().first_month
    try:
        parse_month(value)
    except ValueError as exc:
        raise ValueError(f"FAIRSTREAM_FIRST_MONTH: {exc}") from exc
    return value

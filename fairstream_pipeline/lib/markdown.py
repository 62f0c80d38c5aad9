"""Markdown for the Dagster UI: text that reads literally, and tables of it."""

from __future__ import annotations

from typing import Sequence

MARKDOWN_SPECIALS = set("\\`*_[]<>|~#")


class Markdown(str):
    """Text that is already Markdown (a link, emphasis on purpose): tables show it as it is."""


def md_text(value: object) -> str:
    """``value`` as literal Markdown text: ``__suspense__`` stays ``__suspense__`` in the UI, a
    ``|`` does not split a table cell, and a line break does not end a table row."""
    if value is None:
        return ""
    if isinstance(value, Markdown):
        return value
    text = " ".join(str(value).splitlines())
    return "".join(f"\\{c}" if c in MARKDOWN_SPECIALS else c for c in text)


def payee_label(payee_id: str, name: str | None) -> str:
    """A payee as a reviewer reads it, name beside id: ``Nina Sky (P000123)`` (plain text)."""
    if not name or name == payee_id:
        return payee_id
    return f"{name} ({payee_id})"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; every cell reads literally unless it is :class:`Markdown`."""
    lines = ["| " + " | ".join(md_text(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_text(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)

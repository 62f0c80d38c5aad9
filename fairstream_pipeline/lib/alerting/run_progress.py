"""What ``fairstream run`` prints while a run executes: pure formatting, no Dagster."""

from __future__ import annotations

import re

_MAPPED = re.compile(r"^(?P<base>.+)\[(?P<key>[^\[\]]+)\]$")
_MARKDOWN_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>~])")


def split_step_key(step_key: str) -> tuple[str, str | None]:
    """``"a.b[k]"`` -> ``("a.b", "k")``; a step that is not fanned out -> ``(step_key, None)``."""
    match = _MAPPED.match(step_key)
    return (match["base"], match["key"]) if match else (step_key, None)


def format_seconds(seconds: float) -> str:
    """``0.4 s``, ``12.3 s``, ``2 min 05 s``, ``1 h 02 min``."""
    if seconds < 60:
        return f"{max(seconds, 0.0):.1f} s"
    whole = int(round(seconds))
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def progress_bar(done: int, total: int | None, width: int = 20) -> str:
    """``[#####...............]   5/20``; without a known total just ``5 done``."""
    if not total:
        return f"{done} done"
    filled = min(width, done * width // total)
    digits = len(str(total))
    return f"[{'#' * filled}{'.' * (width - filled)}] {done:>{digits}}/{total}"


def format_rows(rows: dict[str, int]) -> str:
    """``"5,000 rows"`` for one asset, ``"clean_plays 9,812 rows, play_quarantine 4 rows"`` for more."""
    if not rows:
        return ""
    if len(rows) == 1:
        return f"{next(iter(rows.values())):,} rows"
    return ", ".join(f"{asset} {count:,} rows" for asset, count in rows.items())


def one_line(text: str, limit: int = 600) -> str:
    """Whitespace and newlines collapsed to single spaces, cut at ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def plain_text(markdown: str) -> str:
    """Markdown's backslash escapes removed: ``\\_\\_suspense\\_\\_`` -> ``__suspense__``."""
    return _MARKDOWN_ESCAPE.sub(r"\1", markdown)


def first_line(text: str) -> str:
    """The first non-empty line of ``text``, stripped ("" when there is none)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def step_line(elapsed: float, status: str, step: str, duration: float | None = None, extra: str = "") -> str:
    """One line of the step log: ``  12.3 s  done    step  (0.4 s)  5,000 rows``."""
    parts = [f"{format_seconds(elapsed):>10}  {status:<7} {step}"]
    if duration is not None:
        parts.append(f"({format_seconds(duration)})")
    if extra:
        parts.append(extra)
    return "  ".join(parts)


def failure_lines(
    month: str,
    failed_steps: list[tuple[str, str]],
    failed_checks: list[tuple[str, str, str]],
    run_error: str | None = None,
) -> list[str]:
    """The closing lines of a failed month: each failed step and why, then each failed blocking check.

    ``failed_steps`` is ``[(step_key, reason)]``, ``failed_checks`` ``[(check, asset, description)]``;
    ``run_error`` is used when no step failed (the run itself failed). The most specific reason comes
    last: a check's own description is more telling than the generic failure of its step.
    """
    lines = [f"{month} failed in step {step}: {one_line(reason)}" for step, reason in failed_steps]
    lines += [
        f"{month} failed blocking check {check} on {asset}: {one_line(description or 'did not pass')}"
        for check, asset, description in failed_checks
    ]
    if not lines:
        lines.append(f"{month} failed: {one_line(run_error or 'the run failed without a step failure')}")
    return lines

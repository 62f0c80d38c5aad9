"""What ``fairstream run`` prints while a run executes: its events turned into lines (``RunProgress``).

The formatting functions (durations, bars, row counts, the failure lines) are plain Python, tested
on their own; ``RunProgress`` reads the run's Dagster events (``run_command.follow_run`` feeds them).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TextIO

import dagster as dg

from fairstream_pipeline.lib.alerting.alerts import WILL_RETRY_TAG

E = dg.DagsterEventType
ROW_COUNT = "dagster/row_count"

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


@dataclass
class _Fanout:
    """The steps of one fanned-out op (``op[key]``): how many started and ended, and their rows."""

    total: int | None = None
    started: int = 0
    ended: int = 0
    failed: int = 0
    first_start: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)
    reported_quarter: int = 0


class RunProgress:
    """Turns a run's events into the lines of ``fairstream run``.

    ``live`` (a terminal): the running step and the bars of fanned-out steps are one line redrawn
    in place. Otherwise every start is a line and a bar is printed at each quarter.
    """

    def __init__(self, month: str, out: TextIO, started: float, live: bool):
        self.month, self.out, self.started, self.live = month, out, started, live
        self.step_started: dict[str, float] = {}
        self.step_rows: dict[str, dict[str, int]] = {}
        self.fanouts: dict[str, _Fanout] = {}
        self.mapping_keys: dict[tuple[str, str], set[str]] = {}  # (step, output) -> its mapping keys
        self.failed_steps: list[tuple[str, str]] = []
        self.failed_checks: list[tuple[str, str, str]] = []
        self.checks = {"passed": 0, "warned": 0, "failed": 0}
        self.skipped: list[str] = []
        self.run_error: str | None = None
        self.running: str | None = None
        self.live_width = 0

    # output -------------------------------------------------------------------------------------

    def _print(self, line: str) -> None:
        self.clear_live()
        print(line, file=self.out, flush=True)

    def clear_live(self) -> None:
        if self.live and self.live_width:
            self.out.write("\r" + " " * self.live_width + "\r")
            self.live_width = 0

    def _live(self, text: str) -> None:
        if self.live:
            self.clear_live()
            self.out.write(text)
            self.out.flush()
            self.live_width = len(text)

    def tick(self, queued: bool = False) -> None:
        """Redraw the live line (a terminal only)."""
        elapsed = format_seconds(time.time() - self.started)
        if queued:
            self._live(f"{elapsed:>10}  queued, waiting for the daemon to launch the run")
        elif self.running:
            base, key = split_step_key(self.running)
            fanout = self.fanouts.get(base) if key else None
            if fanout:
                self._live(f"{elapsed:>10}  running {base}  {progress_bar(fanout.ended, fanout.total)}")
            else:
                since = time.time() - self.step_started.get(self.running, time.time())
                self._live(f"{elapsed:>10}  running {self.running} ({format_seconds(since)})")

    # events -------------------------------------------------------------------------------------

    def handle(self, entry) -> None:
        """Take one event log entry of the run."""
        event = entry.dagster_event
        if event is None:
            return
        kind, step, at = event.event_type, event.step_key, entry.timestamp
        elapsed = at - self.started
        if kind == E.STEP_OUTPUT and event.step_output_data.mapping_key:
            output = (step, event.step_output_data.output_name)
            self.mapping_keys.setdefault(output, set()).add(event.step_output_data.mapping_key)
        elif kind == E.STEP_START:
            self._step_started(step, at, elapsed)
        elif kind == E.ASSET_MATERIALIZATION and step:
            materialization = event.step_materialization_data.materialization
            count = materialization.metadata.get(ROW_COUNT)
            if count is not None:
                asset = materialization.asset_key.to_user_string()
                self.step_rows.setdefault(step, {})[asset] = int(count.value)
        elif kind == E.ASSET_CHECK_EVALUATION:
            self._check(event.event_specific_data, elapsed)
        elif kind in (E.STEP_SUCCESS, E.STEP_FAILURE):
            self._step_ended(step, at, elapsed, event if kind == E.STEP_FAILURE else None)
        elif kind == E.STEP_UP_FOR_RETRY:
            self._print(step_line(elapsed, "retry", step, extra=first_line(entry.message or "")))
        elif kind == E.STEP_SKIPPED:
            self.skipped.append(step)
        elif kind == E.RUN_START:
            self._print(step_line(elapsed, "start", "run"))
        elif kind in (E.RUN_FAILURE, E.ENGINE_EVENT):
            error = getattr(event.event_specific_data, "error", None)
            if error is not None:
                self.run_error = f"{entry.message or ''} {error.message}".strip()
            elif kind == E.RUN_FAILURE and self.run_error is None:
                self.run_error = entry.message

    def _step_started(self, step: str, at: float, elapsed: float) -> None:
        self.step_started[step] = at
        self.running = step
        base, key = split_step_key(step)
        if key is None:
            if self.live:
                self.tick()
            else:
                self._print(step_line(elapsed, "start", step))
            return
        fanout = self.fanouts.setdefault(base, _Fanout(first_start=at))
        if fanout.total is None:
            fanout.total = next((len(keys) for keys in self.mapping_keys.values() if key in keys), None)
        fanout.started += 1
        if fanout.started == 1 and not self.live:
            count = f"{fanout.total} steps" if fanout.total else "fanned out"
            self._print(step_line(elapsed, "start", f"{base} ({count})"))
        self.tick()

    def _step_ended(self, step: str, at: float, elapsed: float, failure) -> None:
        base, key = split_step_key(step)
        duration = at - self.step_started.get(step, at)
        rows = self.step_rows.get(step, {})
        if failure is not None:
            self.failed_steps.append((step, _failure_reason(failure)))
        if self.running == step:
            self.running = None
        if key is None or base not in self.fanouts:
            status = "FAILED" if failure is not None else "done"
            self._print(step_line(elapsed, status, step, duration, format_rows(rows)))
            return
        fanout = self.fanouts[base]
        fanout.ended += 1
        fanout.failed += failure is not None
        for asset, count in rows.items():
            fanout.rows[asset] = fanout.rows.get(asset, 0) + count
        if fanout.total and fanout.ended >= fanout.total:
            status = "FAILED" if fanout.failed else "done"
            extra = progress_bar(fanout.ended, fanout.total)
            if fanout.failed:
                extra += f"  {fanout.failed} failed"
            if fanout.rows:
                extra += "  " + format_rows(fanout.rows)
            self._print(step_line(elapsed, status, base, at - fanout.first_start, extra))
        elif failure is not None:
            self._print(step_line(elapsed, "FAILED", step, duration))
        elif not self.live and fanout.total:
            quarter = fanout.ended * 4 // fanout.total
            if quarter > fanout.reported_quarter:
                fanout.reported_quarter = quarter
                self._print(step_line(elapsed, "", base, extra=progress_bar(fanout.ended, fanout.total)))
        else:
            self.tick()

    def _check(self, evaluation, elapsed: float) -> None:
        asset = evaluation.asset_key.to_user_string()
        if evaluation.passed:
            self.checks["passed"] += 1
            return
        severity = evaluation.severity.value  # "ERROR" or "WARN"
        self.checks["failed" if severity == "ERROR" else "warned"] += 1
        label = "FAILED" if severity == "ERROR" else "WARN"
        what = f"check {evaluation.check_name} on {asset}"
        self._print(step_line(elapsed, label, what, extra=first_line(plain_text(evaluation.description or ""))))
        if severity == "ERROR" and evaluation.blocking:
            self.failed_checks.append((evaluation.check_name, asset, plain_text(evaluation.description or "")))

    def finish(self, run: dg.DagsterRun) -> None:
        """The closing lines: the status, the checks, and for a failed run what failed and why."""
        self.clear_live()
        elapsed = format_seconds(time.time() - self.started)
        checks = ", ".join(f"{n} {what}" for what, n in self.checks.items() if n)
        status = run.status.value
        summary = f"== {self.month}: {status} in {elapsed} (run {run.run_id})"
        if checks:
            summary += f"; checks: {checks}"
        if self.skipped:
            summary += f"; not run: {', '.join(self.skipped)}"
        self._print(summary)
        if run.status == dg.DagsterRunStatus.SUCCESS:
            return
        if run.tags.get(WILL_RETRY_TAG) == "true":
            self._print(f"{self.month}: Dagster will retry this run (run_retries); the daemon launches the retry")
        for line in failure_lines(self.month, self.failed_steps, self.failed_checks, self.run_error):
            self._print(line)


def _failure_reason(event) -> str:
    """A failed step's reason: a ``dg.Failure``'s description, else its error's message."""
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description
    if data.error is not None:
        return data.error.message.strip()
    return "failed"

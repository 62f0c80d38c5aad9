"""``fairstream run``: run months as real ``monthly_payout_job`` runs of the Dagster instance.

Each month becomes one run of the job, launched with ``dagster job launch`` from the workspace (a
run with a remote job origin, as the UI makes), tagged ``dagster/partition``. So it is on the Jobs
page, the run-failure alert sensor sees it, and ``run_retries`` apply.

How it starts: both instances of this project (the embedded demo one and ``dagster.yaml``) use
Dagster's default ``QueuedRunCoordinator``, whose queue only the daemon empties. The run is queued;
when no daemon beats, the command starts ``dagster-daemon run`` itself for as long as it lasts
(output in ``$DAGSTER_HOME/fairstream-run.log``), so a run always starts the same way, with the
queue's limits, run monitoring and the month's lock (README "One run per month").

The command then reads the run's events from the instance and prints each step as it starts and
ends, with the rows of its materializations and a progress bar for fanned-out steps, and exits 0
when the run succeeded, 1 otherwise, the last lines naming the failed step (or check) and why.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import dagster as dg

from fairstream_pipeline.lib.alerting.alerts import run_url
from fairstream_pipeline.lib.alerting.health import DEFAULT_HEARTBEAT_TOLERANCE_SECONDS
from fairstream_pipeline.lib.alerting.run_progress import (
    failure_lines,
    first_line,
    format_rows,
    format_seconds,
    plain_text,
    progress_bar,
    split_step_key,
    step_line,
)
from fairstream_pipeline.settings import get_settings

E = dg.DagsterEventType
JOB = "monthly_payout_job"
QUEUE_DAEMON = "QUEUED_RUN_COORDINATOR"
POLL_SECONDS = 0.5
QUEUE_CHECK_SECONDS = 10  # how often a queued run checks that the daemon still beats
ROW_COUNT = "dagster/row_count"
WILL_RETRY = "dagster/will_retry"
SERVER_LOG = "fairstream-run.log"  # in DAGSTER_HOME: the output of the code servers and runs started here


class RunCommandError(Exception):
    """A month that could not be launched (no workspace, a code location that fails to load…)."""


def default_workspace() -> Path:
    """``workspace.yaml`` of the working directory, else the project's own."""
    here = Path("workspace.yaml")
    return here if here.exists() else Path(__file__).resolve().parents[1] / "workspace.yaml"


def run_months(months: list[str], workspace: Path, run_config: dict, out: TextIO = sys.stdout) -> int:
    """Run ``months`` in order, one run each; stop at the first that does not succeed. The exit status."""
    with instance_and_queue(workspace, out) as served:
        if served is None:
            return 2
        instance, queue, log = served
        for month in months:
            try:
                status = run_month(instance, queue, workspace, month, run_config, log, out)
            except RunCommandError as exc:
                print(f"{month} was not launched: {exc}", file=out)
                return 1
            if status != dg.DagsterRunStatus.SUCCESS:
                return 1
    return 0


@contextmanager
def instance_and_queue(workspace: Path, out: TextIO):
    """``(instance, run queue, log)`` for launching runs of ``DAGSTER_HOME``'s instance from a
    command, or None after saying why not (no ``DAGSTER_HOME``, no workspace file)."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        print("DAGSTER_HOME is not set: it names the folder of the instance's dagster.yaml", file=out)
        yield None
        return
    if not workspace.is_file():
        print(f"no workspace file at {workspace}: pass --workspace", file=out)
        yield None
        return
    log = Path(home) / SERVER_LOG
    with dg.DagsterInstance.get() as instance, _RunQueue(instance, workspace, log, out) as queue:
        yield instance, queue, log


def run_month(
    instance: dg.DagsterInstance, queue: "_RunQueue", workspace: Path, month: str, run_config: dict, log: Path,
    out: TextIO, job: str = JOB, launched_by: str = "fairstream run",
):
    """Launch the run of ``job`` (``monthly_payout_job`` by default) for ``month`` with ``dagster job
    launch`` and follow it; its final status."""
    started = time.time()
    run_id = str(uuid.uuid4())
    command = [
        str(Path(sys.executable).parent / "dagster"), "job", "launch", "-w", str(workspace), "-j", job,
        "--run-id", run_id,
        "--tags", json.dumps({"dagster/partition": month, "fairstream/launched_by": launched_by}),
    ]
    if run_config:
        command += ["--config-json", json.dumps(run_config)]
    with log.open("ab") as sink:
        launched = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, check=False)
    run = instance.get_run_by_id(run_id)
    if launched.returncode != 0 or run is None:
        raise RunCommandError(f"`dagster job launch` failed (exit {launched.returncode}); see {log}:\n{_tail(log)}")
    url = run_url(get_settings().ui_base_url, run_id)
    print(f"== {month}: {job} run {run_id}, {queue.how}\n   {url}", file=out, flush=True)
    return follow_run(instance, run_id, month, out, started, queue.keep_served)


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _queue_is_served(instance: dg.DagsterInstance) -> bool:
    """Whether the daemon's run queue beat recently.

    The heartbeat's age is checked here (``fairstream health``'s tolerance): Dagster's own daemon
    status calls a daemon healthy for 30 minutes after its last heartbeat.
    """
    beat = instance.get_daemon_heartbeats().get(QUEUE_DAEMON)
    return beat is not None and time.time() - beat.timestamp <= DEFAULT_HEARTBEAT_TOLERANCE_SECONDS


class _RunQueue:
    """Someone to launch the queued runs: the instance's daemon when it beats, else a
    ``dagster-daemon`` started here for as long as the command lasts (its output goes to ``log``).

    Both instances of this project use Dagster's default ``QueuedRunCoordinator``, whose queue only
    the daemon empties; ``dagster job launch`` queues the run, and the daemon launches it, so its
    run monitoring, retries and the failure sensor apply as to any other run.
    """

    def __init__(self, instance: dg.DagsterInstance, workspace: Path, log: Path, out: TextIO):
        self.instance, self.workspace, self.log, self.out = instance, workspace, log, out
        self.daemon: subprocess.Popen | None = None
        self.how = "queued for the instance's daemon"

    def __enter__(self) -> "_RunQueue":
        if QUEUE_DAEMON not in self.instance.get_required_daemon_types():
            self.how = "launched by the instance's run coordinator"
        elif not _queue_is_served(self.instance):
            self._start_daemon()
        return self

    def _start_daemon(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as sink:
            self.daemon = subprocess.Popen(
                [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(self.workspace)],
                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
            )
        self.how = f"queued; no daemon was running, so one runs here until the command ends (log {self.log.name})"

    def keep_served(self) -> bool:
        """Called while a run waits in the queue: start a daemon here if none beats any more."""
        if self.daemon is not None and self.daemon.poll() is None:
            return False
        if self.daemon is None and _queue_is_served(self.instance):
            return False
        print(f"   no daemon serves the run queue: starting one here (log {self.log})", file=self.out, flush=True)
        self._start_daemon()
        return True

    def __exit__(self, *exc) -> None:
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGINT)  # the daemon's clean shutdown
            try:
                self.daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
            # Its last heartbeats would make the next command believe a daemon still serves the queue
            # (for the 120 s tolerance); it was the only one (none beat when it was started).
            self.instance.wipe_daemon_heartbeats()


def follow_run(
    instance: dg.DagsterInstance,
    run_id: str,
    month: str,
    out: TextIO,
    started: float | None = None,
    launch_if_abandoned: Callable[[], bool] | None = None,
) -> dg.DagsterRunStatus:
    """Print the run's steps from its events until it ends; its final status.

    While the run is queued, ``launch_if_abandoned`` is asked every ``QUEUE_CHECK_SECONDS`` whether
    it launched the run itself (the daemon having stopped).
    """
    progress = RunProgress(month, out, started=started or time.time(), live=out.isatty())
    cursor, next_queue_check = None, time.time() + QUEUE_CHECK_SECONDS
    try:
        while True:
            connection = instance.get_records_for_run(run_id, cursor=cursor, limit=1000)
            for record in connection.records:
                progress.handle(record.event_log_entry)
            cursor = connection.cursor
            if connection.has_more:
                continue
            run = instance.get_run_by_id(run_id)
            if run is not None and run.is_finished:
                connection = instance.get_records_for_run(run_id, cursor=cursor)  # events written last
                for record in connection.records:
                    progress.handle(record.event_log_entry)
                progress.finish(run)
                return run.status
            queued = run is not None and run.status == dg.DagsterRunStatus.QUEUED
            if queued and launch_if_abandoned is not None and time.time() >= next_queue_check:
                next_queue_check = time.time() + QUEUE_CHECK_SECONDS
                if launch_if_abandoned():
                    launch_if_abandoned = None
            progress.tick(queued=queued)
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        progress.clear_live()
        print(f"\ninterrupted: run {run_id} is not followed any more (see the UI or `dagster run list`)", file=out)
        raise


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
        if run.tags.get(WILL_RETRY) == "true":
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


def parse_run_config(text: str | None) -> dict:
    """The ``--config-json`` value as a dict (empty without one)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--config-json is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("--config-json must be a JSON object")
    return value

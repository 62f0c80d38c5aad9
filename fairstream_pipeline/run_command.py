"""``fairstream run``: run months as real ``monthly_payout_job`` runs of the Dagster instance.

Each month becomes one run of the job, launched with ``dagster job launch`` from the workspace (a
run with a remote job origin, as the UI makes), tagged ``dagster/partition``. So it is on the Jobs
page, the run-failure alert sensor sees it, and ``run_retries`` apply.

How it starts: both instances of this project (the embedded demo one and ``dagster.yaml``) use
Dagster's default ``QueuedRunCoordinator``, whose queue only the daemon empties. The run is queued;
when no daemon beats, the command starts ``dagster-daemon run`` itself for as long as it lasts
(output in ``$DAGSTER_HOME/fairstream-run.log``), so a run always starts the same way, with the
queue's limits, run monitoring and the month's lock (docs/deployment.md, "One run per month").

The command then reads the run's events from the instance and prints each step as it starts and
ends, with the rows of its materializations and a progress bar for fanned-out steps
(``fairstream_pipeline.run_progress``), and exits 0 when the run succeeded, 1 otherwise, the last
lines naming the failed step (or check) and why.
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
from pathlib import Path
from typing import TextIO

import dagster as dg

from fairstream_pipeline.lib.alerting.alerts import run_url
from fairstream_pipeline.lib.alerting.health import DEFAULT_HEARTBEAT_TOLERANCE_SECONDS
from fairstream_pipeline.run_progress import RunProgress
from fairstream_pipeline.settings import get_settings

JOB = "monthly_payout_job"
QUEUE_DAEMON = "QUEUED_RUN_COORDINATOR"
POLL_SECONDS = 0.5
QUEUE_CHECK_SECONDS = 10  # how often a queued run checks that the daemon still beats
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

"""One run per month: the lock file of the embedded instance, the advisory lock of PostgreSQL, and two
real `dagster asset materialize` runs of the same month at once."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from fairstream_pipeline.lib.lake.month_lock import FileMonthLocks, MonthLocked, PostgresMonthLocks
from fairstream_pipeline_tests.payout_cases import MonthCase, Plays
from fairstream_pipeline_tests.postgres import PG, connect_admin
from fairstream_pipeline_tests.test_cli_end_to_end import DAGSTER, embedded_home, project_env

MONTH = "2024-01"
REPO = Path(__file__).resolve().parents[1]
FINISHED: set[str] = set()


def run_finished(run_id: str) -> bool:
    return run_id in FINISHED


def test_a_second_run_is_refused_naming_the_holder_and_the_same_run_may_take_it_again(tmp_path):
    locks = FileMonthLocks(tmp_path)
    lease = locks.acquire(MONTH, "run-a", run_finished)
    with pytest.raises(MonthLocked, match=r"2024-01 is being computed by run run-a \(pid \d+ on .*, since .*\); this run stops"):
        locks.acquire(MONTH, "run-b", run_finished)
    again = locks.acquire(MONTH, "run-a", run_finished)  # another step process of the same run
    assert json.loads(locks.path(MONTH).read_text())["run_id"] == "run-a"
    locks.acquire("2024-02", "run-b", run_finished).release()  # other months are free
    again.release()
    lease.release()
    assert not locks.path(MONTH).exists()
    locks.acquire(MONTH, "run-b", run_finished).release()


def test_a_lock_whose_run_finished_or_whose_process_died_is_broken(tmp_path):
    locks = FileMonthLocks(tmp_path)
    locks.acquire(MONTH, "run-a", run_finished)  # never released: its run then ends
    FINISHED.add("run-a")
    lease = locks.acquire(MONTH, "run-b", run_finished)
    assert json.loads(locks.path(MONTH).read_text())["run_id"] == "run-b"
    lease.release()

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    locks.path(MONTH).write_text(json.dumps(
        {"run_id": "run-c", "pid": int(dead.stdout), "host": os.uname().nodename, "acquired_at": "earlier"}
    ))
    locks.acquire(MONTH, "run-d", run_finished).release()
    assert len(list(locks.folder.glob("month=2024-01.json.stale-*"))) == 2  # both kept aside, for the record


def test_postgres_advisory_lock_names_the_holder_and_dies_with_its_process(fresh_database):
    url = f"postgresql+psycopg2://{PG.user}:{PG.password}@{PG.host}:{PG.port}/{fresh_database}"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from fairstream_pipeline.lib.lake.month_lock import PostgresMonthLocks
            lease = PostgresMonthLocks({url!r}).acquire({MONTH!r}, "run-holder")
            print("locked", flush=True)
            time.sleep(600)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        locks = PostgresMonthLocks(url)
        with pytest.raises(MonthLocked, match=rf"2024-01 is being computed by run run-holder \(pid {holder.pid} on "):
            locks.acquire(MONTH, "run-second")
        locks.acquire("2024-02", "run-second").release()
    finally:
        holder.send_signal(signal.SIGKILL)  # kill -9: the session ends, PostgreSQL frees the lock
        holder.wait()
    deadline = time.monotonic() + 10
    while True:
        try:
            PostgresMonthLocks(url).acquire(MONTH, "run-after").release()
            break
        except MonthLocked:
            assert time.monotonic() < deadline, "the dead holder's lock was not released"
            time.sleep(0.2)


def test_postgres_steps_of_one_run_share_the_month_and_another_run_waits_for_all_of_them(fresh_database):
    """With a process per step (Celery workers), every step of the run holds the month; another run
    is refused while any of them still does, and gets it once the last one ends."""
    url = f"postgresql+psycopg2://{PG.user}:{PG.password}@{PG.host}:{PG.port}/{fresh_database}"
    locks = PostgresMonthLocks(url)
    first_step, second_step = locks.acquire(MONTH, "run-celery"), locks.acquire(MONTH, "run-celery")
    with pytest.raises(MonthLocked, match=r"2024-01 is being computed by run run-celery "):
        locks.acquire(MONTH, "run-other")
    first_step.release()
    with pytest.raises(MonthLocked, match=r"2024-01 is being computed by run run-celery "):
        locks.acquire(MONTH, "run-other")
    second_step.release()
    locks.acquire(MONTH, "run-other").release()


def test_postgres_month_locks_of_two_instances_on_one_server_do_not_interfere(fresh_database):
    """Two instances (databases) on one PostgreSQL server, say staging and production, each compute
    2024-01: neither is refused because of the other."""
    with connect_admin() as admin:
        admin.execute(f'CREATE DATABASE "{fresh_database}_other"')
    try:
        here = PostgresMonthLocks(f"postgresql+psycopg2://{PG.user}:{PG.password}@{PG.host}:{PG.port}/{fresh_database}")
        there = PostgresMonthLocks(
            f"postgresql+psycopg2://{PG.user}:{PG.password}@{PG.host}:{PG.port}/{fresh_database}_other"
        )
        held_here = here.acquire(MONTH, "run-staging")
        there.acquire(MONTH, "run-production").release()
        with pytest.raises(MonthLocked, match="run run-staging"):
            here.acquire(MONTH, "run-second")
        held_here.release()
    finally:
        with connect_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{fresh_database}_other" WITH (FORCE)')


def materialize_command() -> list[str]:
    return [DAGSTER, "asset", "materialize", "-m", "fairstream_pipeline.definitions", "--select", "*",
            "--partition", MONTH]


@pytest.mark.e2e
@pytest.mark.parametrize("instance", ["embedded", "postgres"])
def test_two_cli_runs_of_one_month_at_once_the_second_fails_fast_naming_the_first(instance, landing, tmp_path, request):
    MonthCase([("U1", "premium", "FR", 1000)], [Plays("U1", "X", 1)]).write(landing, MONTH)
    last_day = landing.root / "listening_events" / "date=2024-01-31" / "_SUCCESS"
    last_day.unlink()  # the first run waits for the collector (its first step retries), holding the month
    home = embedded_home(tmp_path / "home")
    settings = {}
    if instance == "postgres":
        database = request.getfixturevalue("fresh_database")
        shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
        settings.update(FAIRSTREAM_PG_HOST=PG.host, FAIRSTREAM_PG_PORT=str(PG.port), FAIRSTREAM_PG_USER=PG.user,
                        FAIRSTREAM_PG_PASSWORD=PG.password, FAIRSTREAM_PG_DB=database)

        def month_locked() -> bool:
            with connect_admin(database) as db:
                return bool(db.execute(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                    "WHERE l.locktype = 'advisory' AND a.application_name LIKE %s", ("fairstream-run:%",)
                ).fetchone()[0])
    else:
        def month_locked() -> bool:
            return (tmp_path / "warehouse" / "_locks" / f"month={MONTH}.json").exists()

    env = project_env(landing.root, tmp_path / "warehouse", home, **settings)
    env.update(FAIRSTREAM_FIRST_MONTH=MONTH, FAIRSTREAM_LANDING_WAIT_RETRIES="8", FAIRSTREAM_LANDING_WAIT_DELAY_SECONDS="2")
    first = subprocess.Popen(materialize_command(), env=env, cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not month_locked():
            assert time.monotonic() < deadline and first.poll() is None, "the first run never took the month"
            time.sleep(0.2)
        started = time.monotonic()
        second = subprocess.run(materialize_command(), env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        refused_after = time.monotonic() - started
        last_day.touch()  # the collector finishes: the first run goes on and succeeds
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode != 0
    assert "2024-01 is being computed by run " in second.stderr, second.stderr[-3000:]
    assert "STEP_UP_FOR_RETRY" not in second.stderr  # a lock refusal is not retried
    assert refused_after < 60
    assert first.returncode == 0, err[-3000:]
    holder = second.stderr.split("2024-01 is being computed by run ", 1)[1].split(" ", 1)[0]
    assert holder in err  # the run the second one named is the first run
    assert not month_locked()  # released at the end of the run

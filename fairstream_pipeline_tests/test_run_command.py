"""`fairstream run`: the real console script launches monthly_payout_job runs through the instance."""

import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from fairstream_pipeline.run_progress import (
    failure_lines,
    format_rows,
    format_seconds,
    plain_text,
    progress_bar,
    split_step_key,
)
from fairstream_pipeline.sample import generate_month
from fairstream_pipeline_tests.conftest import TEST_SETTINGS

REPO = Path(__file__).resolve().parents[1]
FAIRSTREAM = str(Path(sys.executable).parent / "fairstream")
# A duration as format_seconds writes it: "12.3 s" under a minute, "2 min 05 s" on a loaded machine.
DURATION = r"(?:\d+\.\d s|\d+ min \d\d s)"
GOOD, BAD = "2026-09", "2026-10"
BAD_FILE = "listening_events/date=2026-10-03/part-00000.parquet"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A good September (400 users: it closes), an October with a corrupt file, an embedded instance."""
    root = tmp_path_factory.mktemp("run_command")
    landing, home = root / "landing", root / "home"
    good = generate_month(landing, GOOD, users=400, seed=11).to_dict()
    generate_month(landing, BAD, users=50, seed=11)
    (landing / BAD_FILE).write_bytes(b"not parquet at all")
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAIRSTREAM_", "DAGSTER_"))}
    env.update(
        TEST_SETTINGS,
        FAIRSTREAM_FIRST_MONTH=GOOD,
        FAIRSTREAM_LANDING_DIR=str(landing),
        FAIRSTREAM_WAREHOUSE_DIR=str(root / "warehouse"),
        FAIRSTREAM_DUCKDB_MEMORY_LIMIT="1GB",
        FAIRSTREAM_USER_BUCKETS="2",  # two allocate_user_bucket steps: a bar of 2
        DAGSTER_HOME=str(home),
    )
    return env, home, good


def fairstream_run(env: dict, *months: str) -> subprocess.CompletedProcess:
    return subprocess.run([FAIRSTREAM, "run", *months], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)


def runs_of(home: Path, month: str, monkeypatch) -> list[dg.DagsterRun]:
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records(
            dg.RunsFilter(job_name="monthly_payout_job", tags={"dagster/partition": month})
        )
    return [record.dagster_run for record in records]


def test_a_good_month_is_a_successful_run_of_the_job_with_its_steps_shown(project, monkeypatch):
    env, home, good = project
    done = fairstream_run(env, GOOD)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    (run,) = runs_of(home, GOOD, monkeypatch)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.remote_job_origin.location_name == "fairstream_pipeline"  # launched through the workspace
    assert run.tags["fairstream/launched_by"] == "fairstream run"

    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"== {GOOD}: monthly_payout_job run {run.run_id}, queued; no daemon was running, so one runs here "
        "until the command ends (log fairstream-run.log)"
    )
    assert re.fullmatch(rf"== {GOOD}: SUCCESS in {DURATION} \(run {run.run_id}\); checks: .*", lines[-1])
    steps = "\n".join(lines)
    assert re.search(r"  start   landing_month\n.*  done    landing_month  \(" + DURATION + r"\)", steps)
    assert re.search(r"  done    billed_users  \(" + DURATION + r"\)  390 rows\n", steps)
    assert re.search(
        r"  done    ingest_listening_events\.ingest_event_day  \(" + DURATION + r"\)  \[#{20}\] 30/30\n", steps
    )
    assert f"clean_plays {good['expected_clean_plays']:,} rows, play_quarantine " in steps
    assert re.search(r"  done    count_and_allocate\.allocate_user_bucket  \(" + DURATION + r"\)  \[#{20}\] 2/2\n", steps)
    assert re.search(r"  done    period_close  \(" + DURATION + r"\)", steps)
    assert done.stderr == ""  # the code server's and the run's own output go to DAGSTER_HOME/fairstream-run.log
    assert "RUN_SUCCESS" in (home / "fairstream-run.log").read_text()


def test_a_month_with_a_corrupt_file_fails_and_its_last_line_names_the_file(project, monkeypatch):
    env, home, _ = project
    done = fairstream_run(env, BAD)
    assert done.returncode == 1

    (run,) = runs_of(home, BAD, monkeypatch)
    assert run.status == dg.DagsterRunStatus.FAILURE
    lines = done.stdout.splitlines()
    assert re.fullmatch(rf"== {BAD}: FAILURE in {DURATION} \(run {run.run_id}\)", lines[-2])
    assert lines[-1].startswith(f"{BAD} failed in step landing_month: {BAD_FILE}: not a readable Parquet file (")


# The pure formatting ---------------------------------------------------------------------------

def test_step_keys_seconds_bars_and_rows():
    assert split_step_key("count_and_allocate.allocate_user_bucket[bucket_7]") == (
        "count_and_allocate.allocate_user_bucket", "bucket_7")
    assert split_step_key("payee_earnings") == ("payee_earnings", None)
    assert [format_seconds(s) for s in (0.04, 12.34, 125, 3725)] == ["0.0 s", "12.3 s", "2 min 05 s", "1 h 02 min"]
    assert progress_bar(5, 20) == "[#####...............]  5/20"
    assert progress_bar(3, None) == "3 done"
    assert format_rows({"billed_users": 5000}) == "5,000 rows"
    assert format_rows({"clean_plays": 12345, "play_quarantine": 4}) == "clean_plays 12,345 rows, play_quarantine 4 rows"
    assert plain_text(r"37.06 EUR in \_\_suspense\_\_") == "37.06 EUR in __suspense__"


def test_failure_lines_end_with_the_most_specific_reason():
    assert failure_lines(
        "2026-10",
        [("payee_earnings_money_checks", "1 blocking asset check failed with ERROR severity:\npayee_earnings: x")],
        [("uc_cents_reconcile_per_segment", "payee_earnings", "segment FR differs by 3 cents")],
    ) == [
        "2026-10 failed in step payee_earnings_money_checks: 1 blocking asset check failed with ERROR severity: payee_earnings: x",
        "2026-10 failed blocking check uc_cents_reconcile_per_segment on payee_earnings: segment FR differs by 3 cents",
    ]
    assert failure_lines("2026-10", [], [], "run worker crashed") == ["2026-10 failed: run worker crashed"]

"""`fairstream health`: the pure checks with fixed times, then the real command against PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from fairstream_pipeline.lib.alerting.health import (
    Check,
    check_heartbeats,
    check_payout,
    completed_months,
    last_closed_month,
    latest_due_month,
    months_between,
    payout_due_at,
)
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline_tests.postgres import PG, connect_admin

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
UTC = timezone.utc


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- payout -------------------------------------------------------------------------------------


def test_a_month_is_due_on_the_third_of_the_next_month_at_midnight_utc():
    assert payout_due_at("2026-11") == datetime(2026, 12, 3, tzinfo=UTC)
    assert payout_due_at("2026-12") == datetime(2027, 1, 3, tzinfo=UTC)
    assert latest_due_month(at("2026-12-02T23:59:59Z")) == "2026-10"
    assert latest_due_month(at("2026-12-03T00:00:00Z")) == "2026-11"
    assert latest_due_month(at("2027-01-03T00:00:00Z")) == "2026-12"
    assert latest_due_month(at("2026-12-02T20:00:00-05:00")) == "2026-11"  # 01:00 UTC on the 3rd


def test_a_missing_month_that_is_not_yet_due_is_ok():
    check = check_payout(at("2026-12-02T12:00:00Z"), "2026-09", {"2026-09", "2026-10"})
    assert check == Check(
        True,
        "payout for 2026-10 is complete (due 2026-11-03T00:00:00Z)",
        {"last_completed_month": "2026-10", "due_month": "2026-10", "due_at": "2026-11-03T00:00:00Z"},
    )


def test_a_missing_month_past_its_due_time_is_overdue():
    check = check_payout(at("2026-12-03T00:00:01Z"), "2026-09", {"2026-09", "2026-10"})
    assert check == Check(
        False,
        "payout for 2026-11 is overdue: due 2026-12-03T00:00:00Z, 2026-11 is not closed (no period_close); "
        "last completed month: 2026-10",
        {"last_completed_month": "2026-10", "due_month": "2026-11", "due_at": "2026-12-03T00:00:00Z"},
    )


def test_a_month_computed_before_it_is_due_is_the_last_completed_one():
    check = check_payout(at("2026-12-01T10:00:00Z"), "2026-09", {"2026-09", "2026-10", "2026-11"})
    assert (check.ok, check.data["last_completed_month"], check.data["due_month"]) == (True, "2026-11", "2026-10")


def test_nothing_is_due_before_the_first_month_is():
    check = check_payout(at("2026-10-02T23:59:59Z"), "2026-09", set())
    assert check == Check(
        True,
        "no payout due yet: the first month 2026-09 is due 2026-10-03T00:00:00Z",
        {"last_completed_month": None, "due_month": None, "due_at": None},
    )
    overdue = check_payout(at("2026-10-03T00:00:00Z"), "2026-09", set())
    assert (overdue.ok, overdue.data["due_month"], overdue.data["last_completed_month"]) == (False, "2026-09", None)


def test_completed_months_are_read_from_the_lake(tmp_path):
    lake = Lake(tmp_path / "warehouse")
    for month in ("2026-09", "2026-10"):
        with lake.write_partition("period_close", month):
            pass
    with lake.write_partition("payee_earnings", "2026-11"):  # not statements: does not count
        pass
    assert months_between("2026-11", "2027-02") == ["2026-11", "2026-12", "2027-01", "2027-02"]
    assert months_between("2026-11", "2026-10") == []
    assert last_closed_month(at("2026-12-01T00:00:00Z")) == "2026-11"
    assert completed_months(str(tmp_path / "warehouse"), "2026-08", at("2026-12-15T00:00:00Z")) == [
        "2026-09",
        "2026-10",
    ]


# --- daemon heartbeat -----------------------------------------------------------------------------

NOW = at("2026-12-02T12:00:00Z")


def test_a_heartbeat_30_s_old_is_ok():
    check = check_heartbeats(NOW, {"SENSOR": NOW.timestamp() - 30}, 120)
    assert check == Check(
        True,
        "newest heartbeat 30 s ago (SENSOR)",
        {"newest_heartbeat_age_seconds": 30.0, "tolerance_seconds": 120, "heartbeat_ages_seconds": {"SENSOR": 30.0}},
    )


def test_a_heartbeat_200_s_old_is_not_ok():
    check = check_heartbeats(NOW, {"SENSOR": NOW.timestamp() - 200}, 120)
    assert not check.ok
    assert check.detail == "newest heartbeat 200 s ago (SENSOR), older than 120 s: is dagster-daemon running?"


def test_the_newest_heartbeat_counts_and_the_tolerance_is_exclusive():
    beats = {"SCHEDULER": NOW.timestamp() - 500, "SENSOR": NOW.timestamp() - 119.5}
    check = check_heartbeats(NOW, beats, 120)
    assert check.ok
    assert check.data["heartbeat_ages_seconds"] == {"SCHEDULER": 500.0, "SENSOR": 119.5}
    assert not check_heartbeats(NOW, {"SENSOR": NOW.timestamp() - 120}, 120).ok
    assert check_heartbeats(NOW, {"SENSOR": NOW.timestamp() - 200}, 300).ok


def test_no_heartbeat_at_all_is_not_ok():
    assert check_heartbeats(NOW, {}, 120) == Check(
        False,
        "no daemon heartbeat in the instance: is dagster-daemon running?",
        {"newest_heartbeat_age_seconds": None, "tolerance_seconds": 120},
    )


# --- the command, against the real PostgreSQL -----------------------------------------------------


@pytest.fixture
def throwaway_database():
    name = f"fairstream_health_{uuid.uuid4().hex[:10]}"
    with connect_admin() as admin:  # fails (never skips) when PostgreSQL is unreachable
        admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    with connect_admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def deployment(tmp_path, throwaway_database) -> dict[str, str]:
    """The environment of a deployment: the repo's dagster.yaml on a fresh database, no daemon."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAIRSTREAM_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        FAIRSTREAM_PG_HOST=PG.host,
        FAIRSTREAM_PG_PORT=str(PG.port),
        FAIRSTREAM_PG_USER=PG.user,
        FAIRSTREAM_PG_PASSWORD=PG.password,
        FAIRSTREAM_PG_DB=throwaway_database,
        FAIRSTREAM_WAREHOUSE_DIR=str(tmp_path / "warehouse"),
        FAIRSTREAM_FIRST_MONTH="2026-09",
    )
    return env


def health(env: dict[str, str], *args: str) -> tuple[int, dict]:
    done = subprocess.run(
        [str(BIN / "fairstream"), "health", *args], env=env, capture_output=True, text=True, timeout=60
    )
    try:
        return done.returncode, json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"not JSON (exit {done.returncode}): {done.stdout}\n{done.stderr[-3000:]}")


def test_without_a_daemon_postgres_is_ok_and_the_daemon_is_not(deployment):
    code, report = health(deployment, "--now", "2026-10-02T00:00:00Z")
    assert code == 1
    db = deployment["FAIRSTREAM_PG_DB"]
    assert report == {
        "ok": False,
        "now": "2026-10-02T00:00:00Z",
        "checks": {
            "postgres": {"ok": True, "detail": f"reachable at {PG.host}:{PG.port}/{db}"},
            "daemon": {
                "ok": False,
                "detail": "no daemon heartbeat in the instance: is dagster-daemon running?",
                "newest_heartbeat_age_seconds": None,
                "tolerance_seconds": 120.0,
            },
            "payout": {
                "ok": True,
                "detail": "no payout due yet: the first month 2026-09 is due 2026-10-03T00:00:00Z",
                "last_completed_month": None,
                "due_month": None,
                "due_at": None,
            },
            "alerts": {
                "ok": False,
                "detail": "alerts are not configured: set FAIRSTREAM_ALERT_WEBHOOK_URL or FAIRSTREAM_SMTP_HOST",
                "warning": True,
                "channels": [],
            },
        },
        "warnings": ["alerts are not configured: set FAIRSTREAM_ALERT_WEBHOOK_URL or FAIRSTREAM_SMTP_HOST"],
    }


def test_a_fresh_heartbeat_and_a_complete_payout_are_healthy(deployment):
    beat = subprocess.run(
        [str(BIN / "dagster-daemon"), "debug", "heartbeat"], env=deployment, capture_output=True, text=True, timeout=60
    )
    assert beat.returncode == 0, beat.stderr[-3000:]
    month = last_closed_month(datetime.now(UTC))
    with Lake(deployment["FAIRSTREAM_WAREHOUSE_DIR"]).write_partition("period_close", month):
        pass
    env = {**deployment, "FAIRSTREAM_FIRST_MONTH": month}

    code, report = health(env, "--heartbeat-tolerance", "60")
    assert code == 0, report  # alerts are not configured: a warning, the deployment is still healthy
    assert report["ok"] is True
    assert {name: c["ok"] for name, c in report["checks"].items()} == {
        "postgres": True, "daemon": True, "payout": True, "alerts": False
    }
    assert report["warnings"] == ["alerts are not configured: set FAIRSTREAM_ALERT_WEBHOOK_URL or FAIRSTREAM_SMTP_HOST"]

    # with a webhook the warning is gone
    code, report = health({**env, "FAIRSTREAM_ALERT_WEBHOOK_URL": "http://hooks.fairstream.test/alerts"},
                          "--heartbeat-tolerance", "60")
    assert code == 0
    assert report["checks"]["alerts"] == {"ok": True, "detail": "failure alerts go to webhook", "channels": ["webhook"]}
    assert report["warnings"] == []
    assert report["checks"]["daemon"]["detail"].endswith("(SENSOR)")
    assert 0 <= report["checks"]["daemon"]["newest_heartbeat_age_seconds"] < 60
    assert report["checks"]["payout"]["last_completed_month"] == month

    # the same heartbeat, judged 10 minutes later
    later = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    code, report = health(env, "--now", later)
    assert code == 1
    assert report["checks"]["daemon"]["ok"] is False


def test_an_unreachable_postgres_is_not_ok(deployment):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    env = {**deployment, "FAIRSTREAM_PG_PORT": str(closed)}
    code, report = health(env, "--now", "2026-10-02T00:00:00Z")
    assert code == 1
    postgres = report["checks"]["postgres"]
    assert postgres["ok"] is False
    assert postgres["detail"].startswith(f"cannot reach {PG.host}:{closed}/{deployment['FAIRSTREAM_PG_DB']}: ")
    assert "Connection refused" in postgres["detail"]
    assert report["checks"]["daemon"] == {"ok": False, "detail": "not checked: the instance's PostgreSQL is unreachable"}
    assert report["checks"]["payout"]["ok"] is True


def test_the_command_rejects_a_bad_time_and_tolerance(deployment):
    for args, message in (
        (["--now", "yesterday"], "argument --now: expected an ISO 8601 time, got 'yesterday'"),
        (["--heartbeat-tolerance", "0"], "argument --heartbeat-tolerance: must be > 0, got 0"),
    ):
        done = subprocess.run(
            [str(BIN / "fairstream"), "health", *args], env=deployment, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2
        assert message in done.stderr

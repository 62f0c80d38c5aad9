"""The landing-zone sensor, tick by tick, with its cursor carried between ticks as the daemon does."""

import json

import dagster as dg
import duckdb
import pytest

from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.ingestion.landing_zone import LandingZone

from fairstream_pipeline.defs.ingestion.sensors import landing_zone_sensor
from fairstream_pipeline_tests.payout_cases import MonthCase, Plays

JAN, FEB = "2024-01", "2024-02"  # the first two partitions


def case(extra_plays: int = 0) -> MonthCase:
    return MonthCase(
        [("U1", "premium", "FR", 1000), ("U2", "premium", "FR", 500)],
        [Plays("U1", "X", 2), Plays("U2", "Y", 1 + extra_plays)],
    )


class Daemon:
    """Evaluates the sensor like the daemon: the cursor of one tick is the input of the next."""

    def __init__(self, resources):
        self.resources = resources
        self.cursor = None

    def tick(self):
        with dg.build_sensor_context(cursor=self.cursor, resources=self.resources) as context:
            result = landing_zone_sensor()(context)
        if isinstance(result, dg.SensorResult):
            self.cursor = result.cursor
            return result.run_requests
        return result


@pytest.fixture
def daemon(resources):
    return Daemon({k: resources[k] for k in ("landing_zone", "warehouse")})


def skip_text(result) -> str:
    assert isinstance(result, dg.SkipReason), result
    return result.skip_message


def test_nothing_in_the_landing_zone(daemon):
    assert skip_text(daemon.tick()) == "no listening events in the landing zone"


def test_an_incomplete_month_is_not_requested(daemon, landing):
    case().write(landing, JAN)
    for day in ("2024-01-30", "2024-01-31"):
        (landing.root / "listening_events" / f"date={day}" / "_SUCCESS").unlink()
    assert skip_text(daemon.tick()) == "2024-01: incomplete, 2 day(s) without _SUCCESS"


def test_complete_month_requested_once_then_up_to_date_then_restated_after_a_late_file(
    daemon, landing, materialize_month
):
    case().write(landing, JAN)
    fingerprint = LandingZone(landing.root).month_fingerprint(JAN)

    (first,) = daemon.tick()
    assert first.partition_key == JAN
    assert first.run_key.startswith(f"{JAN}:{fingerprint}:first:") and first.run_key.endswith(":1")
    assert first.tags["fairstream/purpose"] == "payout"
    state = first.run_key.removeprefix(f"{JAN}:").removesuffix(":1")
    assert json.loads(daemon.cursor) == {"requested": {JAN: state}, "serial": 1}

    # Unchanged data is never requested again, even before the run finished.
    assert skip_text(daemon.tick()) == "2024-01: a run was already requested for these files"

    # A restarted daemon reads the stored cursor back: same answer.
    restarted = Daemon(daemon.resources)
    restarted.cursor = daemon.cursor
    assert skip_text(restarted.tick()) == "2024-01: a run was already requested for these files"

    assert materialize_month(JAN).success  # computes and closes January
    assert skip_text(daemon.tick()) == "2024-01: up to date (closed)"

    late = landing.events("2024-01-15", [("late-1", "U1", "X", "2024-01-15 10:00", 60_000)], name="late.parquet")
    (again,) = daemon.tick()
    assert again.partition_key == JAN
    assert again.tags["fairstream/purpose"] == "restatement"
    assert again.run_key.endswith(":closed:2")

    assert materialize_month(JAN).success
    assert skip_text(daemon.tick()) == "2024-01: up to date (closed)"

    # The late file is withdrawn: the month is back to its first files and must be restated again,
    # under a run key Dagster has not seen (it silently drops repeated run keys).
    late.unlink()
    (withdrawn,) = daemon.tick()
    assert withdrawn.partition_key == JAN
    assert withdrawn.run_key == f"{JAN}:{fingerprint}:closed:3"


def test_drafts_are_requested_in_order_and_a_recomputed_month_restales_the_next(
    daemon, landing, materialize_month, monkeypatch
):
    monkeypatch.setenv("FAIRSTREAM_AUTO_CLOSE", "false")  # both months stay open drafts
    case().write(landing, JAN)
    case(extra_plays=1).write(landing, FEB)

    (jan,) = daemon.tick()
    assert jan.partition_key == JAN
    text = skip_text(daemon.tick())
    assert "2024-02: waiting for the previous month to be computed first" in text

    assert materialize_month(JAN).success
    (feb,) = daemon.tick()
    assert feb.partition_key == FEB
    assert materialize_month(FEB).success
    assert skip_text(daemon.tick()) == "2024-01: up to date; 2024-02: up to date"

    # A late file in January: January first; February waits, then follows with new openings.
    landing.events("2024-01-20", [("late-2", "U2", "Y", "2024-01-20 10:00", 60_000)], name="late.parquet")
    (jan_again,) = daemon.tick()
    assert jan_again.partition_key == JAN
    assert materialize_month(JAN).success
    (feb_again,) = daemon.tick()
    assert feb_again.partition_key == FEB
    assert feb_again.run_key != feb.run_key


def test_a_restated_closed_month_recomputes_the_open_draft_that_follows(
    daemon, landing, materialize_month, monkeypatch, tmp_path
):
    case().write(landing, JAN)
    case().write(landing, FEB)
    assert materialize_month(JAN).success  # January is computed and closed
    monkeypatch.setenv("FAIRSTREAM_AUTO_CLOSE", "false")
    assert materialize_month(FEB).success  # February is a draft under review
    assert skip_text(daemon.tick()) == "2024-01: up to date (closed); 2024-02: up to date"

    # U1 also played Y on 2024-01-15: January's X and Y split U1's 1000 cents.
    landing.events("2024-01-15", [("late-3", "U1", "Y", "2024-01-15 10:00", 60_000)], name="late.parquet")
    (restate,) = daemon.tick()
    assert (restate.partition_key, restate.tags["fairstream/purpose"]) == (JAN, "restatement")
    # February's draft is current until January's earnings are actually restated.
    assert skip_text(daemon.tick()) == "2024-01: a run was already requested for these files; 2024-02: up to date"
    assert materialize_month(JAN).success

    (draft,) = daemon.tick()
    assert (draft.partition_key, draft.tags["fairstream/purpose"]) == (FEB, "payout")
    assert materialize_month(FEB).success
    assert skip_text(daemon.tick()) == "2024-01: up to date (closed); 2024-02: up to date"
    lake = Lake(tmp_path / "warehouse")
    adjustments = duckdb.sql(
        f"SELECT payee_id, source_month, cents FROM {read_parquet(lake.parquet_glob('payee_adjustments', FEB))} "
        "ORDER BY payee_id"
    ).fetchall()
    # Default rules (70% royalty share): U1's 700 cents were X's (X 2 plays); now X 2/3, Y 1/3.
    assert adjustments == [("X", JAN, -233), ("Y", JAN, 233)]

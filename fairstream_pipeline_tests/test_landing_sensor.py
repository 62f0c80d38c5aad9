"""The landing-zone sensor, tick by tick, with its cursor carried between ticks as the daemon does."""

import json

import dagster as dg
import pytest

from fairstream_pipeline.defs.sensors import landing_zone_sensor
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
        context = dg.build_sensor_context(cursor=self.cursor, resources=self.resources)
        result = landing_zone_sensor(context)
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


def test_complete_month_requested_once_then_up_to_date_then_again_after_a_late_file(
    daemon, landing, materialize_month
):
    case().write(landing, JAN)

    (first,) = daemon.tick()
    assert first.partition_key == JAN
    assert first.run_key.startswith(f"{JAN}:") and first.run_key.endswith(":first:1")
    state = first.run_key.removeprefix(f"{JAN}:").removesuffix(":1")
    assert json.loads(daemon.cursor) == {"requested": {JAN: state}, "serial": 1}

    # Unchanged data is never requested again, even before the run finished.
    assert skip_text(daemon.tick()) == "2024-01: a run was already requested for these files"

    # A restarted daemon reads the stored cursor back: same answer.
    restarted = Daemon(daemon.resources)
    restarted.cursor = daemon.cursor
    assert skip_text(restarted.tick()) == "2024-01: a run was already requested for these files"

    assert materialize_month(JAN).success
    assert skip_text(daemon.tick()) == "2024-01: up to date"

    late = landing.events("2024-01-15", [("late-1", "U1", "X", "2024-01-15 10:00", 60_000)], name="late.parquet")
    (again,) = daemon.tick()
    assert again.partition_key == JAN
    assert again.run_key != first.run_key

    assert materialize_month(JAN).success

    # The late file is withdrawn: the month is back to its first state and must be recomputed,
    # under a run key Dagster has not seen (it silently drops repeated run keys).
    late.unlink()
    (withdrawn,) = daemon.tick()
    assert withdrawn.partition_key == JAN
    assert withdrawn.run_key.removesuffix(":3") == first.run_key.removesuffix(":1")
    assert withdrawn.run_key not in {first.run_key, again.run_key}


def test_months_are_requested_in_order_and_a_recomputed_month_restales_the_next(
    daemon, landing, materialize_month
):
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

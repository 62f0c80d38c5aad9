"""The monthly schedule, evaluated at fixed times."""

from datetime import datetime, timezone

import dagster as dg
import pytest


@pytest.fixture(scope="module")
def schedule(definitions):
    return definitions.resolve_schedule_def("monthly_payout_schedule")


def tick(schedule, when: datetime) -> list[dg.RunRequest]:
    # An ephemeral instance: dg.instance_for_test leaves a dangling global behind when it closes,
    # which breaks later dg.materialize calls in the same session.
    instance = dg.DagsterInstance.ephemeral()
    try:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
        return list(schedule.evaluate_tick(context).run_requests)
    finally:
        instance.dispose()


def test_runs_on_the_first_at_four_utc(schedule):
    assert schedule.cron_schedule == "0 4 1 * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.job_name == "monthly_payout_job"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


@pytest.mark.parametrize(
    ("when", "month"),
    [
        (datetime(2027, 1, 1, 4, tzinfo=timezone.utc), "2026-12"),
        (datetime(2028, 3, 1, 4, tzinfo=timezone.utc), "2028-02"),  # leap year
        (datetime(2026, 11, 1, 4, tzinfo=timezone.utc), "2026-10"),
    ],
)
def test_each_tick_pays_the_month_that_just_closed(schedule, when, month):
    (request,) = tick(schedule, when)
    assert request.partition_key == month


def test_the_same_tick_twice_gives_the_same_run_key(schedule):
    when = datetime(2027, 1, 1, 4, tzinfo=timezone.utc)
    (first,) = tick(schedule, when)
    (second,) = tick(schedule, when)
    assert first.run_key is not None
    assert first.run_key == second.run_key


def test_the_job_covers_the_whole_chain(definitions):
    job = definitions.resolve_job_def("monthly_payout_job")
    keys = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert keys == {
        "landing_month", "billed_users", "ad_revenue", "clean_plays", "play_quarantine", "track_splits",
        "payee_directory", "user_streams", "flagged_users", "segment_pools", "track_earnings", "professional_artists",
        "payee_earnings", "payee_statements", "payee_adjustments", "period_close", "statement_notifications",
        "published_statements", "statement_outbox", "payment_details", "payment_batch",
    }

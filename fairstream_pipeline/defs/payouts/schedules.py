"""The schedule: on the 1st of each month at 04:00 UTC, pay the month that just closed."""

import dagster as dg

from fairstream_pipeline.defs.payouts.jobs import monthly_payout_job

monthly_payout_schedule = dg.build_schedule_from_partitioned_job(
    monthly_payout_job,
    name="monthly_payout_schedule",
    description="Runs monthly_payout_job on the 1st at 04:00 UTC for the month that just closed.",
    day_of_month=1,
    hour_of_day=4,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

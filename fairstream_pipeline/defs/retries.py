"""Retry policies for the steps that touch the outside world (docs/operations.md, "Retries").

Pure computation (counting, pooling, rounding, statements) has no retry: the same input gives the
same error. Contract errors raise ``dg.Failure(allow_retries=False)`` and are never retried.
"""

import dagster as dg

from fairstream_pipeline.settings import get_settings

# Read when the definitions are imported: a RetryPolicy is fixed when its asset is decorated.
_SETTINGS = get_settings()

# Waiting for the collector: the first step retries until every day of the month has _SUCCESS.
# Defaults: 6 retries from 10 minutes, doubling, +/- jitter: 10, 20, 40, 80, 160, 320 min, about
# 10.5 hours in all, then the step fails with the list of days still missing.
WAIT_FOR_COMPLETE_MONTH = dg.RetryPolicy(
    max_retries=_SETTINGS.landing_wait_retries,
    delay=_SETTINGS.landing_wait_delay_seconds,
    backoff=dg.Backoff.EXPONENTIAL,
    jitter=dg.Jitter.PLUS_MINUS,
)

# Reading the landing zone (a network share in production): 3 retries, 2 s doubling, +/- jitter.
READ_LANDING_ZONE = dg.RetryPolicy(
    max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)

# Writing to the application database: 4 retries, 5 s doubling, +/- jitter (about 75 s in all).
# An outage longer than that fails the step; rerun_after_database_outage then runs the month again.
WRITE_DATABASE = dg.RetryPolicy(
    max_retries=_SETTINGS.database_write_retries,
    delay=_SETTINGS.database_write_delay_seconds,
    backoff=dg.Backoff.EXPONENTIAL,
    jitter=dg.Jitter.PLUS_MINUS,
)

"""Retries for the steps that touch the outside world (docs/operations.md, "Retries").

Pure computation (counting, pooling, rounding, statements) has no retry: the same input gives the
same error. Contract errors raise ``dg.Failure(allow_retries=False)`` and are never retried.

The budgets that are settings are read when a step fails, not when a module is imported: the step
asks for its next attempt with ``dg.RetryRequested``, the backoff computed as a ``dg.RetryPolicy``
of the same budget would (exponential, +/- jitter).
"""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from fairstream_pipeline.settings import get_settings

# Reading the landing zone (a network share in production): 3 retries, 2 s doubling, +/- jitter.
READ_LANDING_ZONE = dg.RetryPolicy(
    max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def retry_requested(context: dg.AssetExecutionContext, max_retries: int, delay_seconds: float) -> dg.RetryRequested:
    """The next attempt of this step, after ``delay_seconds`` doubled at each retry, +/- jitter."""
    policy = dg.RetryPolicy(
        max_retries=max_retries, delay=delay_seconds, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    )
    return dg.RetryRequested(
        max_retries=max_retries, seconds_to_wait=policy.calculate_delay(context.retry_number + 1)
    )


def landing_wait_attempts() -> int:
    """How many times the first step looks for a complete month (``FAIRSTREAM_LANDING_WAIT_RETRIES`` + 1)."""
    return get_settings().landing_wait_retries + 1


def wait_for_complete_month(context: dg.AssetExecutionContext) -> dg.RetryRequested:
    """Waiting for the collector. Defaults: 6 retries from 10 minutes, doubling, +/- jitter: 10, 20,
    40, 80, 160, 320 min, about 10.5 hours in all; then the step fails with the days still missing."""
    settings = get_settings()
    return retry_requested(context, settings.landing_wait_retries, settings.landing_wait_delay_seconds)


@contextmanager
def database_write_retries(context: dg.AssetExecutionContext) -> Iterator[None]:
    """Writing to the application database: any error but a contract error retries the step.
    Defaults: 4 retries, 5 s doubling, +/- jitter (about 75 s in all). An outage longer than that
    fails the step; rerun_after_database_outage then runs the month again."""
    try:
        yield
    except dg.Failure as failure:
        if not failure.allow_retries:
            raise
        raise _database_retry(context) from failure
    except (dg.RetryRequested, dg.DagsterError):
        raise  # a retry already asked for, or Dagster's own error
    except Exception as error:
        raise _database_retry(context) from error


def _database_retry(context: dg.AssetExecutionContext) -> dg.RetryRequested:
    settings = get_settings()
    return retry_requested(context, settings.database_write_retries, settings.database_write_delay_seconds)

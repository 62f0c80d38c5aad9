"""Deterministic sample months of the landing zone (``fairstream sample``, ``make demo``, ``make bench``).

The files follow the contract of ``lib/ingestion/landing_zone.py`` (``docs/data-contract.md``); the
model, its rates and the injected anomalies are in ``docs/sample-data.md``. No Dagster here.
"""

from fairstream_pipeline.lib.months import parse_month
from fairstream_pipeline.sample.generate import (
    MIN_TRACKS,
    MIN_USERS,
    SampleSummary,
    default_events,
    default_tracks,
    generate_month,
)

__all__ = [
    "MIN_TRACKS",
    "MIN_USERS",
    "SampleSummary",
    "default_events",
    "default_tracks",
    "generate_month",
    "parse_month",
]

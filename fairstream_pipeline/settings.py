"""Configuration by environment variable, with the defaults documented in the README."""

from __future__ import annotations

import os

from fairstream_pipeline.lib.months import parse_month

DEFAULTS = {
    "FAIRSTREAM_LANDING_DIR": "data/landing",
    "FAIRSTREAM_WAREHOUSE_DIR": "data/warehouse",
    "FAIRSTREAM_FIRST_MONTH": "2024-01",
    "FAIRSTREAM_DUCKDB_MEMORY_LIMIT": "4GB",
    "FAIRSTREAM_DUCKDB_THREADS": "",  # empty: every core
    "FAIRSTREAM_DUCKDB_TEMP_DIR": "",  # empty: <warehouse>/.duckdb_tmp
    "FAIRSTREAM_LANDING_WAIT_RETRIES": "6",
    "FAIRSTREAM_LANDING_WAIT_DELAY_SECONDS": "600",
    "FAIRSTREAM_SENSOR_INTERVAL_SECONDS": "60",
    "FAIRSTREAM_MESSAGE_ID_DOMAIN": "statements.fairstream.example",
}


def setting(name: str) -> str:
    """The value of a FairStream environment variable, or its documented default."""
    return os.environ.get(name) or DEFAULTS[name]


def first_month() -> str:
    """The first payout month (``FAIRSTREAM_FIRST_MONTH``), validated as ``YYYY-MM``."""
    value = setting("FAIRSTREAM_FIRST_MONTH")
    try:
        parse_month(value)
    except ValueError as exc:
        raise ValueError(f"FAIRSTREAM_FIRST_MONTH: {exc}") from exc
    return value

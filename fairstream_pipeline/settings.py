"""Configuration by environment variable, with the defaults documented in the README."""

from __future__ import annotations

import os

from fairstream_pipeline.lib.months import parse_month
from fairstream_pipeline.lib.ingestion.user_buckets import check_buckets

DEFAULTS = {
    "FAIRSTREAM_LANDING_DIR": "data/landing",
    "FAIRSTREAM_WAREHOUSE_DIR": "data/warehouse",
    "FAIRSTREAM_FIRST_MONTH": "2024-01",
    "FAIRSTREAM_DUCKDB_MEMORY_LIMIT": "4GB",
    "FAIRSTREAM_DUCKDB_THREADS": "",  # empty: every core
    "FAIRSTREAM_DUCKDB_TEMP_DIR": "",  # empty: <warehouse>/.duckdb_tmp
    "FAIRSTREAM_LANDING_WAIT_RETRIES": "6",
    "FAIRSTREAM_LANDING_WAIT_DELAY_SECONDS": "600",
    "FAIRSTREAM_DATABASE_WRITE_RETRIES": "4",
    "FAIRSTREAM_DATABASE_WRITE_DELAY_SECONDS": "5",
    "FAIRSTREAM_SENSOR_INTERVAL_SECONDS": "60",
    "FAIRSTREAM_USER_BUCKETS": "8",  # docs/performance.md: a third of the peak memory for +5% time
    "FAIRSTREAM_CELERY_BROKER": "pyamqp://guest:guest@127.0.0.1:5672//",
    "FAIRSTREAM_CELERY_BACKEND": "rpc://",
    "FAIRSTREAM_MESSAGE_ID_DOMAIN": "statements.fairstream.example",
    "FAIRSTREAM_AUTO_CLOSE": "true",
}
TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def setting(name: str) -> str:
    """The value of a FairStream environment variable, or its documented default."""
    return os.environ.get(name) or DEFAULTS[name]


def parse_flag(name: str, value: str) -> bool:
    """``value`` of the true/false setting ``name``; anything else is an error naming the variable."""
    value = value.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValueError(f"{name}: expected true or false, got {value!r}")


def flag(name: str) -> bool:
    """A true/false FairStream setting."""
    return parse_flag(name, setting(name))


def auto_close() -> bool:
    """Whether a run that computes a month's draft also closes it (``FAIRSTREAM_AUTO_CLOSE``)."""
    return flag("FAIRSTREAM_AUTO_CLOSE")


def first_month() -> str:
    """The first payout month (``FAIRSTREAM_FIRST_MONTH``), validated as ``YYYY-MM``."""
    value = setting("FAIRSTREAM_FIRST_MONTH")
    try:
        parse_month(value)
    except ValueError as exc:
        raise ValueError(f"FAIRSTREAM_FIRST_MONTH: {exc}") from exc
    return value


def user_buckets() -> int:
    """``FAIRSTREAM_USER_BUCKETS``: how many user buckets a month's clean plays and shards use."""
    value = setting("FAIRSTREAM_USER_BUCKETS")
    try:
        return check_buckets(int(value))
    except ValueError as exc:
        raise ValueError(f"FAIRSTREAM_USER_BUCKETS: {exc}") from None

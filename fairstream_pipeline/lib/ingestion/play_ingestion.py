"""The three stages of the listening events (``lib.ingestion.plays``) one after the other, in one
process, as the tests run them (the Dagster graph runs them as separate steps)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb

from fairstream_pipeline.lib.ingestion.landing_zone import LandingZone
from fairstream_pipeline.lib.ingestion.play_day import ROWS_PER_PASS, ingest_play_day
from fairstream_pipeline.lib.ingestion.play_merge import merge_play_days
from fairstream_pipeline.lib.ingestion.play_plan import plan_plays
from fairstream_pipeline.lib.ingestion.plays import PlayIngestion


def ingest_plays(
    con: duckdb.DuckDBPyConnection,
    zone: LandingZone,
    month: str,
    billed_users_glob: str,
    buckets: int | Callable[[int], int],
    scratch: Path,
    clean_dir: Path,
    quarantine_file: Path,
    rows_per_pass: int = ROWS_PER_PASS,
) -> PlayIngestion:
    """The three stages one after the other, with their work folders under ``scratch``."""
    plan = scratch / "plan"
    plan.mkdir(parents=True, exist_ok=True)
    days = plan_plays(con, zone, month, billed_users_glob, buckets, plan)
    folders = []
    for day in days:
        folder = scratch / f"day={day.isoformat()}"
        ingest_play_day(con, zone.root, plan, day, folder, rows_per_pass)
        folders.append(folder)
    return merge_play_days(con, zone.root, folders, clean_dir, quarantine_file, plan)

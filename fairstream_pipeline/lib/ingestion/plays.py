"""Listening events to clean plays and a quarantine, one UTC day at a time, with DuckDB.

Three stages, which the ``ingest_listening_events`` graph runs as a plan step, one step per day
and a merge (``lib.ingestion.play_ingestion.ingest_plays`` runs them one after the other):

1. ``play_plan.plan_plays`` checks the month is complete, lists its event files and writes the
   month's dictionaries: users (the billed users, with their bucket) and the catalog's tracks.
2. ``play_day.ingest_play_day`` classifies every event row of one day (``docs/data-contract.md``):
   reasons are applied in the order of ``QUARANTINE_REASONS``, and exact duplicates (copies of a
   play share ``played_at``, hence the day) are dropped and counted. It writes the day's clean plays,
   integer-coded, one file per user bucket (``lib.ingestion.clean_plays``), the day's removed rows, its
   quarantine and the ids of its tracks missing from the catalog. Two passes over the day's files:
   the hashes of ``event_id`` seen more than once that day; then every row, coded, with the few
   that need a decision (row-level problems, unbilled users, repeated ids) kept in full. The second
   pass takes the day's files in groups of at most ``ROWS_PER_PASS`` rows; the rows needing a
   decision wait for the whole day. Memory is bounded by a group's rows plus the day's coded plays
   (about 36 bytes each).
3. ``play_merge.merge_play_days`` puts the days together: the removals, the quarantine, the track
   dictionary (the catalog's tracks, then the month's uncatalogued ones) and the play files.

Nothing is written to the published month when a stage raises; a contract error names the file.
This module holds what the stages share: the accounting they return, the files a day leaves for
the merge, and how the planned event files are read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from fairstream_pipeline.lib.ingestion import clean_plays
from fairstream_pipeline.lib.ingestion.landing_files import DataFile, file_columns
from fairstream_pipeline.lib.ingestion.landing_zone import LANDING_EVENTS
from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet

QUARANTINE_REASONS = ("invalid_row", "outside_partition", "conflicting_duplicate", "unknown_user")
# What a day step leaves in its folder for the merge, beside its play files and removed rows.
DAY_RECORD = "_day.json"
DAY_QUARANTINE = "quarantine.parquet"
DAY_UNCATALOGUED = "uncatalogued.parquet"


def event_columns_sql(path: Path) -> str:
    """The event columns of one landing file, ``source`` a null when the file has no such column."""
    return LANDING_EVENTS.typed_columns_sql(present=file_columns(path))


@dataclass(frozen=True)
class PlayIngestion:
    """The accounting of one month (or one day) of listening events."""

    rows_read: int
    clean_plays: int
    duplicates_dropped: int
    quarantined: dict[str, int] = field(default_factory=dict)
    files: list[DataFile] = field(default_factory=list)
    active_plays: int = 0  # clean plays started by search or an editorial playlist (ACPS v1)
    unknown_sources: dict[str, int] = field(default_factory=dict)  # rows read, by source not in the contract
    # each play file's content digest, by its path in the clean plays' folder (clean_plays.play_digests)
    play_digests: dict[str, str] = field(default_factory=dict)

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())


def indexed_rows(files: list[tuple[int, DataFile]], columns: str | Callable[[Path], str]) -> str:
    """The rows of ``files`` with ``file_index``, ``folder_date`` and ``file_row_number``
    (``columns``: the columns' SQL, or a function of the file's path that gives it).

    One ``read_parquet`` per file, glued with ``UNION ALL``: the file's index and day are
    constants, which is much cheaper than joining every row on its file name.
    """
    return " UNION ALL ".join(
        f"SELECT {index} AS file_index, DATE '{f.folder_date.isoformat()}' AS folder_date, "
        f"file_row_number, {columns(f.path) if callable(columns) else columns} "
        f"FROM {read_parquet(str(f.path), file_row_number=True)}"
        for index, f in files
    )


def file_groups(files: list[tuple[int, DataFile]], rows_per_group: int) -> list[list[tuple[int, DataFile]]]:
    """``files`` cut, in order, into groups of at most ``rows_per_group`` rows (by the footers); a
    file larger than that is a group of its own. No files, no groups."""
    groups: list[list[tuple[int, DataFile]]] = []
    rows = 0
    for entry in files:
        if not groups or rows + entry[1].num_rows > rows_per_group:
            groups.append([])
            rows = 0
        groups[-1].append(entry)
        rows += entry[1].num_rows
    return groups


def planned_files(
    con: duckdb.DuckDBPyConnection, landing_root: Path, plan: Path, day: date | None = None
) -> list[tuple[int, DataFile]]:
    """The event files the plan listed (of ``day``, or all of them), each with its index."""
    rows = con.execute(
        f"SELECT file_index, source_file, folder_date, num_rows, size_bytes, mtime_ns "
        f"FROM {read_parquet(str(plan / clean_plays.FILES))} "
        + (f"WHERE folder_date = DATE '{day.isoformat()}' " if day else "")
        + "ORDER BY file_index"
    ).fetchall()
    return [
        (index, DataFile(Path(landing_root) / source, source, num_rows, size, mtime, folder_date))
        for index, source, folder_date, num_rows, size, mtime in rows
    ]

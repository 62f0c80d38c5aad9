"""Stage 3 of the listening events (``lib.ingestion.plays``): the days put together into the month's
clean plays and quarantine."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb

from fairstream_pipeline.lib.ingestion import clean_plays
from fairstream_pipeline.lib.ingestion.landing_files import DataFile
from fairstream_pipeline.lib.ingestion.monthly_tables import copy_to_parquet
from fairstream_pipeline.lib.ingestion.plays import (
    DAY_QUARANTINE,
    DAY_RECORD,
    DAY_UNCATALOGUED,
    QUARANTINE_REASONS,
    PlayIngestion,
    planned_files,
)
from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet


def merge_play_days(
    con: duckdb.DuckDBPyConnection,
    landing_root: Path,
    day_folders: list[Path],
    clean_dir: Path,
    quarantine_file: Path,
    plan: Path | None = None,
) -> PlayIngestion:
    """Put the days' results together into ``clean_dir`` (the clean plays' month folder) and
    ``quarantine_file``. Each day's record names its plan (a re-execution from failure may mix the
    parent run's days with its own); ``plan`` is needed only for a month without a day.
    Fails naming the days when the folders are not exactly the planned days."""
    folders = [Path(f) for f in day_folders]
    records, plan = _day_records(folders, plan)
    files = planned_files(con, landing_root, plan)
    planned = sorted({f.folder_date.isoformat() for _, f in files})
    if sorted(r["day"] for r in records) != planned:
        raise ValueError(f"the days ingested {sorted(r['day'] for r in records)} are not the month's days {planned}")
    _merge_removals(con, folders, clean_dir, quarantine_file)
    _merge_track_dictionary(con, plan, folders, clean_dir)
    for name in (clean_plays.FILES, clean_plays.USERS, clean_plays.ARTISTS, clean_plays.DICTIONARY):
        shutil.copyfile(plan / name, clean_dir / name)
    for folder in folders:
        for source in clean_plays.play_files(folder):
            target = clean_dir / source.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            _link(source, target)
    return _added_up(records, files)


def _day_records(folders: list[Path], plan: Path | None) -> tuple[list[dict], Path]:
    """Each day's record, and the one plan they all come from."""
    records = []
    for folder in folders:
        if not (folder / DAY_RECORD).is_file():
            raise FileNotFoundError(f"the results of a day are missing for the merge: {folder / DAY_RECORD}")
        records.append(json.loads((folder / DAY_RECORD).read_text()))
    plans = {Path(r["plan"]) for r in records} or ({Path(plan)} if plan else set())
    if len(plans) != 1:
        raise ValueError(f"the days to merge do not come from one plan: {sorted(map(str, plans))}")
    (plan,) = plans
    return records, plan


def _parts(folders: list[Path], name: str) -> list[str]:
    """The file ``name`` of each day folder."""
    return [str(f / name) for f in folders]


def _merge_removals(con: duckdb.DuckDBPyConnection, folders: list[Path], clean_dir: Path, quarantine_file: Path) -> None:
    """The month's removed rows (in the clean plays' folder) and its quarantine, from the days'."""
    copy_to_parquet(
        con,
        f"SELECT * FROM {read_parquet(_parts(folders, clean_plays.REMOVED))} ORDER BY file_index, file_row_number"
        if folders
        else "SELECT NULL::INTEGER AS file_index, NULL::BIGINT AS file_row_number, NULL::VARCHAR AS reason WHERE false",
        clean_dir / clean_plays.REMOVED,
    )
    copy_to_parquet(
        con,
        f"SELECT * FROM {read_parquet(_parts(folders, DAY_QUARANTINE))} ORDER BY source_file, file_row_number"
        if folders else
        "SELECT NULL::VARCHAR AS reason, NULL::VARCHAR AS source_file, NULL::BIGINT AS file_row_number, "
        "NULL::VARCHAR AS event_id, NULL::VARCHAR AS user_id, NULL::VARCHAR AS track_id, "
        "NULL::TIMESTAMPTZ AS played_at, NULL::BIGINT AS ms_played WHERE false",
        quarantine_file,
    )


def _merge_track_dictionary(con: duckdb.DuckDBPyConnection, plan: Path, folders: list[Path], clean_dir: Path) -> None:
    """The month's track dictionary: the plan's catalogued tracks, then the days' uncatalogued ids."""
    catalogued = (
        f"SELECT track_index, track_id, catalogued, artist_index, noise FROM {read_parquet(str(plan / clean_plays.TRACKS))}"
    )
    uncatalogued = (
        f"SELECT DISTINCT track_id FROM {read_parquet(_parts(folders, DAY_UNCATALOGUED))}" if folders
        else "SELECT NULL::VARCHAR AS track_id WHERE false"
    )
    copy_to_parquet(
        con,
        f"""{catalogued}
            UNION ALL
            SELECT ((SELECT count(*) FROM ({catalogued})) + row_number() OVER (ORDER BY track_id) - 1)::INTEGER,
                   track_id, false, NULL::INTEGER, false
            FROM ({uncatalogued})
            ORDER BY track_index""",
        clean_dir / clean_plays.TRACKS,
    )


def _added_up(records: list[dict], files: list[tuple[int, DataFile]]) -> PlayIngestion:
    """The month's accounting: the days' records added up."""
    quarantined = {reason: sum(r["quarantined"][reason] for r in records) for reason in QUARANTINE_REASONS}
    unknown_sources: dict[str, int] = {}
    for r in records:
        for source, rows in r.get("unknown_sources", {}).items():
            unknown_sources[source] = unknown_sources.get(source, 0) + rows
    return PlayIngestion(
        rows_read=sum(r["rows_read"] for r in records),
        clean_plays=sum(r["clean_plays"] for r in records),
        duplicates_dropped=sum(r["duplicates_dropped"] for r in records),
        quarantined=quarantined,
        files=[f for _, f in files],
        active_plays=sum(r.get("active_plays", 0) for r in records),
        unknown_sources=dict(sorted(unknown_sources.items())),
        play_digests={path: digest for r in records for path, digest in r.get("play_digests", {}).items()},
    )


def _link(source: Path, target: Path) -> None:
    """A hard link (no copy) when the file system allows one, else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)

"""Stage 1 of the listening events (``lib.ingestion.plays``): the plan, the month's file list and
dictionaries, which every day step and the merge read."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb

from fairstream_pipeline.lib.ingestion import clean_plays
from fairstream_pipeline.lib.ingestion.landing_files import DataFile, file_columns
from fairstream_pipeline.lib.ingestion.landing_zone import (
    LANDING_TRACKS,
    TRACK_COLUMNS,
    LandingZone,
    LandingZoneError,
)
from fairstream_pipeline.lib.ingestion.monthly_tables import copy_to_parquet
from fairstream_pipeline.lib.ingestion.user_buckets import bucket_sql, check_buckets
from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.payouts.rules import NOISE


def plan_plays(
    con: duckdb.DuckDBPyConnection,
    zone: LandingZone,
    month: str,
    billed_users_glob: str,
    buckets: int | Callable[[int], int],
    folder: Path,
) -> list[date]:
    """Write the month's file list and dictionaries to ``folder``; return the days that have files.

    Users are ranked by ``user_id`` (``user_index`` from 0) with their bucket of ``buckets`` (a
    number, or a function of the month's event rows, counted from the footers, that chooses it);
    the catalog's distinct track ids are ranked the same way. A month without a catalog file codes
    every track as missing from the catalog.
    """
    zone.require_complete(month)
    files = list(enumerate(zone.event_files(month)))
    buckets = check_buckets(buckets(sum(f.num_rows for _, f in files)) if callable(buckets) else buckets)
    _write_file_list(con, files, folder)
    copy_to_parquet(
        con,
        f"""SELECT (row_number() OVER (ORDER BY user_id) - 1)::INTEGER AS user_index, user_id,
                   {bucket_sql('user_id', buckets)}::INTEGER AS bucket
            FROM {read_parquet(billed_users_glob)} ORDER BY user_id""",
        folder / clean_plays.USERS,
    )
    content_types = _write_track_dictionaries(con, zone, folder)
    users, tracks = (
        con.execute(f"SELECT count(*) FROM {read_parquet(str(folder / name))}").fetchall()[0][0]
        for name in (clean_plays.USERS, clean_plays.TRACKS)
    )
    (folder / clean_plays.DICTIONARY).write_text(
        json.dumps({"buckets": buckets, "users": users, "catalogued_tracks": tracks,
                    "unknown_content_types": dict(content_types)})
    )
    return sorted({f.folder_date for _, f in files})


def _write_file_list(con: duckdb.DuckDBPyConnection, files: list[tuple[int, DataFile]], folder: Path) -> None:
    """The month's event files, by index (``files.parquet``)."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE event_files (file_index INTEGER, source_file VARCHAR, "
        "folder_date DATE, num_rows BIGINT, size_bytes BIGINT, mtime_ns BIGINT)"
    ).fetchall()
    if files:
        con.executemany(
            "INSERT INTO event_files VALUES (?, ?, ?, ?, ?, ?)",
            [(i, f.relative_path, f.folder_date, f.num_rows, f.size_bytes, f.mtime_ns) for i, f in files],
        )
    copy_to_parquet(con, "SELECT * FROM event_files ORDER BY file_index", folder / clean_plays.FILES)


def _catalog_tracks(con: duckdb.DuckDBPyConnection, zone: LandingZone) -> tuple[str, list[tuple[str, int]]]:
    """A query of the catalog's tracks, one row per id (``track_id``, ``artist_id``,
    ``artist_name``, ``noise``), and the catalog's ``content_type`` values outside the contract
    with their rows. Without a catalog file, no tracks."""
    try:
        tracks_file = zone.catalog_file("tracks", TRACK_COLUMNS, LANDING_TRACKS.optional_kinds).path
        catalog = f"(SELECT {LANDING_TRACKS.typed_columns_sql(present=file_columns(tracks_file))} FROM {read_parquet(str(tracks_file))})"
        # One row per track id (a repeated id is ingest_catalog's error; here its first artist wins).
        catalog_tracks = f"""SELECT track_id, arg_min(artist_id, artist_name) AS artist_id,
                                    min(artist_name) AS artist_name, bool_or(content_type = '{NOISE}') AS noise
                             FROM {catalog} WHERE track_id IS NOT NULL AND track_id <> '' GROUP BY track_id"""
        content_types = con.execute(
            f"SELECT content_type, count(*) FROM {catalog} WHERE content_type IS NOT NULL "
            f"AND content_type NOT IN ('music', '{NOISE}') GROUP BY 1 ORDER BY 1"
        ).fetchall()
    except LandingZoneError:
        if (zone.root / "catalog" / "tracks.parquet").exists():
            raise
        catalog_tracks = ("SELECT NULL::VARCHAR AS track_id, NULL::VARCHAR AS artist_id, NULL::VARCHAR AS artist_name, "
                          "false AS noise WHERE false")
        content_types = []
    return catalog_tracks, content_types


def _write_track_dictionaries(
    con: duckdb.DuckDBPyConnection, zone: LandingZone, folder: Path
) -> list[tuple[str, int]]:
    """The catalog's artists and tracks (``artists.parquet``, ``tracks.parquet``); returns the
    catalog's ``content_type`` values outside the contract with their rows."""
    catalog_tracks, content_types = _catalog_tracks(con, zone)
    # The artist: its id, else its name (ACPS v1); the two kinds of key never collide.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE plan_tracks AS
            SELECT *, CASE WHEN artist_id IS NOT NULL AND artist_id <> '' THEN 'id:' || artist_id
                           WHEN artist_name IS NOT NULL AND artist_name <> '' THEN 'name:' || artist_name
                      END AS artist_key
            FROM ({catalog_tracks})"""
    ).fetchall()
    copy_to_parquet(
        con,
        """SELECT (row_number() OVER (ORDER BY artist_key) - 1)::INTEGER AS artist_index, artist_key,
                  min(artist_id) AS artist_id, min(artist_name) AS artist_name
           FROM plan_tracks WHERE artist_key IS NOT NULL GROUP BY artist_key ORDER BY artist_key""",
        folder / clean_plays.ARTISTS,
    )
    copy_to_parquet(
        con,
        f"""SELECT (row_number() OVER (ORDER BY t.track_id) - 1)::INTEGER AS track_index, t.track_id,
                   true AS catalogued, a.artist_index, coalesce(t.noise, false) AS noise
            FROM plan_tracks t LEFT JOIN {read_parquet(str(folder / clean_plays.ARTISTS))} a USING (artist_key)
            ORDER BY t.track_id""",
        folder / clean_plays.TRACKS,
    )
    con.execute("DROP TABLE plan_tracks").fetchall()
    return content_types

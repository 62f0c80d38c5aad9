"""Listening events to clean plays and a quarantine, one UTC day at a time, with DuckDB.

Three stages, which the ``ingest_listening_events`` graph runs as a plan step, one step per day
and a merge (:func:`ingest_plays` runs them one after the other):

1. :func:`plan_plays` checks the month is complete, lists its event files and writes the month's
   dictionaries: users (the billed users, with their bucket) and the catalog's tracks.
2. :func:`ingest_play_day` classifies every event row of one day (``docs/data-contract.md``):
   reasons are applied in the order of ``QUARANTINE_REASONS``, and exact duplicates (copies of a
   play share ``played_at``, hence the day) are dropped and counted. It writes the day's clean plays,
   integer-coded, one file per user bucket (``lib.ingestion.clean_plays``), the day's removed rows, its
   quarantine and the ids of its tracks missing from the catalog. Two passes over the day's files:
   the hashes of ``event_id`` seen more than once that day; then every row, coded, with the few
   that need a decision (row-level problems, unbilled users, repeated ids) kept in full. The second
   pass takes the day's files in groups of at most ``ROWS_PER_PASS`` rows; the rows needing a
   decision wait for the whole day. Memory is bounded by a group's rows plus the day's coded plays
   (about 36 bytes each).
3. :func:`merge_play_days` puts the days together: the removals, the quarantine, the track
   dictionary (the catalog's tracks, then the month's uncatalogued ones) and the play files.

Nothing is written to the published month when a stage raises; a contract error names the file.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from fairstream_pipeline.lib.ingestion import clean_plays
from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.faults import fault_point
from fairstream_pipeline.lib.ingestion.monthly_tables import copy_to_parquet, read_failure
from fairstream_pipeline.lib.ingestion.landing_zone import (
    LANDING_EVENTS,
    LANDING_TRACKS,
    TRACK_COLUMNS,
    DataFile,
    LandingZone,
    LandingZoneError,
    file_columns,
)
from fairstream_pipeline.lib.payouts.rules import ACTIVE_SOURCES, NOISE, PLAY_SOURCES
from fairstream_pipeline.lib.ingestion.user_buckets import bucket_sql, check_buckets

QUARANTINE_REASONS = ("invalid_row", "outside_partition", "conflicting_duplicate", "unknown_user")
DAY_RECORD = "_day.json"
DAY_QUARANTINE = "quarantine.parquet"
DAY_UNCATALOGUED = "uncatalogued.parquet"

# The coded columns of a clean play, then what a row needing a decision keeps of its landing row.
CLEAN_COLUMNS = (
    "bucket INTEGER, user_index INTEGER, track_index INTEGER, uncatalogued_track_id VARCHAR, ms_played BIGINT, "
    "active BOOLEAN"
)
SUSPECT_COLUMNS = (
    "file_index INTEGER, file_row_number BIGINT, row_reason VARCHAR, unknown_user BOOLEAN, "
    "event_id VARCHAR, user_id VARCHAR, track_id VARCHAR, played_at TIMESTAMPTZ"
)
CLEAN_NAMES, SUSPECT_NAMES = (", ".join(c.split()[0] for c in cs.split(", ")) for cs in (CLEAN_COLUMNS, SUSPECT_COLUMNS))
# At most this many event rows of a day are coded in one pass (one table in memory, ~110 bytes a
# row); a larger day is coded by groups of whole files. A day of 32M rows (a 1B-play month) peaked
# at 3.85 GiB in one pass, at the 4GB DuckDB limit, and at 2.84 GiB by groups, in the same time
# (docs/performance.md, "1B again").
ROWS_PER_PASS = 10_000_000

ROW_REASON_SQL = """CASE
    WHEN event_id IS NULL OR event_id = '' OR user_id IS NULL OR user_id = ''
         OR track_id IS NULL OR track_id = '' OR played_at IS NULL
         OR ms_played IS NULL OR ms_played < 0 THEN 'invalid_row'
    WHEN CAST(played_at AS DATE) <> folder_date THEN 'outside_partition'
END"""
_SOURCES = ", ".join(f"'{s}'" for s in PLAY_SOURCES)
ACTIVE_SQL = f"coalesce(source IN ({', '.join(repr(s) for s in ACTIVE_SOURCES)}), false)"
UNKNOWN_SOURCE_SQL = f"CASE WHEN source IS NOT NULL AND source NOT IN ({_SOURCES}) THEN source END"


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


# 1. The plan --------------------------------------------------------------------------------

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
    copy_to_parquet(
        con,
        f"""SELECT (row_number() OVER (ORDER BY user_id) - 1)::INTEGER AS user_index, user_id,
                   {bucket_sql('user_id', buckets)}::INTEGER AS bucket
            FROM {read_parquet(billed_users_glob)} ORDER BY user_id""",
        folder / clean_plays.USERS,
    )
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
    users, tracks = (
        con.execute(f"SELECT count(*) FROM {read_parquet(str(folder / name))}").fetchall()[0][0]
        for name in (clean_plays.USERS, clean_plays.TRACKS)
    )
    (folder / clean_plays.DICTIONARY).write_text(
        json.dumps({"buckets": buckets, "users": users, "catalogued_tracks": tracks,
                    "unknown_content_types": dict(content_types)})
    )
    return sorted({f.folder_date for _, f in files})


def _planned_files(con: duckdb.DuckDBPyConnection, landing_root: Path, plan: Path, day: date | None = None) -> list[tuple[int, DataFile]]:
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


# 2. One day ---------------------------------------------------------------------------------

def ingest_play_day(
    con: duckdb.DuckDBPyConnection, landing_root: Path, plan: Path, day: date, out: Path,
    rows_per_pass: int = ROWS_PER_PASS,
) -> PlayIngestion:
    """Classify every event row of ``day``; write its plays by bucket, removals, quarantine and
    uncatalogued track ids to ``out`` (see the module's docstring).

    The day's rows are coded ``rows_per_pass`` at a time at most (by groups of whole files,
    :func:`file_groups`), so that a large day stays within DuckDB's memory; the repeated ids are
    found over the whole day first, so the groups give the same result as one pass."""
    plan, out = Path(plan), Path(out)
    buckets = clean_plays.dictionary_record(plan)["buckets"]
    day_files = _planned_files(con, landing_root, plan, day)
    for _, f in day_files:
        stat = f.path.stat() if f.path.is_file() else None
        if stat is None or stat.st_size != f.size_bytes or stat.st_mtime_ns != f.mtime_ns:
            raise LandingZoneError(f"{f.relative_path}: changed or removed while the month was being ingested")
    fault_point("ingestion")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE users AS SELECT * FROM {read_parquet(str(plan / clean_plays.USERS))};
        CREATE OR REPLACE TEMP TABLE catalog AS SELECT track_index, track_id FROM {read_parquet(str(plan / clean_plays.TRACKS))};
        """
    ).fetchall()
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE repeated_ids AS
                SELECT hash(event_id) AS h FROM ({indexed_rows(day_files, 'event_id')})
                GROUP BY h HAVING count(*) > 1"""
        ).fetchall()
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE day_clean ({CLEAN_COLUMNS});
            CREATE OR REPLACE TEMP TABLE suspects ({CLEAN_COLUMNS}, {SUSPECT_COLUMNS});
            CREATE OR REPLACE TEMP TABLE unknown_sources (source VARCHAR, rows BIGINT);
            """
        ).fetchall()
        # Every row, coded, one group of files at a time; the raw columns are kept only for the
        # rows that need a decision, which wait in ``suspects`` for the whole day.
        for group in file_groups(day_files, rows_per_pass):
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE group_rows AS
                SELECT bucket, user_index, track_index,
                       CASE WHEN track_index IS NULL THEN track_id END AS uncatalogued_track_id,
                       ms_played, {ACTIVE_SQL} AS active, {UNKNOWN_SOURCE_SQL} AS unknown_source,
                       suspect, file_index, file_row_number, row_reason,
                       user_index IS NULL AS unknown_user,
                       CASE WHEN suspect THEN event_id END AS event_id,
                       CASE WHEN suspect THEN user_id END AS user_id,
                       CASE WHEN suspect THEN track_id END AS track_id,
                       CASE WHEN suspect THEN played_at END AS played_at
                FROM (
                    SELECT x.*, u.bucket, u.user_index, c.track_index,
                           x.row_reason IS NOT NULL OR d.h IS NOT NULL OR u.user_index IS NULL AS suspect
                    FROM (
                        SELECT *, {ROW_REASON_SQL} AS row_reason, hash(event_id) AS h
                        FROM ({indexed_rows(group, event_columns_sql)})
                    ) x
                    LEFT JOIN repeated_ids d ON d.h = x.h
                    LEFT JOIN users u ON u.user_id = x.user_id
                    LEFT JOIN catalog c ON c.track_id = x.track_id
                );
                INSERT INTO day_clean SELECT {CLEAN_NAMES} FROM group_rows WHERE NOT suspect;
                INSERT INTO suspects SELECT {CLEAN_NAMES}, {SUSPECT_NAMES} FROM group_rows WHERE suspect;
                INSERT INTO unknown_sources
                SELECT unknown_source, count(*) FROM group_rows WHERE unknown_source IS NOT NULL GROUP BY ALL;
                DROP TABLE group_rows;
                """
            ).fetchall()
    except duckdb.Error as exc:
        error = read_failure(exc, [f for _, f in day_files], f"listening_events/date={day.isoformat()}")
        if error is None:
            raise
        raise error from exc

    # Decide on the suspects: 1-2 row-level reasons, 3-4 duplicates within the day, 5 unknown users.
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE event_groups AS
        SELECT event_id, count(*) AS copies,
               min(user_id) <> max(user_id) OR min(track_id) <> max(track_id)
                 OR min(played_at) <> max(played_at) OR min(ms_played) <> max(ms_played) AS conflicting,
               min((file_index, file_row_number)) AS first_copy
        FROM suspects WHERE row_reason IS NULL
        GROUP BY event_id HAVING count(*) > 1;
        CREATE OR REPLACE TEMP TABLE decisions AS
        SELECT s.*, CASE
            WHEN s.row_reason IS NOT NULL THEN s.row_reason
            WHEN g.conflicting THEN 'conflicting_duplicate'
            WHEN g.copies IS NOT NULL AND (s.file_index, s.file_row_number) <> g.first_copy THEN 'duplicate'
            WHEN s.unknown_user THEN 'unknown_user'
        END AS reason
        FROM suspects s LEFT JOIN event_groups g USING (event_id);
        INSERT INTO day_clean SELECT {CLEAN_NAMES} FROM decisions WHERE reason IS NULL;
        """
    ).fetchall()
    out.mkdir(parents=True, exist_ok=True)
    digests = clean_plays.write_plays(con, "day_clean", out, day, buckets)
    copy_to_parquet(
        con,
        "SELECT file_index, file_row_number, reason FROM decisions WHERE reason IS NOT NULL ORDER BY file_index, file_row_number",
        out / clean_plays.REMOVED,
    )
    con.execute("CREATE OR REPLACE TEMP TABLE day_files (file_index INTEGER, source_file VARCHAR)").fetchall()
    if day_files:
        con.executemany("INSERT INTO day_files VALUES (?, ?)", [(i, f.relative_path) for i, f in day_files])
    copy_to_parquet(
        con,
        """SELECT d.reason, f.source_file, d.file_row_number,
                  d.event_id, d.user_id, d.track_id, d.played_at, d.ms_played
           FROM decisions d JOIN day_files f USING (file_index)
           WHERE d.reason IS NOT NULL AND d.reason <> 'duplicate'
           ORDER BY f.source_file, d.file_row_number""",
        out / DAY_QUARANTINE,
    )
    copy_to_parquet(
        con,
        "SELECT DISTINCT uncatalogued_track_id AS track_id FROM day_clean "
        "WHERE uncatalogued_track_id IS NOT NULL ORDER BY track_id",
        out / DAY_UNCATALOGUED,
    )
    counts = dict(
        con.execute("SELECT reason, count(*) FROM decisions WHERE reason IS NOT NULL GROUP BY reason").fetchall()
    )
    clean, active = con.execute("SELECT count(*), count(*) FILTER (WHERE active) FROM day_clean").fetchall()[0]
    unknown_sources = dict(
        con.execute("SELECT source, sum(rows)::BIGINT FROM unknown_sources GROUP BY ALL ORDER BY source").fetchall()
    )
    con.execute(
        "DROP TABLE day_clean; DROP TABLE suspects; DROP TABLE decisions; DROP TABLE event_groups; "
        "DROP TABLE unknown_sources"
    ).fetchall()
    rows_read = sum(f.num_rows for _, f in day_files)
    duplicates = counts.pop("duplicate", 0)
    result = PlayIngestion(
        rows_read=rows_read,
        clean_plays=clean,
        duplicates_dropped=duplicates,
        quarantined={reason: counts.get(reason, 0) for reason in QUARANTINE_REASONS},
        files=[f for _, f in day_files],
        active_plays=active,
        unknown_sources=unknown_sources,
        play_digests=digests,
    )
    if result.clean_plays + result.duplicates_dropped + result.quarantined_total != rows_read:
        raise AssertionError(f"{day}: {rows_read} rows read but {result} accounted for")  # never expected
    (out / DAY_RECORD).write_text(
        json.dumps(
            {
                "day": day.isoformat(),
                "plan": str(plan),
                "rows_read": rows_read,
                "clean_plays": clean,
                "duplicates_dropped": duplicates,
                "quarantined": result.quarantined,
                "active_plays": active,
                "unknown_sources": unknown_sources,
                "play_digests": digests,
            }
        )
    )
    return result


# 3. The merge -------------------------------------------------------------------------------

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
    records = []
    for folder in map(Path, day_folders):
        if not (folder / DAY_RECORD).is_file():
            raise FileNotFoundError(f"the results of a day are missing for the merge: {folder / DAY_RECORD}")
        records.append(json.loads((folder / DAY_RECORD).read_text()))
    plans = {Path(r["plan"]) for r in records} or ({Path(plan)} if plan else set())
    if len(plans) != 1:
        raise ValueError(f"the days to merge do not come from one plan: {sorted(map(str, plans))}")
    (plan,) = plans
    files = _planned_files(con, landing_root, plan)
    planned = sorted({f.folder_date.isoformat() for _, f in files})
    if sorted(r["day"] for r in records) != planned:
        raise ValueError(f"the days ingested {sorted(r['day'] for r in records)} are not the month's days {planned}")
    folders = [Path(f) for f in day_folders]
    parts = lambda name: [str(f / name) for f in folders]  # noqa: E731
    copy_to_parquet(
        con,
        f"SELECT * FROM {read_parquet(parts(clean_plays.REMOVED))} ORDER BY file_index, file_row_number"
        if folders
        else "SELECT NULL::INTEGER AS file_index, NULL::BIGINT AS file_row_number, NULL::VARCHAR AS reason WHERE false",
        clean_dir / clean_plays.REMOVED,
    )
    copy_to_parquet(
        con,
        f"SELECT * FROM {read_parquet(parts(DAY_QUARANTINE))} ORDER BY source_file, file_row_number"
        if folders else
        "SELECT NULL::VARCHAR AS reason, NULL::VARCHAR AS source_file, NULL::BIGINT AS file_row_number, "
        "NULL::VARCHAR AS event_id, NULL::VARCHAR AS user_id, NULL::VARCHAR AS track_id, "
        "NULL::TIMESTAMPTZ AS played_at, NULL::BIGINT AS ms_played WHERE false",
        quarantine_file,
    )
    catalogued = (
        f"SELECT track_index, track_id, catalogued, artist_index, noise FROM {read_parquet(str(plan / clean_plays.TRACKS))}"
    )
    uncatalogued = (
        f"SELECT DISTINCT track_id FROM {read_parquet(parts(DAY_UNCATALOGUED))}" if folders
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
    for name in (clean_plays.FILES, clean_plays.USERS, clean_plays.ARTISTS, clean_plays.DICTIONARY):
        shutil.copyfile(plan / name, clean_dir / name)
    for folder in folders:
        for source in clean_plays.play_files(folder):
            target = clean_dir / source.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            _link(source, target)
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


def _link(source: Path, target: Path) -> None:
    """A hard link (no copy) when the file system allows one, else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


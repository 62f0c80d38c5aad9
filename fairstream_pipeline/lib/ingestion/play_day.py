"""Stage 2 of the listening events (``lib.ingestion.plays``): one UTC day, coded, decided and
written for the merge.

The steps, in order: check the planned files did not change; code every row (a pass for the
repeated ids, then groups of files), keeping the rows that need a decision; decide on them; write
the day's plays, removals, quarantine and uncatalogued track ids; count and record the day.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb

from fairstream_pipeline.lib.ingestion import clean_plays
from fairstream_pipeline.lib.ingestion.landing_files import DataFile
from fairstream_pipeline.lib.ingestion.landing_zone import LandingZoneError
from fairstream_pipeline.lib.ingestion.monthly_tables import copy_to_parquet, read_failure
from fairstream_pipeline.lib.ingestion.plays import (
    DAY_QUARANTINE,
    DAY_RECORD,
    DAY_UNCATALOGUED,
    QUARANTINE_REASONS,
    PlayIngestion,
    event_columns_sql,
    file_groups,
    indexed_rows,
    planned_files,
)
from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.faults import fault_point
from fairstream_pipeline.lib.payouts.rules import ACTIVE_SOURCES, PLAY_SOURCES

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


def ingest_play_day(
    con: duckdb.DuckDBPyConnection, landing_root: Path, plan: Path, day: date, out: Path,
    rows_per_pass: int = ROWS_PER_PASS,
) -> PlayIngestion:
    """Classify every event row of ``day``; write its plays by bucket, removals, quarantine and
    uncatalogued track ids to ``out`` (see ``lib.ingestion.plays``).

    The day's rows are coded ``rows_per_pass`` at a time at most (by groups of whole files,
    ``plays.file_groups``), so that a large day stays within DuckDB's memory; the repeated ids are
    found over the whole day first, so the groups give the same result as one pass."""
    plan, out = Path(plan), Path(out)
    buckets = clean_plays.dictionary_record(plan)["buckets"]
    day_files = planned_files(con, landing_root, plan, day)
    for _, f in day_files:
        stat = f.path.stat() if f.path.is_file() else None
        if stat is None or stat.st_size != f.size_bytes or stat.st_mtime_ns != f.mtime_ns:
            raise LandingZoneError(f"{f.relative_path}: changed or removed while the month was being ingested")
    fault_point("ingestion")
    _code_rows(con, plan, day, day_files, rows_per_pass)
    _decide_suspects(con)
    out.mkdir(parents=True, exist_ok=True)
    digests = clean_plays.write_plays(con, "day_clean", out, day, buckets)
    _write_removals(con, out, day_files)
    result = _count_day(con, day, day_files, digests)
    (out / DAY_RECORD).write_text(
        json.dumps(
            {
                "day": day.isoformat(),
                "plan": str(plan),
                "rows_read": result.rows_read,
                "clean_plays": result.clean_plays,
                "duplicates_dropped": result.duplicates_dropped,
                "quarantined": result.quarantined,
                "active_plays": result.active_plays,
                "unknown_sources": result.unknown_sources,
                "play_digests": result.play_digests,
            }
        )
    )
    return result


def _code_rows(
    con: duckdb.DuckDBPyConnection, plan: Path, day: date, day_files: list[tuple[int, DataFile]], rows_per_pass: int
) -> None:
    """Code every row of the day into ``day_clean``; the rows that need a decision go, with their
    raw columns, to ``suspects`` (they wait for the whole day), the sources outside the contract to
    ``unknown_sources``. A read failure that is the files' fault is a contract error."""
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
        for group in file_groups(day_files, rows_per_pass):
            con.execute(_code_group_sql(group)).fetchall()
    except duckdb.Error as exc:
        error = read_failure(exc, [f for _, f in day_files], f"listening_events/date={day.isoformat()}")
        if error is None:
            raise
        raise error from exc


def _code_group_sql(group: list[tuple[int, DataFile]]) -> str:
    """The SQL that codes one group of files into ``day_clean``, ``suspects`` and ``unknown_sources``."""
    return f"""
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


def _decide_suspects(con: duckdb.DuckDBPyConnection) -> None:
    """``decisions``: each suspect with its ``reason`` (null: a clean play, added to ``day_clean``):
    1-2 row-level reasons, 3-4 duplicates within the day, 5 unknown users."""
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


def _write_removals(con: duckdb.DuckDBPyConnection, out: Path, day_files: list[tuple[int, DataFile]]) -> None:
    """The day's removed rows, its quarantine (the removed rows but the exact duplicates, in full)
    and the ids of its tracks missing from the catalog."""
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


def _count_day(
    con: duckdb.DuckDBPyConnection, day: date, day_files: list[tuple[int, DataFile]], digests: dict[str, str]
) -> PlayIngestion:
    """The day's accounting, checked to add up to the rows read; drops the day's tables."""
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
    result = PlayIngestion(
        rows_read=rows_read,
        clean_plays=clean,
        duplicates_dropped=counts.pop("duplicate", 0),
        quarantined={reason: counts.get(reason, 0) for reason in QUARANTINE_REASONS},
        files=[f for _, f in day_files],
        active_plays=active,
        unknown_sources=unknown_sources,
        play_digests=digests,
    )
    if result.clean_plays + result.duplicates_dropped + result.quarantined_total != rows_read:
        raise AssertionError(f"{day}: {rows_read} rows read but {result} accounted for")  # never expected
    return result

"""How ``clean_plays`` is stored and read: the landing files, minus the rows that do not count.

Copying every play of a 200-million-play month into the lake would cost more than computing the
whole payout, and the landing zone keeps the raw files anyway. So a month of clean plays is stored
as two small Parquet files under ``clean_plays/month=M/``:

- ``files.parquet``: the month's event files (``file_index``, landing-relative ``source_file``,
  ``folder_date``, ``num_rows``, ``size_bytes``, ``mtime_ns``), pinned by size and modification time;
- ``removed.parquet``: every row that does not count (``file_index``, ``file_row_number``,
  ``reason``): the quarantined rows (their full content is in ``play_quarantine``) and the extra
  copies of exact duplicates (reason ``duplicate``).

:func:`attach_clean_plays` gives the table back as a DuckDB view — ``event_id``, ``user_id``,
``track_id``, ``played_at``, ``ms_played`` and ``day`` (the UTC date, equal to the folder's) — after
checking that no pinned file changed: a changed landing file fails with its name instead of
silently giving other plays.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from fairstream_pipeline.lib.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake import Lake
from fairstream_pipeline.lib.landing_zone import LandingZoneError

FILES = "files.parquet"
REMOVED = "removed.parquet"


class StaleCleanPlaysError(LandingZoneError):
    """A landing file changed after the month's clean plays were computed."""


def row_key(file_index: str, file_row_number: str) -> str:
    """One BIGINT per landing row: the file's index in the high 32 bits, the row in the low ones."""
    return f"(CAST({file_index} AS BIGINT) << 32) + {file_row_number}"


def attach_clean_plays(con: duckdb.DuckDBPyConnection, lake: Lake, landing_root: Path, month: str) -> None:
    """Create the view ``clean_plays`` (and the tables ``clean_play_files``, ``removed_rows``)."""
    folder = lake.require("clean_plays", month)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE clean_play_files AS SELECT * FROM {read_parquet(str(folder / FILES))}"
    ).fetchall()
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE removed_rows AS "
        f"SELECT {row_key('file_index', 'file_row_number')} AS row_key FROM {read_parquet(str(folder / REMOVED))}"
    ).fetchall()
    files = con.execute(
        "SELECT file_index, source_file, size_bytes, mtime_ns FROM clean_play_files ORDER BY file_index"
    ).fetchall()
    for _, source_file, size, mtime in files:
        path = Path(landing_root) / source_file
        stat = path.stat() if path.is_file() else None
        if stat is None or stat.st_size != size or stat.st_mtime_ns != mtime:
            raise StaleCleanPlaysError(
                f"{source_file}: changed or removed since clean_plays for {month} was computed; "
                f"re-materialize clean_plays for {month}"
            )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE clean_play_paths AS "
        "SELECT file_index, folder_date, ? || '/' || source_file AS filename FROM clean_play_files",
        [str(Path(landing_root).resolve())],
    ).fetchall()
    if not files:
        con.execute(
            "CREATE OR REPLACE TEMP VIEW clean_plays AS SELECT NULL::VARCHAR AS event_id, "
            "NULL::VARCHAR AS user_id, NULL::VARCHAR AS track_id, NULL::TIMESTAMPTZ AS played_at, "
            "NULL::BIGINT AS ms_played, NULL::DATE AS day WHERE false"
        ).fetchall()
        return
    paths = [str(Path(landing_root).resolve() / f[1]) for f in files]
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW clean_plays AS
        SELECT r.event_id, r.user_id, r.track_id, CAST(r.played_at AS TIMESTAMPTZ) AS played_at,
               CAST(r.ms_played AS BIGINT) AS ms_played, f.folder_date AS day
        FROM {read_parquet(paths, filename=True, file_row_number=True, union_by_name=True)} r
        JOIN clean_play_paths f ON r.filename = f.filename
        ANTI JOIN removed_rows x ON x.row_key = {row_key('f.file_index', 'r.file_row_number')}
        """
    ).fetchall()


def clean_play_count(lake: Lake, month: str) -> int:
    """Rows in the month's files minus the rows removed from them (Parquet footers only)."""
    import pyarrow.parquet as pq

    folder = lake.require("clean_plays", month)
    files = pq.read_table(folder / FILES, columns=["num_rows"]).column("num_rows").to_pylist()
    return sum(files) - pq.ParquetFile(folder / REMOVED).metadata.num_rows

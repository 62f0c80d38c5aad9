"""How ``clean_plays`` is stored and read: written once, integer-coded, by user bucket and UTC day.

A month of clean plays is a folder ``clean_plays/month=M/<version>/`` holding:

- ``users.parquet``: the month's user dictionary, one row per billed user: ``user_index``
  (INTEGER, the user's rank by ``user_id``, from 0), ``user_id`` and ``bucket`` (its user bucket
  of ``user_buckets``, ``lib.ingestion.user_buckets``);
- ``tracks.parquet``: the month's track dictionary: ``track_index`` (INTEGER), ``track_id``,
  ``catalogued``, ``artist_index`` (null: no artist) and ``noise`` (the catalog's ``content_type``
  is ``noise``). The catalog's tracks come first, ranked by id; tracks played but missing from the
  catalog (they pay suspense, have no artist and are music) follow, ranked by id;
- ``artists.parquet``: the catalog's artists (ACPS v1): ``artist_index``, ``artist_key`` (``id:``
  and the ``artist_id``, or ``name:`` and the ``artist_name`` of a track without an id),
  ``artist_id`` and ``artist_name``;
- ``plays/bucket=K/day=YYYY-MM-DD/plays.parquet``: the clean plays of bucket K's users on that day:
  ``user_index``, ``track_index`` (null for a track missing from the catalog),
  ``uncatalogued_track_id`` (that track's id, else null), ``ms_played`` and ``active`` (started by
  search or an editorial playlist), LZ4-compressed, in no particular order: the month's own
  steps add them up, and the manifest's content hash takes each file's content digest
  (:func:`play_digests`), not its bytes;
- ``files.parquet``: the month's event files (``file_index``, landing-relative ``source_file``,
  ``folder_date``, ``num_rows``, ``size_bytes``, ``mtime_ns``);
- ``removed.parquet``: every landing row that does not count (``file_index``,
  ``file_row_number``, ``reason``): the quarantined rows (their full content is in
  ``play_quarantine``) and the extra copies of exact duplicates (reason ``duplicate``).

Each day's ingestion step writes its day's plays for every bucket at once; the track index of a
track missing from the catalog is only known once every day is in, so those (about 1% of plays)
carry their id and get their index when read. A shard of the allocation reads only its bucket's
files (:func:`attach_coded_plays`), and counts on 4-byte integers instead of strings.

The whole month is the sum of the files (the footers give the count, :func:`clean_play_count`),
and the row accounting (``lib.ingestion.accounting``) checks it against the landing files and the removals.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb

from fairstream_pipeline.lib.assets import BILLED_USERS, CLEAN_PLAYS
from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet, sql_list, sql_string
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.lake.tables import Rows, columns_of, first_rows
from fairstream_pipeline.lib.ingestion.user_buckets import bucket_sql, check_buckets

FILES = "files.parquet"
REMOVED = "removed.parquet"
USERS = "users.parquet"
TRACKS = "tracks.parquet"
ARTISTS = "artists.parquet"
# The play files: PLAYS/bucket=K/day=D/PLAY_FILE (``lib.lake.columns.FOLDER_ROWS`` says the same for the UI).
PLAYS = "plays"
PLAY_FILE = "plays.parquet"
PLAY_COLUMNS = "user_index INTEGER, track_index INTEGER, uncatalogued_track_id VARCHAR, ms_played BIGINT, active BOOLEAN"
PLAY_NAMES = ", ".join(c.split()[0] for c in PLAY_COLUMNS.split(", "))
DICTIONARY = "_dictionary.json"  # how many users, tracks and buckets the folder's dictionaries hold
# The play files are read only by the month's own steps: LZ4 writes a day's nine files in 1.7 s
# where zstd took 2.2 s (200M plays, one day; docs/performance.md), for files a third larger.
PLAY_FILE_OPTIONS = "FORMAT parquet, COMPRESSION lz4_raw"


def play_file(folder: Path, bucket: int, day: date) -> Path:
    """Where the plays of ``bucket`` on ``day`` go, under a clean-plays (or day-step) folder."""
    return Path(folder) / PLAYS / f"bucket={bucket}" / f"day={day.isoformat()}" / PLAY_FILE


def play_files(folder: Path, bucket: int | None = None) -> list[Path]:
    """The play files under ``folder``: of one bucket, or all of them."""
    pattern = f"bucket={bucket}/day=*/{PLAY_FILE}" if bucket is not None else f"bucket=*/day=*/{PLAY_FILE}"
    return sorted((Path(folder) / PLAYS).glob(pattern))


def dictionary_record(folder: Path) -> dict:
    return json.loads((Path(folder) / DICTIONARY).read_text())


def _plays_relation(files: list[Path]) -> str:
    """The rows of ``files`` with their ``day`` (from the folder names), or no rows."""
    if not files:
        nulls = ", ".join(f"NULL::{kind} AS {name}" for name, kind in (c.split() for c in PLAY_COLUMNS.split(", ")))
        return f"(SELECT {nulls}, NULL::DATE AS day WHERE false)"
    import pyarrow.parquet as pq

    # Plays stored before ACPS v1 have no ``active`` column: none of them was active.
    active = "" if "active" in pq.read_schema(files[0]).names else ", false AS active"
    return (
        f"(SELECT * EXCLUDE (bucket){active} FROM read_parquet({sql_list([str(f) for f in files])}, "
        "hive_partitioning = true, hive_types = {'bucket': INTEGER, 'day': DATE}))"
    )


def attach_coded_plays(
    con: duckdb.DuckDBPyConnection, lake: Lake, month: str, bucket: int = 0, buckets: int = 1
) -> list[date]:
    """The views the payout engine's shard stage reads, over ``bucket`` of ``buckets``, integer-coded;
    returns the days that have plays.

    Creates ``user_dictionary`` (the bucket's users: ``user_index``, ``user_id``),
    ``track_dictionary`` (every track of the month), ``track_attributes`` (``track_id`` = the
    track index, ``artist_id`` = the artist index, ``noise``), the view ``clean_plays``
    (``user_id`` = the user index, ``track_id`` = the track index, ``ms_played``, ``day``,
    ``active``) and the view
    ``billed_users`` with the same coded ``user_id`` (from the ``billed_users`` asset, the bucket's
    users only). When ``buckets`` is the number the month was stored with, the shard reads only its
    own files; otherwise it reads every file and keeps its users' rows.
    """
    check_buckets(buckets)
    folder = lake.require(CLEAN_PLAYS, month)
    stored = dictionary_record(folder)["buckets"]
    if buckets == 1:
        files, users_filter, keep_users = play_files(folder), "true", ""
    elif buckets == stored:
        files, users_filter, keep_users = play_files(folder, bucket), f"bucket = {int(bucket)}", ""
    else:
        files, users_filter = play_files(folder), f"{bucket_sql('user_id', buckets)} = {int(bucket)}"
        keep_users = "SEMI JOIN user_dictionary d ON d.user_index = p.user_index"
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE user_dictionary AS
        SELECT user_index, user_id FROM {read_parquet(str(folder / USERS))} WHERE {users_filter};
        CREATE OR REPLACE TEMP TABLE track_dictionary AS
        SELECT track_index, track_id, catalogued, {_track_attribute_columns(con, folder / TRACKS)}
        FROM {read_parquet(str(folder / TRACKS))};
        CREATE OR REPLACE TEMP VIEW track_attributes AS
        SELECT track_index AS track_id, artist_index AS artist_id, noise FROM track_dictionary;
        CREATE OR REPLACE TEMP TABLE uncatalogued_tracks AS
        SELECT track_index, track_id FROM track_dictionary WHERE NOT catalogued;
        CREATE OR REPLACE TEMP VIEW billed_users AS
        SELECT d.user_index AS user_id, b.country, b.tier, b.net_cents
        FROM {read_parquet(lake.parquet_glob(BILLED_USERS, month))} b JOIN user_dictionary d USING (user_id);
        CREATE OR REPLACE TEMP VIEW clean_plays AS
        SELECT p.user_index AS user_id, coalesce(p.track_index, u.track_index) AS track_id, p.ms_played, p.day,
               p.active
        FROM {_plays_relation(files)} p
        LEFT JOIN uncatalogued_tracks u ON u.track_id = p.uncatalogued_track_id
        {keep_users};
        """
    ).fetchall()
    return sorted({date.fromisoformat(f.parent.name.removeprefix("day=")) for f in files})


def _track_attribute_columns(con: duckdb.DuckDBPyConnection, dictionary: Path) -> str:
    """``artist_index`` and ``noise`` of a track dictionary file (nulls and false for one written
    before ACPS v1)."""
    if "noise" in columns_of(con, read_parquet(str(dictionary))):
        return "artist_index, noise"
    return "NULL::INTEGER AS artist_index, false AS noise"


def attach_track_attributes(con: duckdb.DuckDBPyConnection, dictionary: Path) -> None:
    """The view ``track_attributes`` (``track_id`` = the track index, ``artist_id`` = the artist
    index, ``noise``) over a month's track dictionary file, as the merge of the shards reads it."""
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW track_attributes AS SELECT track_index AS track_id, "
        f"{_track_attribute_columns(con, dictionary).replace('artist_index,', 'artist_index AS artist_id,')} "
        f"FROM {read_parquet(str(dictionary))}"
    ).fetchall()


def artists_file(lake: Lake, month: str) -> Path | None:
    """The month's artist dictionary (``artist_index``, ``artist_key``, ``artist_id``,
    ``artist_name``), or None for clean plays stored before ACPS v1."""
    path = lake.require(CLEAN_PLAYS, month) / ARTISTS
    return path if path.is_file() else None


def _replace_codes(con: duckdb.DuckDBPyConnection, table: str, column: str, dictionary: str, index: str) -> None:
    """Replace ``table.column``, an ``index`` of ``dictionary`` (a table or ``read_parquet``), with
    the dictionary's ``column``; a code missing from the dictionary leaves a null."""
    columns = [c[0] for c in con.execute(f"DESCRIBE {table}").fetchall()]
    select = ", ".join(f"d.{column}" if c == column else f"x.{c}" for c in columns)
    con.execute(
        f"""
        ALTER TABLE {table} RENAME TO coded_{table};
        CREATE TEMP TABLE {table} AS
        SELECT {select} FROM coded_{table} x LEFT JOIN {dictionary} d ON d.{index} = x.{column};
        DROP TABLE coded_{table};
        """
    ).fetchall()


def decode_shard(con: duckdb.DuckDBPyConnection) -> None:
    """Give ``flagged_users`` and ``user_streams`` their user ids back (after
    ``payout_engine.allocate_shard`` ran on :func:`attach_coded_plays`' views, whose users all
    are in ``user_dictionary``). ``track_shares`` keeps the month's track index in ``track_id``:
    the merge adds the shards up on integers and decodes once (:func:`decode_track_earnings`)."""
    for table in ("flagged_users", "user_streams"):
        _replace_codes(con, table, "user_id", "user_dictionary", "user_index")


def track_dictionary_file(lake: Lake, month: str) -> Path:
    """The month's track dictionary (``track_index``, ``track_id``, ``catalogued``)."""
    return lake.require(CLEAN_PLAYS, month) / TRACKS


def decode_track_earnings(con: duckdb.DuckDBPyConnection, dictionary: Path) -> None:
    """Replace ``track_earnings.track_id``, a track index of ``dictionary``, with the track's id.
    Raises, naming the dictionary, when an index is not in it (no row is ever dropped)."""
    _replace_codes(con, "track_earnings", "track_id", read_parquet(str(dictionary)), "track_index")
    # (a dictionary's track ids are never null: a null id here is an index the dictionary lacks)
    (missing,) = con.execute("SELECT count(*) FROM track_earnings WHERE track_id IS NULL").fetchall()[0]
    if missing:
        raise ValueError(f"{missing} (segment, track) rows of the shards have a track index missing from {dictionary}")


def attach_clean_plays(con: duckdb.DuckDBPyConnection, lake: Lake, month: str) -> None:
    """The view ``clean_plays`` with its ids: ``user_id``, ``track_id``, ``ms_played``, ``day``, ``active``."""
    folder = lake.require(CLEAN_PLAYS, month)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW clean_plays AS
        SELECT u.user_id, coalesce(t.track_id, p.uncatalogued_track_id) AS track_id, p.ms_played, p.day, p.active
        FROM {_plays_relation(play_files(folder))} p
        JOIN {read_parquet(str(folder / USERS))} u USING (user_index)
        LEFT JOIN {read_parquet(str(folder / TRACKS))} t USING (track_index)
        """
    ).fetchall()


def clean_plays_preview(con: duckdb.DuckDBPyConnection, limit: int = 10) -> Rows:
    """The first rows of the ``clean_plays`` view of :func:`attach_clean_plays` (any order):
    ``user_id``, ``track_id``, ``day``, ``ms_played``."""
    return first_rows(con, "SELECT user_id, track_id, day, ms_played FROM clean_plays", limit)


def clean_play_count(lake: Lake, month: str) -> int:
    """Rows in the month's play files (Parquet footers only)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in play_files(lake.require(CLEAN_PLAYS, month)))


def write_plays(con: duckdb.DuckDBPyConnection, table: str, folder: Path, day: date, buckets: int) -> dict[str, str]:
    """Write ``table`` (``bucket`` plus the play columns) as one file per bucket for ``day``, in
    no particular order; return each file's content digest (:func:`play_digests`) by its path
    relative to ``folder``. Every bucket gets its file, empty or not, so that a shard's days are
    the month's days.

    The files are read only by the month's own steps, which add their rows up: they are not
    sorted (sorting a 200M month's day took 0.7 s of its 1.7 s write), so the same plays may come
    out in another order and other bytes. Their identity is their content, the digest."""
    for bucket in range(buckets):
        target = play_file(folder, bucket, day)
        target.parent.mkdir(parents=True, exist_ok=True)
        con.execute(
            f"COPY (SELECT {PLAY_NAMES} FROM {table} WHERE bucket = {bucket}) "
            f"TO {sql_string(target)} ({PLAY_FILE_OPTIONS})"
        ).fetchall()
    return {
        play_file(Path(), bucket, day).as_posix(): digest
        for bucket, digest in play_digests(con, table, buckets).items()
    }


def play_digests(con: duckdb.DuckDBPyConnection, table: str, buckets: int) -> dict[int, str]:
    """Each bucket's content digest of ``table``'s plays, whatever their order: the row count and
    the sum, modulo 2^64, of every row's DuckDB ``hash`` of the play columns, in hex."""
    found = dict(
        con.execute(
            f"SELECT bucket, count(*)::BIGINT || ':' || printf('%016x', (sum(hash({PLAY_NAMES}))::HUGEINT % {2**64})::UBIGINT) "
            f"FROM {table} GROUP BY bucket"
        ).fetchall()
    )
    return {bucket: found.get(bucket, "0:0000000000000000") for bucket in range(buckets)}

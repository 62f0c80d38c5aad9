"""Where a month's user-bucket shards keep their results between the shard steps and the merge.

Each shard step runs rules 1-4 and ACPS's weights (``lib.payouts.shard_allocation``) on one user
bucket and writes ``user_streams``, ``flagged_users``, ``track_shares`` and ``artist_reach`` as
Parquet under

    <warehouse>/_shards/month=M/run=<run id>/bucket=<k>/<table>.parquet

(the warehouse is shared storage when shards run on other machines), and passes the folder on to
the merge as its output (unsorted, LZ4: the merge adds them up, whatever their order; what it
publishes is sorted): a re-execution from failure hands the merge the parent run's folders for
the buckets it did not run again. The merge reads every bucket's files back as one table each, and
then removes every shard folder of the month. A folder left by a killed run is removed by the next
fresh run of the month (the month lock guarantees that no other run of the month is alive).

In the pipeline a shard's ``track_shares.track_id`` holds the month's track index (INTEGER), not
the id: the merge adds B shards' rows up on integers and decodes the (segment, track) result once.
The shard's record names the dictionary, and the merge refuses shards coded by different ones (a
parent run's shards after the month's clean plays were ingested again).
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.tables import scratch_view, write_table
from fairstream_pipeline.lib.lake.scratch import RunScratch

SHARD_TABLES = ("user_streams", "flagged_users", "track_shares", "artist_reach")
SHARD_RECORD = "_shard.json"  # which bucket of how many the folder holds, and its row counts
# The merge adds the shards' track_shares up in passes over the tracks (by a hash of the track) of
# at most this many shard rows each: one aggregation of a 200M month's 29M rows into 10.7M groups
# peaked at 3.88 GiB; by parts, each holds a part's groups only (docs/performance.md).
ROWS_PER_SUM = 8_000_000


class ShardStore(RunScratch):
    """One run's shard folders for one month (``<warehouse>/_shards/month=M/run=R/bucket=k``)."""

    def __init__(self, warehouse: str | Path, month: str, run_id: str):
        super().__init__(warehouse, "_shards", month, run_id)

    def bucket_dir(self, bucket: int) -> Path:
        return self.part_dir(f"bucket={bucket}")

    def write(
        self, con: duckdb.DuckDBPyConnection, bucket: int, buckets: int, track_dictionary: str | Path | None = None
    ) -> tuple[Path, dict[str, int]]:
        """Write the connection's shard tables for ``bucket`` of ``buckets`` (replacing a previous
        attempt's); return the folder, which the step passes on to the merge, and the row counts.

        ``track_dictionary`` is the file whose ``track_index`` the shard's ``track_shares.track_id``
        holds (the month's ``clean_plays`` tracks), or None when it holds the ids themselves."""
        folder = self.part_dir(f"bucket={bucket}", fresh=True)
        rows = {}
        for table in SHARD_TABLES:
            rows[table] = write_table(con, table, folder / f"{table}.parquet", scratch=True)
        record = {"bucket": bucket, "buckets": buckets, "rows": rows,
                  "track_dictionary": None if track_dictionary is None else str(track_dictionary)}
        (folder / SHARD_RECORD).write_text(json.dumps(record))
        return folder, rows


def shard_records(folders: list[str | Path]) -> list[dict]:
    """Each shard folder's record (its bucket, of how many, its row counts and its track
    dictionary), read once for :func:`shard_track_dictionary` and :func:`attach_shards`; fails
    naming a folder without one."""
    records = []
    for folder in map(Path, folders):
        record = folder / SHARD_RECORD
        if not record.is_file():
            raise FileNotFoundError(f"shard results missing for the merge: {record}")
        records.append(json.loads(record.read_text()))
    return records


def attach_shards(con: duckdb.DuckDBPyConnection, folders: list[str | Path], records: list[dict] | None = None) -> int:
    """A table per shard table holding the rows of every shard folder (``track_shares`` already
    added up per segment and track, exact in integers, in passes of at most ``ROWS_PER_SUM`` shard
    rows over a part of the tracks each); returns the number of buckets.

    The folders come from the shard steps' outputs (a re-execution from failure passes the parent
    run's folders for the buckets it did not re-run); ``records`` are their :func:`shard_records`
    when already read. Fails naming what is missing when the folders are not exactly buckets
    0..B-1 of one B. Their tracks may be coded: see :func:`shard_track_dictionary`.
    """
    records = shard_records(folders) if records is None else records
    sizes = {r["buckets"] for r in records}
    buckets = sizes.pop() if len(sizes) == 1 else None
    if buckets is None or sorted(r["bucket"] for r in records) != list(range(buckets)):
        raise ValueError(f"the shards do not cover one set of buckets: {sorted((r['bucket'], r['buckets']) for r in records)}")
    for table in SHARD_TABLES:
        files = [str(Path(folder) / f"{table}.parquet") for folder in folders]
        # A table with nullable columns whatever B is: DuckDB keeps a single file's NOT NULL
        # columns but not those of several files, and the published bytes must not depend on B.
        source = f"SELECT {scratch_view(con, read_parquet(files))} FROM {read_parquet(files)}"
        passes = [source]
        if table == "track_shares":  # added up per (segment, track) as it is read: B times fewer rows to keep
            rows = sum(r["rows"].get(table, 0) for r in records)
            parts = max(1, -(-rows // ROWS_PER_SUM))
            passes = [
                "SELECT country, tier, track_id, sum(streams)::BIGINT AS streams, "
                "sum(direct_pico)::HUGEINT AS direct_pico, sum(acps_weight)::HUGEINT AS acps_weight, "
                f"sum(acps_pro_weight)::HUGEINT AS acps_pro_weight FROM ({source}) "
                + (f"WHERE hash(track_id) % {parts} = {part} " if parts > 1 else "")
                + "GROUP BY ALL"
                for part in range(parts)
            ]
        elif table == "artist_reach":  # a user is in one shard: the listeners add up
            passes = [
                "SELECT artist_id, sum(streams)::BIGINT AS streams, sum(listeners)::BIGINT AS listeners "
                f"FROM ({source}) GROUP BY ALL"
            ]
        columns = con.execute(f"DESCRIBE {passes[0]}").fetchall()
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} ({', '.join(f'{c[0]} {c[1]}' for c in columns)})").fetchall()
        for rows_of_part in passes:
            con.execute(f"INSERT INTO {table} {rows_of_part}").fetchall()
    return buckets


def shard_track_dictionary(folders: list[str | Path], records: list[dict] | None = None) -> Path | None:
    """The track dictionary the shards' ``track_shares`` are coded by (None: they hold track ids);
    ``records`` are the folders' :func:`shard_records` when already read."""
    records = shard_records(folders) if records is None else records
    dictionaries = {record.get("track_dictionary") for record in records}
    if len(dictionaries) != 1:
        raise ValueError(f"the shards' tracks are coded by different dictionaries: {sorted(map(str, dictionaries))}")
    (dictionary,) = dictionaries
    return None if dictionary is None else Path(dictionary)

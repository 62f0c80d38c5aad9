"""Where a month's user-bucket shards keep their results between the shard steps and the merge.

Each shard step runs rules 1-4 (``payout_engine.allocate_shard``) on one user bucket and writes
``user_streams``, ``flagged_users`` and ``track_shares`` as Parquet under

    <warehouse>/_shards/month=M/run=<run id>/bucket=<k>/<table>.parquet

(the warehouse is shared storage when shards run on other machines), and passes the folder on to
the merge as its output: a re-execution from failure hands the merge the parent run's folders for
the buckets it did not run again. The merge reads every bucket's files back as one table each, and
then removes every shard folder of the month. A folder left by a killed run is removed by the next
fresh run of the month (the month lock guarantees that no other run of the month is alive).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb

from fairstream_pipeline.lib.duckdb_engine import read_parquet, sql_string
from fairstream_pipeline.lib.lake_tables import PARQUET_OPTIONS
from fairstream_pipeline.lib.payout_engine import lake_columns, lake_view
from fairstream_pipeline.lib.user_buckets import bucket_sql, check_buckets

SHARD_TABLES = ("user_streams", "flagged_users", "track_shares")
SHARD_RECORD = "_shard.json"  # which bucket of how many the folder holds, and its row counts


class ShardStore:
    """One run's shard folders for one month."""

    def __init__(self, warehouse: str | Path, month: str, run_id: str):
        self.month_dir = Path(warehouse) / "_shards" / f"month={month}"
        self.run_dir = self.month_dir / f"run={run_id}"

    def bucket_dir(self, bucket: int) -> Path:
        return self.run_dir / f"bucket={bucket}"

    def remove_leftovers(self) -> list[str]:
        """Remove the shard folders of other runs of this month (killed before their merge)."""
        removed = []
        if self.month_dir.is_dir():
            for folder in sorted(self.month_dir.iterdir()):
                if folder != self.run_dir:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder.name)
        return removed

    def write(self, con: duckdb.DuckDBPyConnection, bucket: int, buckets: int) -> tuple[Path, dict[str, int]]:
        """Write the connection's shard tables for ``bucket`` of ``buckets`` (replacing a previous
        attempt's); return the folder, which the step passes on to the merge, and the row counts."""
        folder = self.bucket_dir(bucket)
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        rows = {}
        for table in SHARD_TABLES:
            con.execute(
                f"COPY (SELECT {lake_columns(table)} FROM {table} ORDER BY ALL) "
                f"TO {sql_string(str(folder / f'{table}.parquet'))} ({PARQUET_OPTIONS})"
            ).fetchall()
            rows[table] = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        (folder / SHARD_RECORD).write_text(json.dumps({"bucket": bucket, "buckets": buckets, "rows": rows}))
        return folder, rows

    def remove_month(self) -> None:
        """After the merge: every shard folder of the month, this run's and any parent run's."""
        shutil.rmtree(self.month_dir, ignore_errors=True)


def attach_shards(con: duckdb.DuckDBPyConnection, folders: list[str | Path]) -> int:
    """A table per shard table holding the rows of every shard folder; returns the number of buckets.

    The folders come from the shard steps' outputs (a re-execution from failure passes the parent
    run's folders for the buckets it did not re-run). Fails naming what is missing when the folders
    are not exactly buckets 0..B-1 of one B.
    """
    records = []
    for folder in map(Path, folders):
        record = folder / SHARD_RECORD
        if not record.is_file():
            raise FileNotFoundError(f"shard results missing for the merge: {record}")
        records.append(json.loads(record.read_text()))
    sizes = {r["buckets"] for r in records}
    buckets = sizes.pop() if len(sizes) == 1 else None
    if buckets is None or sorted(r["bucket"] for r in records) != list(range(buckets)):
        raise ValueError(f"the shards do not cover one set of buckets: {sorted((r['bucket'], r['buckets']) for r in records)}")
    for table in SHARD_TABLES:
        files = [str(Path(folder) / f"{table}.parquet") for folder in folders]
        # A table with nullable columns whatever B is: DuckDB keeps a single file's NOT NULL
        # columns but not those of several files, and the published bytes must not depend on B.
        source = f"SELECT {lake_view(table)} FROM {read_parquet(files)}"
        columns = con.execute(f"DESCRIBE {source}").fetchall()
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} ({', '.join(f'{c[0]} {c[1]}' for c in columns)})").fetchall()
        con.execute(f"INSERT INTO {table} {source}").fetchall()
    return buckets


def restrict_to_bucket(con: duckdb.DuckDBPyConnection, buckets: int, bucket: int) -> None:
    """Turn the views ``clean_plays`` and ``billed_users`` into the bucket's users' rows only.

    The bucket of a user is computed once per billed user (``lib.user_buckets``), and the plays are
    semi-joined to the bucket's users: a play's user is always billed (ingestion quarantines the
    others), so every play falls in exactly one bucket. With one bucket nothing changes.
    """
    if check_buckets(buckets) == 1:
        return
    con.execute("ALTER VIEW clean_plays RENAME TO month_clean_plays").fetchall()
    con.execute("ALTER VIEW billed_users RENAME TO month_billed_users").fetchall()
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE bucket_users AS
        SELECT user_id FROM month_billed_users WHERE {bucket_sql('user_id', buckets)} = {int(bucket)};
        CREATE OR REPLACE TEMP VIEW billed_users AS
        SELECT * FROM month_billed_users SEMI JOIN bucket_users USING (user_id);
        CREATE OR REPLACE TEMP VIEW clean_plays AS
        SELECT * FROM month_clean_plays SEMI JOIN bucket_users USING (user_id);
        """
    ).fetchall()

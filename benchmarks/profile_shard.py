"""Time one user-bucket shard of a benchmark warehouse, statement by statement.

    python -m benchmarks.profile_shard bench/warehouse-400000000 2026-10 3

Runs the shard stage (``attach_coded_plays``, ``allocate_shard``, ``decode_shard``) of one bucket
on a month that ``benchmarks.run`` left in its warehouse, with the pipeline's DuckDB defaults (4GB,
every core), and prints where its time goes. Writes nothing to the lake.
"""

import sys
import time
from pathlib import Path

from fairstream_pipeline.lib.ingestion.clean_plays import attach_coded_plays, decode_shard, dictionary_record
from fairstream_pipeline.lib.lake.duckdb_engine import DuckDBSettings, connect
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.payouts import sql_script
from fairstream_pipeline.lib.payouts.rules import PayoutRules
from fairstream_pipeline.lib.payouts.shard_allocation import allocate_shard

DAY_LOOP = ("day_capped", "busy_days", "capped_daily SELECT")  # the statements run once per day


def count(con, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def main(argv: list[str]) -> int:
    warehouse, month, bucket = Path(argv[0]), argv[1], int(argv[2])
    lake = Lake(warehouse)
    buckets = dictionary_record(lake.require("clean_plays", month))["buckets"]
    con = connect(DuckDBSettings("4GB", None, str(warehouse / ".duckdb_tmp")))
    timings: dict[str, float] = {}
    untimed = sql_script.run

    def timed_run(c, sql: str) -> None:  # each statement of the engine's scripts on its own
        for part in [x for x in sql.split(";") if x.strip()]:
            started = time.monotonic()
            untimed(c, part)
            key = " ".join(part.split())[:70]
            timings[key] = timings.get(key, 0.0) + time.monotonic() - started

    sql_script.run = timed_run
    t0 = time.monotonic()
    days = attach_coded_plays(con, lake, month, bucket, buckets)
    t1 = time.monotonic()
    count(con, "billed_users")
    t_billed = time.monotonic() - t1
    t1 = time.monotonic()
    allocate_shard(con, PayoutRules(), days)
    t2 = time.monotonic()
    decode_shard(con)
    t3 = time.monotonic()
    print(f"buckets {buckets}, bucket {bucket}: {count(con, 'user_dictionary')} users, "
          f"{count(con, 'track_dictionary')} tracks in the dictionary, {count(con, 'track_shares')} track_shares rows")
    print(f"attach (dictionaries) {t1 - t0 - t_billed:.2f} s; one scan of the billed_users view {t_billed:.2f} s")
    print(f"allocate_shard {t2 - t1:.2f} s; decode {t3 - t2:.2f} s")
    in_loop = {k: v for k, v in timings.items() if any(mark in k for mark in DAY_LOOP)}
    print(f"  day loop ({len(days)} days) {sum(in_loop.values()):.2f} s")
    for key, seconds in sorted(timings.items(), key=lambda kv: -kv[1])[:10]:
        if key not in in_loop:
            print(f"  {seconds:6.2f} s  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Time one user-bucket shard of a benchmark warehouse, statement by statement.

    python -m benchmarks.profile_shard bench/warehouse-400000000 2026-10 3

Runs the shard stage (``attach_coded_plays``, ``allocate_shard``, ``decode_shard``) of one bucket
on a month that ``benchmarks.run`` left in its warehouse, with the pipeline's DuckDB defaults (4GB,
every core), and prints where its time goes. Writes nothing to the lake.
"""
import sys
import time
from pathlib import Path


from fairstream_pipeline.lib.lake.duckdb_engine import DuckDBSettings, connect
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.ingestion.clean_plays import attach_coded_plays, decode_shard, dictionary_record
from fairstream_pipeline.lib.payouts import engine
from fairstream_pipeline.lib.payouts.rules import PayoutRules

warehouse, month, bucket = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
lake = Lake(warehouse)
buckets = dictionary_record(lake.require("clean_plays", month))["buckets"]
con = connect(DuckDBSettings("4GB", None, str(warehouse / ".duckdb_tmp")))
timings = {}
original = engine._run

def timed_run(c, sql):
    for part in [x for x in sql.split(";") if x.strip()]:
        started = time.monotonic()
        original(c, part)
        key = " ".join(part.split())[:70]
        timings.setdefault(key, 0.0)
        timings[key] += time.monotonic() - started

engine._run = timed_run
t0 = time.monotonic()
days = attach_coded_plays(con, lake, month, bucket, buckets)
t1 = time.monotonic()
n_users = con.execute("SELECT count(*) FROM user_dictionary").fetchall()[0][0]
n_tracks = con.execute("SELECT count(*) FROM track_dictionary").fetchall()[0][0]
t_billed = time.monotonic()
n_billed = con.execute("SELECT count(*) FROM billed_users").fetchall()[0][0]
t_billed = time.monotonic() - t_billed
engine.allocate_shard(con, PayoutRules(), days)
t2 = time.monotonic()
decode_shard(con)
t3 = time.monotonic()
shares = con.execute("SELECT count(*) FROM track_shares").fetchall()[0][0]
print(f"buckets {buckets}, bucket {bucket}: {n_users} users, {n_tracks} tracks in the dictionary, {shares} track_shares rows")
print(f"attach (dictionaries) {t1 - t0:.2f} s; one scan of the billed_users view {t_billed:.2f} s")
print(f"allocate_shard {t2 - t1:.2f} s; decode {t3 - t2:.2f} s")
day_total = sum(v for k, v in timings.items() if "day_capped" in k or "busy_days" in k or "capped_daily SELECT" in k)
print(f"  day loop ({len(days)} days) {day_total:.2f} s")
for k, v in sorted(timings.items(), key=lambda kv: -kv[1])[:8]:
    if "day_capped" not in k:
        print(f"  {v:6.2f} s  {k}")

"""Time the merge of a benchmark month's shards, statement by statement, with each one's peak RSS.

    python -m benchmarks.profile_merge bench/warehouse-200000000 2026-10 [--keep-shards]

Computes every user-bucket shard of a month that ``benchmarks.run`` left in its warehouse (as
``allocate_user_bucket`` does, into a scratch run's shard folders), then runs the merge's stages
(``attach_shards``, ``price_segments``, ``decode_track_earnings``, ``name_professional_artists``)
with the pipeline's DuckDB defaults (4GB, every core), and prints each statement's seconds and
the process's peak RSS while it ran. Publishes nothing; ``--keep-shards`` keeps the shard
folders for the next run (they are reused when present).
"""

import sys
import time
from pathlib import Path

from fairstream_pipeline.lib.ingestion.clean_plays import (
    artists_file,
    attach_coded_plays,
    attach_track_attributes,
    decode_shard,
    decode_track_earnings,
    dictionary_record,
    track_dictionary_file,
)
from fairstream_pipeline.lib.lake.duckdb_engine import DuckDBSettings, connect
from fairstream_pipeline.lib.lake.memory import RssSampler
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.lake.tables import attach_month
from fairstream_pipeline.lib.payouts import sql_script
from fairstream_pipeline.lib.payouts.professional_artists import name_professional_artists
from fairstream_pipeline.lib.payouts.rules import PayoutRules
from fairstream_pipeline.lib.payouts.segment_pricing import price_segments
from fairstream_pipeline.lib.payouts.shard_allocation import allocate_shard
from fairstream_pipeline.lib.payouts.shards import ShardStore, attach_shards, shard_track_dictionary

RUN = "profile-merge"


def settings(warehouse: Path) -> DuckDBSettings:
    return DuckDBSettings("4GB", None, str(warehouse / ".duckdb_tmp"))


def shard_folders(lake: Lake, warehouse: Path, month: str) -> list[str]:
    """Every bucket's shard folder of the scratch run, computed when missing."""
    buckets = dictionary_record(lake.require("clean_plays", month))["buckets"]
    store = ShardStore(warehouse, month, RUN)
    folders = []
    for bucket in range(buckets):
        folder = store.bucket_dir(bucket)
        if not (folder / "_shard.json").is_file():
            started = time.monotonic()
            with connect(settings(warehouse)) as con:
                days = attach_coded_plays(con, lake, month, bucket, buckets)
                allocate_shard(con, PayoutRules(), days)
                decode_shard(con)
                folder, _ = store.write(con, bucket, buckets, track_dictionary_file(lake, month))
            print(f"shard {bucket} of {buckets}: {time.monotonic() - started:.1f} s", flush=True)
        folders.append(str(folder))
    return folders


def main(argv: list[str]) -> int:
    warehouse, month = Path(argv[0]), argv[1]
    lake = Lake(warehouse)
    folders = shard_folders(lake, warehouse, month)
    timings: list[tuple[str, float, int]] = []
    untimed = sql_script.run
    sampler = RssSampler()
    sampler.start()

    def timed(label: str, run, *args) -> None:
        started = time.time()
        run(*args)
        timings.append((label, time.time() - started, sampler.peak_between(started, time.time())))

    def timed_run(c, sql: str) -> None:  # each statement of the engine's scripts on its own
        for part in [x for x in sql.split(";") if x.strip()]:
            timed(" ".join(part.split())[:70], untimed, c, part)

    sql_script.run = timed_run
    started = time.time()
    with connect(settings(warehouse)) as con:
        attach_month(con, lake, month, {"billed_users": "billed_users", "ad_revenue": "ad_revenue"})
        dictionary = shard_track_dictionary(folders)
        timed("attach_shards", attach_shards, con, folders)
        attach_track_attributes(con, dictionary)
        price_segments(con, PayoutRules())
        timed("decode_track_earnings", decode_track_earnings, con, dictionary)
        timed("name_professional_artists", name_professional_artists, con, PayoutRules(), artists_file(lake, month))
    sampler.stop()
    print(f"merge {time.time() - started:.1f} s, peak RSS {sampler.peak() / 2**30:.2f} GiB")
    for label, seconds, peak in sorted(timings, key=lambda t: -t[2])[:12]:
        print(f"  {seconds:6.2f} s  {peak / 2**30:5.2f} GiB  {label}")
    if "--keep-shards" not in argv:
        ShardStore(warehouse, month, RUN).remove_month()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

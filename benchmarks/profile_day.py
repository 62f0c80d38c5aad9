"""Time one ingestion day step of a benchmark month, statement by statement.

    python -m benchmarks.profile_day bench/landing-200000000-u2000000-s7 bench/warehouse-200000000 2026-10 2026-10-07

Plans the month (``plan_plays``, with the user-bucket count the settings choose) into a scratch
folder under ``bench/``, then runs ``ingest_play_day`` for one day with the pipeline's DuckDB
defaults (4GB, every core) and prints its slowest statements. Reads ``billed_users`` from a
warehouse that ``benchmarks.run`` left; writes only under the scratch folder, which it removes.
"""

import shutil
import sys
import time
from datetime import date
from pathlib import Path

from fairstream_pipeline.lib.ingestion.landing_zone import LandingZone
from fairstream_pipeline.lib.ingestion.play_day import ingest_play_day
from fairstream_pipeline.lib.ingestion.play_plan import plan_plays
from fairstream_pipeline.lib.lake.duckdb_engine import DuckDBSettings, connect
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.ingestion.user_buckets import user_buckets


class TimedConnection:
    """A DuckDB connection that adds up the seconds of each distinct statement it executes."""

    def __init__(self, con):
        self.con, self.timings = con, {}

    def execute(self, sql, *args):
        started = time.monotonic()
        result = self.con.execute(sql, *args)
        rows = result.fetchall() if result.description is not None else []
        key = " ".join(sql.split())[:90]
        self.timings[key] = self.timings.get(key, 0.0) + time.monotonic() - started
        return _Rows(rows)

    def __getattr__(self, name):
        return getattr(self.con, name)


class _Rows:
    def __init__(self, rows):
        self.rows = rows

    def fetchall(self):
        return self.rows


def main(argv: list[str]) -> int:
    landing, warehouse, month, day = Path(argv[0]), Path(argv[1]), argv[2], date.fromisoformat(argv[3])
    scratch = Path("bench") / "profile-day"
    shutil.rmtree(scratch, ignore_errors=True)
    plan = scratch / "plan"
    plan.mkdir(parents=True)
    con = connect(DuckDBSettings("4GB", None, str(warehouse / ".duckdb_tmp")))
    started = time.monotonic()
    plan_plays(con, LandingZone(landing), month, Lake(warehouse).parquet_glob("billed_users", month),
               user_buckets, plan)
    print(f"plan {time.monotonic() - started:.2f} s")
    timed = TimedConnection(con)
    started = time.monotonic()
    result = ingest_play_day(timed, landing, plan, day, scratch / "day")
    print(f"day {day}: {result.rows_read:,} rows, {result.clean_plays:,} clean, {time.monotonic() - started:.2f} s")
    for key, seconds in sorted(timed.timings.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {seconds:6.2f} s  {key}")
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The benchmark month on local Celery workers: wall time and per-op seconds, from the event log.

    .venv/bin/python -m benchmarks.celery_month --events 50000000 --workers 2 --buckets 8

Uses the landing zone ``benchmarks.run`` generated (or generates it), a PostgreSQL instance
(``FAIRSTREAM_PG_*``, default the local server, database ``fairstream_bench``), RabbitMQ on a vhost
of its own, and ``dagster asset materialize`` with the Celery executor, ingestion through
statements (the notification assets are left out, as in ``benchmarks.run``). Prints one JSON line;
``docs/performance.md`` holds the results. The workers' peak RSS is not measured here (the
in-process benchmark gives each step's).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

from benchmarks.run import REPO, ensure_landing, fanned_in

BIN = Path(sys.executable).parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--buckets", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--month", default="2026-10")
    parser.add_argument("--data-dir", type=Path, default=REPO / "bench")
    args = parser.parse_args(argv)
    from fairstream_pipeline.celery_workers import LocalWorkers, prepare_instance

    users = max(1000, args.events // 100)
    landing = ensure_landing(args.data_dir, args.month, args.events, users, args.seed)
    home = args.data_dir / f"dagster-celery-{args.workers}"
    warehouse = args.data_dir / f"warehouse-celery-{args.events}"
    for folder in (home, warehouse):
        shutil.rmtree(folder, ignore_errors=True)
    home.mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    pg = (("HOST", "127.0.0.1"), ("PORT", "5432"), ("USER", "postgres"), ("PASSWORD", "postgres"), ("DB", "fairstream_bench"))
    for name, default in pg:  # this process's settings too: prepare_instance reads them
        os.environ.setdefault(f"FAIRSTREAM_PG_{name}", default)
    env = dict(
        os.environ,
        DAGSTER_HOME=str(home),
        FAIRSTREAM_LANDING_DIR=str(landing),
        FAIRSTREAM_WAREHOUSE_DIR=str(warehouse),
        FAIRSTREAM_FIRST_MONTH=args.month,
        FAIRSTREAM_USER_BUCKETS=str(args.buckets),
    )
    prepare_instance(args.workers, env)
    with LocalWorkers(args.workers, env, home / "celery", vhost=f"fairstream_bench_{uuid.uuid4().hex[:6]}") as workers:
        run_config = {"execution": {"config": {"celery": workers.executor_config()}}}
        started = time.time()
        done = subprocess.run(
            [str(BIN / "dagster"), "asset", "materialize", "-m", "fairstream_pipeline.definitions",
             "--select", "not group:notifications", "--partition", args.month, "--config-json", json.dumps(run_config)],
            env=env, cwd=REPO, capture_output=True, text=True, check=False,
        )
        seconds = time.time() - started
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
        return done.returncode
    os.environ.update(env)
    import dagster as dg

    from benchmarks.measure import step_times

    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs(limit=1)
        steps = step_times(instance, run.run_id)
    # (a step that never started, e.g. one skipped because its input was not produced, has no span)
    steps = {key: record for key, record in steps.items() if "start" in record and "end" in record}
    for record in steps.values():
        record["peak_rss_bytes"] = 0
    per_op = {name: round(r["seconds"], 1) for name, r in fanned_in(steps).items()}
    spans: dict[str, list[float]] = {}
    for key, record in steps.items():
        first_last = spans.setdefault(key.split("[")[0], [record["start"], record["end"]])
        first_last[0], first_last[1] = min(first_last[0], record["start"]), max(first_last[1], record["end"])
    print(json.dumps({"events": args.events, "workers": args.workers, "buckets": args.buckets,
                      "seconds": round(seconds, 1), "step_seconds": per_op,
                      "op_wall_seconds": {k: round(b - a, 1) for k, (a, b) in spans.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

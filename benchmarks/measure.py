"""Measure one thing in this process and print JSON: wall time, peak RSS, per-step figures.

Run by ``benchmarks.run`` in a fresh subprocess per measurement, so that each peak RSS belongs to
one thing only::

    python -m benchmarks.measure pipeline --landing L --warehouse W --month 2026-10 [--database-url URL]
    python -m benchmarks.measure scan_limit|duckdb_user_centric|pandas_user_centric --landing L --month M
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from fairstream_pipeline.lib.lake.memory import PAGE, RssSampler, peak_rss_bytes


class ProcessTreeRssSampler(RssSampler):
    """Samples the resident set size of this process and every process it started (the statement
    emails' render workers), added up, every ``interval`` seconds."""

    def run(self) -> None:
        me = os.getpid()
        while not self._done.is_set():
            parents: dict[int, int] = {}
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    try:
                        with open(f"/proc/{entry.name}/stat") as stat:
                            parents[int(entry.name)] = int(stat.read().rsplit(")", 1)[1].split()[1])
                    except (OSError, IndexError, ValueError):
                        continue
            tree, grew = {me}, True
            while grew:
                found = {pid for pid, parent in parents.items() if parent in tree} - tree
                tree |= found
                grew = bool(found)
            total = 0
            for pid in tree:
                try:
                    with open(f"/proc/{pid}/statm") as statm:
                        total += int(statm.read().split()[1]) * PAGE
                except (OSError, IndexError, ValueError):
                    continue
            self.samples.append((time.time(), total))
            self._done.wait(self.interval)

def step_times(instance, run_id: str) -> dict[str, dict]:
    """``{step key: {start, end, seconds, status}}`` of a run, from its event log."""
    steps: dict[str, dict] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        record = steps.setdefault(event.step_key, {})
        if event.event_type_value == "STEP_START":
            record["start"] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            record["end"] = entry.timestamp
            record["status"] = event.event_type_value
    for record in steps.values():
        record["seconds"] = record.get("end", 0) - record.get("start", 0)
    return steps


# The steps after the month's computation: the close, the statement emails, publishing to the app
# database and the outbox (issue 24: together at most half the computation at 200M plays).
CLOSE_AND_NOTIFY = ("period_close", "statement_notifications", "published_statements", "statement_outbox")
# FairStream's (sample) account, so that the payment batch is built as in production.
BENCH_DEBTOR = {
    "FAIRSTREAM_PAYMENTS_DEBTOR_NAME": "FairStream Bench SAS",
    "FAIRSTREAM_PAYMENTS_DEBTOR_IBAN": "FR7630006000011234567890189",
    "FAIRSTREAM_PAYMENTS_DEBTOR_BIC": "AGRIFRPPXXX",
}


def is_close_or_notification(step_key: str) -> bool:
    """Whether a step (or an asset check's step) belongs to the close and the notifications."""
    return step_key.split("[")[0] in CLOSE_AND_NOTIFY


def measure_pipeline(
    landing: Path, warehouse: Path, month: str, buckets: int = 0, database_url: str = "", scope: str = "job"
) -> dict:
    """Materialize monthly_payout_job for ``month`` in-process; per-step wall time and peak RSS.

    ``scope`` "job": every asset of the job, the close, the emails, the app database
    (``database_url``, which must be an empty database) and the payment batch; "computation": all
    but the notification group. ``buckets`` 0: as many user buckets as the settings choose."""
    os.environ.update(
        FAIRSTREAM_LANDING_DIR=str(landing),
        FAIRSTREAM_WAREHOUSE_DIR=str(warehouse),
        FAIRSTREAM_FIRST_MONTH=month,
        FAIRSTREAM_PAYMENTS_OUT_DIR=str(warehouse / "payments"),
        FAIRSTREAM_DATABASE_URL=database_url,
        **BENCH_DEBTOR,
    )
    if buckets:
        os.environ["FAIRSTREAM_USER_BUCKETS"] = str(buckets)  # the clean plays are stored in as many buckets
    import dagster as dg

    from fairstream_pipeline.definitions import defs

    definitions = defs()
    job = definitions.resolve_job_def("monthly_payout_job")
    graph = definitions.resolve_asset_graph()
    selection = [
        key for key in job.asset_layer.selected_asset_keys
        if scope == "job" or graph.get(key).group_name != "notifications"
    ]
    sampler = ProcessTreeRssSampler(interval=0.05)
    sampler.start()
    instance = dg.DagsterInstance.ephemeral()
    started = time.time()
    result = job.execute_in_process(
        partition_key=month, instance=instance, raise_on_error=False, asset_selection=selection,
        run_config={"ops": {"count_and_allocate": {"ops": {"plan_user_buckets": {"config": {"buckets": buckets}}}}}},
    )
    seconds = time.time() - started
    sampler.stop()
    steps = step_times(instance, result.run_id)
    for record in steps.values():
        record["peak_rss_bytes"] = sampler.peak_between(record.get("start", 0), record.get("end", 0))
    instance.dispose()
    from fairstream_pipeline.lib.lake.storage import Lake

    stored = Lake(warehouse).manifest("clean_plays", month).get("user_buckets") if result.success else None
    after = sum(r["seconds"] for key, r in steps.items() if is_close_or_notification(key))
    return {
        "success": result.success,
        "scope": scope,
        "user_buckets": stored,
        "seconds": seconds,
        "computation_seconds": seconds - after,
        "close_and_notify_seconds": after,
        "peak_rss_bytes": max(peak_rss_bytes(), sampler.peak()),  # (the tree's, with the render workers)
        "steps": {k: {x: v[x] for x in ("seconds", "peak_rss_bytes", "status") if x in v} for k, v in steps.items()},
    }


def measure_baseline(name: str, landing: Path, month: str) -> dict:
    from benchmarks import baselines
    from fairstream_pipeline.defs.resources import default_resources

    engine = default_resources()["duckdb"]
    settings = baselines.DuckDBSettings(engine.memory_limit, engine.threads, engine.temp_directory)
    started = time.time()
    if name == "pandas_user_centric":
        value = baselines.pandas_user_centric(landing, month)
    else:
        value = getattr(baselines, name)(landing, month, settings)
    return {"seconds": time.time() - started, "peak_rss_bytes": peak_rss_bytes(), "result": value}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "what",
        choices=["pipeline", "scan_limit", "duckdb_user_centric", "duckdb_user_centric_dedupe", "pandas_user_centric"],
    )
    parser.add_argument("--buckets", type=int, default=0, help="user buckets of the month (0: the settings' choice)")
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--warehouse", type=Path)
    parser.add_argument("--month", required=True)
    parser.add_argument("--database-url", default="", help="an empty app database for the notifications")
    parser.add_argument("--scope", choices=["job", "computation"], default="job")
    args = parser.parse_args(argv)
    if args.what == "pipeline":
        report = measure_pipeline(
            args.landing, args.warehouse, args.month, args.buckets, args.database_url, args.scope
        )
    else:
        try:
            report = measure_baseline(args.what, args.landing, args.month)
        except MemoryError:
            report = {"out_of_memory": True, "peak_rss_bytes": peak_rss_bytes()}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

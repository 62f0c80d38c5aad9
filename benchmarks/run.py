"""The benchmark: a generated month through the whole pipeline, beside three baselines.

    make bench EVENTS=200000000          # or: python -m benchmarks.run --events 200000000

1. generates (or reuses) a sample month of N plays with the project's own generator;
2. materializes the whole ``monthly_payout_job`` in-process: ingestion through statements, the payment
   batch, the close, the statement emails and the app database (a fresh database
   ``fairstream_bench`` on the local PostgreSQL), reporting each step's time and peak;
3. times, on the same files, the DuckDB scan limit, a single-query DuckDB user-centric calculation
   and a straightforward pandas one — each in a fresh process, so each peak RSS is its own;
4. prints the ratios of the month's computation (everything before the close) to the baselines and
   of the close and notifications to the computation, and appends a row to ``docs/performance.md``.
   A DuckDB baseline out of memory at the project's limit runs again with 16GB, and the row says so.

DuckDB's memory limit, threads and spill directory come from the same environment variables as
the pipeline (``FAIRSTREAM_DUCKDB_MEMORY_LIMIT``, default 4GB, ``FAIRSTREAM_DUCKDB_THREADS``,
``FAIRSTREAM_DUCKDB_TEMP_DIR``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASELINES = ("scan_limit", "duckdb_user_centric", "duckdb_user_centric_dedupe", "pandas_user_centric")
# (the table of results before issue 24, <!-- bench:results:end -->, is no longer appended to)
JOB_RESULTS_END = "<!-- bench:job:end -->"
# A baseline out of memory at the project's DuckDB limit runs again with this much (and says so).
BASELINE_RETRY_MEMORY = "16GB"
BENCH_DATABASE = "fairstream_bench_app"  # the app database, dropped and created by each run
STEPS_END = "<!-- bench:steps:end -->"


def machine() -> dict:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cores": os.cpu_count(), "memory_gib": round(memory / 2**30, 1)}


def ensure_landing(root: Path, month: str, events: int, users: int, seed: int) -> Path:
    """The landing zone for these arguments, generated once and reused after."""
    from fairstream_pipeline.sample import generate_month

    landing = root / f"landing-{events}-u{users}-s{seed}"
    marker = landing / f"_bench-{month}.json"
    if not marker.is_file():
        started = time.time()
        summary = generate_month(landing, month, users=users, seed=seed, events=events)
        marker.write_text(json.dumps({"generated_seconds": round(time.time() - started, 1), **summary.to_dict()}))
    return landing


def fresh_bench_database(admin_url: str, name: str = BENCH_DATABASE) -> str:
    """Drop and create the benchmark's app database ``name`` on the PostgreSQL of ``admin_url``; its URL."""
    import psycopg2

    connection = psycopg2.connect(admin_url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def measure(
    what: str, landing: Path, month: str, warehouse: Path | None = None, memory_cap: int | None = None,
    buckets: int = 0, database_url: str = "", duckdb_memory: str | None = None,
) -> dict:
    """Run ``benchmarks.measure`` in a fresh process; a killed or capped child is out of memory."""
    command = [sys.executable, "-m", "benchmarks.measure", what, "--landing", str(landing), "--month", month]
    if warehouse is not None:
        command += ["--warehouse", str(warehouse), "--buckets", str(buckets), "--database-url", database_url]
    env = {**os.environ, **({"FAIRSTREAM_DUCKDB_MEMORY_LIMIT": duckdb_memory} if duckdb_memory else {})}

    def cap() -> None:
        if memory_cap:
            resource.setrlimit(resource.RLIMIT_AS, (memory_cap, memory_cap))

    process = subprocess.run(command, cwd=REPO, capture_output=True, text=True, preexec_fn=cap, env=env)
    if process.returncode == 0:
        return json.loads(process.stdout.strip().splitlines()[-1])
    out_of_memory = ("MemoryError", "std::bad_alloc", "OutOfMemoryException")  # DuckDB's: at its memory limit
    if process.returncode == -signal.SIGKILL or any(sign in process.stderr for sign in out_of_memory):
        return {"out_of_memory": True}
    raise RuntimeError(f"{what} failed ({process.returncode}):\n{process.stderr[-3000:]}")


def fanned_in(steps: dict[str, dict]) -> dict[str, dict]:
    """One row per op: a fanned-out op's steps (``op[key]``) add their seconds and keep the
    largest peak, named ``op (×n, longest s)``."""
    groups: dict[str, list[dict]] = {}
    for key, record in steps.items():
        groups.setdefault(key.split("[")[0], []).append(record)
    rows = {}
    for name, records in groups.items():
        label = name if len(records) == 1 else f"{name} (×{len(records)}, longest {max(r['seconds'] for r in records):.1f} s)"
        rows[label] = {
            "seconds": sum(r["seconds"] for r in records),
            "peak_rss_bytes": max(r["peak_rss_bytes"] for r in records),
        }
    return rows


def current_commit() -> str:
    if not shutil.which("git"):
        return "unknown"
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return head.stdout.strip() or "unknown"


def gib(n: int) -> str:
    return f"{n / 2**30:.2f}"


def seconds(report: dict) -> str:
    return "out of memory" if report.get("out_of_memory") else f"{report['seconds']:.1f}"


def ratio(ours: dict, base: dict) -> str:
    return "n/a (baseline out of memory)" if base.get("out_of_memory") else f"{ours['seconds'] / base['seconds']:.2f}x"


def append_rows(docs: Path, marker: str, rows: list[str]) -> None:
    text = docs.read_text()
    if marker not in text:
        raise RuntimeError(f"{docs} has no {marker} marker")
    docs.write_text(text.replace(marker, "\n".join(rows) + "\n" + marker))


def baseline(name: str, landing: Path, month: str, memory_cap: int | None) -> dict:
    """A baseline at the project's DuckDB memory limit; out of memory there, again with
    ``BASELINE_RETRY_MEMORY`` (the report's ``memory`` says which)."""
    report = measure(name, landing, month, memory_cap=memory_cap)
    if report.get("out_of_memory") and name.startswith("duckdb"):
        retried = measure(name, landing, month, duckdb_memory=BASELINE_RETRY_MEMORY)
        if not retried.get("out_of_memory"):
            return {**retried, "memory": BASELINE_RETRY_MEMORY}
    return report


def with_memory(report: dict) -> str:
    """A baseline's seconds, with the memory it needed when that was more than the project's limit."""
    return seconds(report) + (f" (with {report['memory']})" if report.get("memory") else "")


def computation(ours: dict) -> dict:
    """Our month's computation (ingestion through statements and the payment batch) as a report."""
    return {"seconds": ours["computation_seconds"]}


def share(part: float, whole: float) -> str:
    return f"{part / whole:.2f}" if whole else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, required=True, help="plays in the month")
    parser.add_argument("--users", type=int, help="user base (default: events // 100, at least 1000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--month", default="2026-10")
    parser.add_argument("--data-dir", type=Path, default=REPO / "bench", help="where landing zones are kept")
    parser.add_argument("--docs", type=Path, default=REPO / "docs" / "performance.md")
    parser.add_argument("--no-docs", action="store_true", help="print only, do not append to the docs")
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument(
        "--buckets", type=int, default=None,
        help="user buckets of the month (default: the pipeline's settings, FAIRSTREAM_USER_BUCKETS or chosen "
        "from the month's size)",
    )
    parser.add_argument(
        "--pandas-memory-gib", type=float, default=None,
        help="address-space cap for the pandas baseline (default: 80%% of the machine's memory)",
    )
    parser.add_argument(
        "--admin-database-url",
        default=os.environ.get("FAIRSTREAM_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help=f"a PostgreSQL on which the benchmark (re)creates the app database {BENCH_DATABASE}",
    )
    parser.add_argument("--app-database", default=BENCH_DATABASE, help="the app database's name")
    args = parser.parse_args(argv)
    users = args.users or max(1000, args.events // 100)
    box = machine()

    landing = ensure_landing(args.data_dir, args.month, args.events, users, args.seed)
    warehouse = args.data_dir / f"warehouse-{args.events}"
    shutil.rmtree(warehouse, ignore_errors=True)
    rows_read = json.loads((landing / f"_bench-{args.month}.json").read_text())["rows_written"]
    database_url = fresh_bench_database(args.admin_database_url, args.app_database)

    print(f"benchmark: {args.events:,} plays ({rows_read:,} rows), {users:,} users, "
          f"{box['cores']} cores, {box['memory_gib']} GiB, {args.buckets or 'default'} user buckets", flush=True)
    ours = measure(
        "pipeline", landing, args.month, warehouse=warehouse, buckets=args.buckets or 0, database_url=database_url
    )
    if not ours["success"]:
        raise RuntimeError("the pipeline run failed; see the Dagster logs above")
    steps_by_op = fanned_in(ours["steps"])
    emails = steps_by_op.get("statement_notifications", {"seconds": 0.0})["seconds"]
    print(f"monthly_payout_job: {ours['seconds']:.1f} s, peak RSS {gib(ours['peak_rss_bytes'])} GiB, "
          f"{ours['user_buckets']} user buckets; computation {ours['computation_seconds']:.1f} s, the close "
          f"and notifications {ours['close_and_notify_seconds']:.1f} s (emails {emails:.1f} s)", flush=True)
    pandas_cap = int((args.pandas_memory_gib or 0.8 * box["memory_gib"]) * 2**30)
    baselines = {}
    for name in BASELINES:
        if name == "pandas_user_centric" and args.skip_pandas:
            baselines[name] = {"skipped": True, "seconds": float("nan")}
            continue
        baselines[name] = baseline(name, landing, args.month, pandas_cap if name.startswith("pandas") else None)
        print(f"{name}: {with_memory(baselines[name])} s", flush=True)

    month = computation(ours)
    for name, report in baselines.items():
        if not report.get("skipped"):
            print(f"computation / {name}: {ratio(month, report)}")
    print(f"emails / computation: {share(emails, month['seconds'])}; the close and notifications / "
          f"computation: {share(ours['close_and_notify_seconds'], month['seconds'])}")
    steps = sorted(steps_by_op.items(), key=lambda item: -item[1]["seconds"])
    print("\nstep                                                        seconds  peak RSS GiB  plays/s")
    for step, record in steps:
        rate = rows_read / record["seconds"] if record["seconds"] else 0
        print(f"{step:<60}{record['seconds']:>8.1f}  {gib(record['peak_rss_bytes']):>12}  {rate:>10,.0f}")

    if not args.no_docs:
        today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        commit = current_commit()
        dedupe, no_dedupe = baselines["duckdb_user_centric_dedupe"], baselines["duckdb_user_centric"]
        append_rows(
            args.docs,
            JOB_RESULTS_END,
            [
                f"| {today} | {commit} | {args.events:,} | {ours['user_buckets']} | "
                f"{month['seconds']:.1f} | {month['seconds'] * 1e6 / args.events:.2f} | "
                f"{with_memory(dedupe)} | {ratio(month, dedupe)} | {with_memory(no_dedupe)} | {ratio(month, no_dedupe)} | "
                f"{emails:.1f} ({share(emails, month['seconds'])}) | "
                f"{ours['close_and_notify_seconds']:.1f} ({share(ours['close_and_notify_seconds'], month['seconds'])}) | "
                f"{ours['seconds']:.1f} | {gib(ours['peak_rss_bytes'])} GiB = {ours['peak_rss_bytes'] / 1e9:.2f} GB | "
                f"{max(steps, key=lambda item: item[1]['peak_rss_bytes'])[0]} |"
            ],
        )
        append_rows(
            args.docs,
            STEPS_END,
            [
                f"| {args.events:,} | {step} | {record['seconds']:.1f} | {gib(record['peak_rss_bytes'])} | "
                f"{rows_read / record['seconds'] if record['seconds'] else 0:,.0f} |"
                for step, record in steps
            ],
        )
        print(f"\nappended to {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

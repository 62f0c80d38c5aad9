"""The benchmark: a generated month through the whole pipeline, beside three baselines.

    make bench EVENTS=200000000          # or: python -m benchmarks.run --events 200000000

1. generates (or reuses) a sample month of N plays with the project's own generator;
2. materializes the month, ingestion through statements, with ``monthly_payout_job`` in-process;
3. times, on the same files, the DuckDB scan limit, a single-query DuckDB user-centric calculation
   and a straightforward pandas one — each in a fresh process, so each peak RSS is its own;
4. prints the ratios and appends the results to ``docs/performance.md`` with the machine's cores
   and memory. A baseline that runs out of memory is reported as such.

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
RESULTS_END = "<!-- bench:results:end -->"
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


def measure(
    what: str, landing: Path, month: str, warehouse: Path | None = None, memory_cap: int | None = None, buckets: int = 0
) -> dict:
    """Run ``benchmarks.measure`` in a fresh process; a killed or capped child is out of memory."""
    command = [sys.executable, "-m", "benchmarks.measure", what, "--landing", str(landing), "--month", month]
    if warehouse is not None:
        command += ["--warehouse", str(warehouse), "--buckets", str(buckets)]

    def cap() -> None:
        if memory_cap:
            resource.setrlimit(resource.RLIMIT_AS, (memory_cap, memory_cap))

    process = subprocess.run(command, cwd=REPO, capture_output=True, text=True, preexec_fn=cap)
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
    args = parser.parse_args(argv)
    users = args.users or max(1000, args.events // 100)
    box = machine()

    landing = ensure_landing(args.data_dir, args.month, args.events, users, args.seed)
    warehouse = args.data_dir / f"warehouse-{args.events}"
    shutil.rmtree(warehouse, ignore_errors=True)
    rows_read = json.loads((landing / f"_bench-{args.month}.json").read_text())["rows_written"]

    print(f"benchmark: {args.events:,} plays ({rows_read:,} rows), {users:,} users, "
          f"{box['cores']} cores, {box['memory_gib']} GiB, {args.buckets or 'default'} user buckets", flush=True)
    ours = measure("pipeline", landing, args.month, warehouse=warehouse, buckets=args.buckets or 0)
    if not ours["success"]:
        raise RuntimeError("the pipeline run failed; see the Dagster logs above")
    print(f"pipeline: {ours['seconds']:.1f} s, peak RSS {gib(ours['peak_rss_bytes'])} GiB, "
          f"{ours['user_buckets']} user buckets", flush=True)
    pandas_cap = int((args.pandas_memory_gib or 0.8 * box["memory_gib"]) * 2**30)
    baselines = {}
    for name in BASELINES:
        if name == "pandas_user_centric" and args.skip_pandas:
            baselines[name] = {"skipped": True, "seconds": float("nan")}
            continue
        baselines[name] = measure(name, landing, args.month, memory_cap=pandas_cap if name.startswith("pandas") else None)
        print(f"{name}: {seconds(baselines[name])} s", flush=True)

    for name, report in baselines.items():
        if not report.get("skipped"):
            print(f"ours / {name}: {ratio(ours, report)}")
    steps = sorted(fanned_in(ours["steps"]).items(), key=lambda item: -item[1]["seconds"])
    print("\nstep                                                        seconds  peak RSS GiB  plays/s")
    for step, record in steps:
        rate = rows_read / record["seconds"] if record["seconds"] else 0
        print(f"{step:<60}{record['seconds']:>8.1f}  {gib(record['peak_rss_bytes']):>12}  {rate:>10,.0f}")

    if not args.no_docs:
        today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
        commit = current_commit()
        pandas = baselines["pandas_user_centric"]
        append_rows(
            args.docs,
            RESULTS_END,
            [
                f"| {today} | {commit} | {args.events:,} | {box['cores']} / {box['memory_gib']} GiB | "
                f"{ours['seconds']:.1f} | {gib(ours['peak_rss_bytes'])} | {rows_read / ours['seconds']:,.0f} | "
                f"{seconds(baselines['scan_limit'])} | {seconds(baselines['duckdb_user_centric'])} | "
                f"{'skipped' if pandas.get('skipped') else seconds(pandas)} | "
                f"{ratio(ours, baselines['scan_limit'])} | {ratio(ours, baselines['duckdb_user_centric'])} | "
                f"{'skipped' if pandas.get('skipped') else ratio(ours, pandas)} | "
                f"{seconds(baselines['duckdb_user_centric_dedupe'])} | "
                f"{ratio(ours, baselines['duckdb_user_centric_dedupe'])} | {ours['user_buckets']} |"
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

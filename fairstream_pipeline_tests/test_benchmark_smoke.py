"""The benchmark runs end to end at a small size (no timing assertions: CI machines vary)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_benchmark_smoke(tmp_path):
    docs = tmp_path / "performance.md"
    shutil.copy(REPO / "docs" / "performance.md", docs)
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--events", "100000", "--data-dir", str(tmp_path / "bench"),
         "--docs", str(docs)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            "HOME": str(tmp_path),
            "FAIRSTREAM_DUCKDB_MEMORY_LIMIT": "1GB",
        },
    )
    assert run.returncode == 0, run.stderr[-3000:]
    for line in ("ours / scan_limit:", "ours / duckdb_user_centric:", "ours / duckdb_user_centric_dedupe:",
                 "ours / pandas_user_centric:", "ingest_listening_events"):
        assert line in run.stdout
    added = [line for line in docs.read_text().splitlines() if line.startswith("| ") and "| 100,000 |" in line]
    # The results row, then one row per op, ingestion to the close and the payment batch: 14 asset ops
    # (ingest_listening_events is 3: the plan, the days (one row for the 31 steps), the merge;
    # count_and_allocate is 3: the plan, the buckets, the merge) and 7 check steps.
    assert len(added) == 1 + 21
    assert any("ingest_listening_events.ingest_event_day (×31," in line for line in added)
    # The landing zone is reused by the next run rather than generated again.
    assert len(list((tmp_path / "bench").glob("landing-100000-*/_bench-2026-10.json"))) == 1

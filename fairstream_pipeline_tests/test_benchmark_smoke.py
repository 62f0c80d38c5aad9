"""The benchmark runs end to end at a small size (no timing assertions: CI machines vary)."""

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from fairstream_pipeline_tests.postgres import PG, connect_admin

REPO = Path(__file__).resolve().parents[1]


def test_benchmark_smoke(tmp_path):
    docs = tmp_path / "performance.md"
    shutil.copy(REPO / "docs" / "performance.md", docs)
    app_database = f"fairstream_bench_{uuid.uuid4().hex[:10]}"
    admin_url = f"postgresql://{PG.user}:{PG.password}@{PG.host}:{PG.port}/postgres"
    try:
        run = subprocess.run(
            [sys.executable, "-m", "benchmarks.run", "--events", "100000", "--data-dir", str(tmp_path / "bench"),
             "--docs", str(docs), "--admin-database-url", admin_url, "--app-database", app_database],
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
        with connect_admin(app_database) as db:
            # The whole job ran: the app database holds the month's statements and queued emails.
            statements = db.execute("SELECT count(*) FROM statements WHERE month = '2026-10'").fetchone()[0]
            queued = db.execute("SELECT count(*) FROM notification_outbox WHERE month = '2026-10'").fetchone()[0]
    finally:
        with connect_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{app_database}" WITH (FORCE)')
    assert statements > 0 and queued == statements - 1  # every payee but __suspense__ gets an email row
    for line in ("computation / scan_limit:", "computation / duckdb_user_centric:",
                 "computation / duckdb_user_centric_dedupe:", "computation / pandas_user_centric:",
                 "emails / computation:", "ingest_listening_events", "statement_outbox"):
        assert line in run.stdout
    added = [line for line in docs.read_text().splitlines() if line.startswith("| ") and "| 100,000 |" in line]
    # The job row, then one row per op: 18 asset ops (ingest_listening_events is 3: the plan, the
    # days (one row for the 31 steps), the merge; count_and_allocate is 3: the plan, the buckets,
    # the merge; the close, the emails, the app database and the outbox) and the check steps.
    job_rows = [line for line in added if line.count("|") == 16]
    assert len(job_rows) == 1, added
    assert len(added) == 1 + 25, "\n".join(added)
    assert any("ingest_listening_events.ingest_event_day (×31," in line for line in added)
    assert any("| statement_notifications |" in line for line in added)
    # The landing zone is reused by the next run rather than generated again.
    assert len(list((tmp_path / "bench").glob("landing-100000-*/_bench-2026-10.json"))) == 1

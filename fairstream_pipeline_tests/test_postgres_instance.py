"""The deployment instance (top-level dagster.yaml) against a real PostgreSQL, through the real CLI."""

import shutil
import subprocess
from pathlib import Path

from fairstream_pipeline.sample import generate_month
from fairstream_pipeline_tests.postgres import PG, connect_admin
from fairstream_pipeline_tests.test_cli_end_to_end import BLOCKING_CHECKS, DAGSTER, materialize, project_env

REPO = Path(__file__).resolve().parents[1]
MONTH = "2026-09"


def test_a_month_materialized_with_the_postgres_instance_is_recorded_in_postgres(fresh_database, tmp_path):
    landing = tmp_path / "landing"
    generate_month(landing, MONTH, users=200, seed=5)
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = project_env(
        landing,
        tmp_path / "warehouse",
        home,
        FAIRSTREAM_PG_HOST=PG.host,
        FAIRSTREAM_PG_PORT=str(PG.port),
        FAIRSTREAM_PG_USER=PG.user,
        FAIRSTREAM_PG_PASSWORD=PG.password,
        FAIRSTREAM_PG_DB=fresh_database,
    )

    info = subprocess.run([DAGSTER, "instance", "info"], env=env, capture_output=True, text=True, timeout=120)
    assert info.returncode == 0, info.stderr
    assert "PostgresRunStorage" in info.stdout

    run = materialize(env, MONTH)  # the code location's default executor (in process), as in production
    assert run.returncode == 0, run.stderr[-3000:]

    with connect_admin(fresh_database) as db:
        statuses = db.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall()
        materialized = db.execute(
            """SELECT count(DISTINCT asset_key) FROM event_logs
               WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND partition = %s""",
            (MONTH,),
        ).fetchall()[0][0]
        checks = dict(
            db.execute(
                "SELECT check_name, execution_status FROM asset_check_executions WHERE partition = %s",
                (MONTH,),
            ).fetchall()
        )
    assert statuses == [("SUCCESS", 1)]
    # every asset of monthly_payout_job but published_statements, statement_outbox and payment_batch,
    # which write nothing (and record no materialization) without an app database or payment details
    assert materialized == 18
    for check, _ in BLOCKING_CHECKS:
        assert checks[check] == "SUCCEEDED", check

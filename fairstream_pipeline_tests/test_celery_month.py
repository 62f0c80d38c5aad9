"""A whole payout month on 2 Celery workers gives the same bytes as in process, for B = 1, 3 and 16.

The reference is ``dagster asset materialize --select '*'`` in process on an embedded instance.
The same CLI then runs the month with ``execution: {config: {celery: ...}}`` (the
``in_process_or_celery`` executor) on a PostgreSQL instance, its steps on 2 real workers
(``dagster-celery worker start``, a private RabbitMQ vhost), once per number of user buckets chosen
in the run config. Drafts only (``FAIRSTREAM_AUTO_CLOSE=false``), so that every run recomputes the
statements instead of finding a closed month.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.sample import generate_month
from fairstream_pipeline_tests.celery_workers import CeleryCluster
from fairstream_pipeline_tests.conftest import TEST_SETTINGS
from fairstream_pipeline_tests.postgres import PG

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).parent / "dagster")
MONTH = "2024-01"  # the first partition: the chain starts from zero balances
TABLES = ("user_streams", "flagged_users", "segment_pools", "track_earnings", "payee_earnings", "payee_statements")
SHARD_STEP = "count_and_allocate.allocate_user_bucket"
WORKERS = 2


def base_env(landing: Path, warehouse: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAIRSTREAM_", "DAGSTER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        FAIRSTREAM_LANDING_DIR=str(landing),
        FAIRSTREAM_WAREHOUSE_DIR=str(warehouse),
        FAIRSTREAM_AUTO_CLOSE="false",
        FAIRSTREAM_DUCKDB_MEMORY_LIMIT="1GB",
        FAIRSTREAM_DUCKDB_THREADS="1",  # two workers on two cores
        **TEST_SETTINGS,
    )
    return env


def materialize(env: dict[str, str], run_config: dict | None = None) -> subprocess.CompletedProcess:
    argv = [DAGSTER, "asset", "materialize", "-m", "fairstream_pipeline.definitions", "--select", "*",
            "--partition", MONTH]
    if run_config:
        argv += ["--config-json", json.dumps(run_config)]
    cli = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert cli.returncode == 0, f"{cli.stdout[-3000:]}\n{cli.stderr[-6000:]}"
    return cli


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("celery_landing")
    generate_month(root, MONTH, users=150, seed=3, events=30_000)
    return root


@pytest.fixture(scope="module")
def in_process_hashes(landing, tmp_path_factory) -> dict[str, str]:
    """The month in process, on an embedded instance: the reference bytes."""
    root = tmp_path_factory.mktemp("in_process")
    (root / "home").mkdir()
    (root / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    materialize(base_env(landing, root / "warehouse", root / "home"))
    lake = Lake(root / "warehouse")
    return {table: lake.content_hash(table, MONTH) for table in TABLES}


@pytest.fixture
def celery_home(tmp_path, fresh_database) -> Path:
    """A PostgreSQL instance whose duckdb_heavy pool has a slot per worker (docs/deployment.md, "Pools")."""
    home = tmp_path / "home"
    home.mkdir()
    config = {
        "storage": {"postgres": {"postgres_db": {
            "hostname": PG.host, "port": PG.port, "username": PG.user, "password": PG.password,
            "db_name": fresh_database, "scheme": "postgresql+psycopg2",
        }}},
        "concurrency": {"pools": {"default_limit": WORKERS, "granularity": "op"}},
        "telemetry": {"enabled": False},
    }
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    dg.DagsterInstance.from_config(str(home)).dispose()  # create the schema before the workers race to
    return home


def test_the_month_on_two_celery_workers_is_byte_identical_to_in_process(
    landing, in_process_hashes, celery_home, tmp_path
):
    warehouse = tmp_path / "warehouse"
    env = base_env(landing, warehouse, celery_home)
    with CeleryCluster(WORKERS, env, tmp_path / "celery") as cluster:
        workers = cluster.worker_pids()
        for buckets in (1, 3, 16):
            run_config = {
                "execution": {"config": {"celery": {"broker": cluster.broker, "backend": cluster.backend}}},
                "ops": {"count_and_allocate": {"ops": {"plan_user_buckets": {"config": {"buckets": buckets}}}}},
            }
            materialize(env, run_config)
            lake = Lake(warehouse)
            assert {table: lake.content_hash(table, MONTH) for table in TABLES} == in_process_hashes, buckets
            assert lake.manifest("user_streams", MONTH)["user_buckets"] == buckets

            instance = dg.DagsterInstance.from_config(str(celery_home))
            try:
                run = instance.get_runs(limit=1)[0]
                assert run.status == dg.DagsterRunStatus.SUCCESS
                (run_start,) = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_START)
                steps = {
                    e.step_key: e.dagster_event.pid
                    for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
                }
            finally:
                instance.dispose()
            shards = {k: pid for k, pid in steps.items() if k.startswith(SHARD_STEP)}
            assert sorted(shards) == sorted(f"{SHARD_STEP}[bucket_{b}]" for b in range(buckets))
            assert run_start.dagster_event.pid not in steps.values(), "a step ran in the orchestrating CLI"
            assert set(steps.values()) <= workers, f"steps ran outside the workers: {steps} vs {workers}"
            if buckets > 1:
                assert len(set(shards.values())) >= 2, f"every shard ran in one worker process: {shards}"

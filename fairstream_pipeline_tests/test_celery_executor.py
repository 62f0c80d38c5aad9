"""celery_executor end to end: one month's 4 shards on 2 real Celery workers (RabbitMQ, Postgres instance).

The run is started by the real CLI (``dagster job execute``, default run launcher: the run's
orchestration happens in the CLI process); each step is a Celery task. Which process ran a step is
read back from the instance's event log (STEP_START's pid), not from the ops' outputs alone.
"""

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from fairstream_pipeline_tests.celery_smoke_defs import JOB_NAME, SHARDS, SMOKE_DIR_ENV
from fairstream_pipeline_tests.celery_workers import CeleryCluster
from fairstream_pipeline_tests.postgres import PG

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]
DAGSTER = str(Path(sys.executable).parent / "dagster")
DEFS_FILE = "fairstream_pipeline_tests/celery_smoke_defs.py"
MONTH = "2026-08-01"  # MonthlyPartitionsDefinition's default key format is %Y-%m-%d
ASSET = "celery_smoke_month"
SHARD_STEP = f"{ASSET}.run_shard[shard_{{}}]"
WORKERS = 2


@pytest.fixture
def home(tmp_path, fresh_database):
    """A DAGSTER_HOME whose instance is a throwaway Postgres database, its schema created up front."""
    home = tmp_path / "home"
    home.mkdir()
    config = {
        "storage": {
            "postgres": {
                "postgres_db": {
                    "hostname": PG.host,
                    "port": PG.port,
                    "username": PG.user,
                    "password": PG.password,
                    "db_name": fresh_database,
                    # without it SQLAlchemy 2.1 picks psycopg 3, which is not installed
                    "scheme": "postgresql+psycopg2",
                }
            }
        },
        "telemetry": {"enabled": False},
    }
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


@pytest.fixture
def instance(home):
    # Opening the instance creates its tables now, before the workers (which would race to do it).
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()


@pytest.fixture
def env(home, tmp_path) -> dict[str, str]:
    smoke = tmp_path / "shared"
    smoke.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAIRSTREAM_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), **{SMOKE_DIR_ENV: str(smoke)})
    return env


@pytest.fixture
def cluster(instance, env, tmp_path):
    with CeleryCluster(WORKERS, env, tmp_path / "celery") as cluster:
        yield cluster


def test_a_months_shards_run_on_two_celery_workers(cluster, instance, env, tmp_path):
    run_config = tmp_path / "run_config.yaml"
    run_config.write_text(yaml.safe_dump(cluster.run_config()))
    started = time.monotonic()
    cli = subprocess.Popen(
        [DAGSTER, "job", "execute", "-f", DEFS_FILE, "-j", JOB_NAME, "-c", str(run_config),
         "--tags", json.dumps({"dagster/partition": MONTH})],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        output, _ = cli.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        cli.kill()
        output, _ = cli.communicate()
        pytest.fail(f"dagster job execute timed out\n{output[-4000:]}\n{cluster.logs()}")
    wall = time.monotonic() - started
    assert cli.returncode == 0, f"{output[-4000:]}\n{cluster.logs()}"

    (run,) = instance.get_runs()
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["dagster/partition"] == MONTH

    def pids(event_type: dg.DagsterEventType) -> dict[str | None, int]:
        return {e.step_key: e.dagster_event.pid for e in instance.all_logs(run.run_id, of_type=event_type)}

    (orchestrator,) = pids(dg.DagsterEventType.RUN_START).values()
    assert orchestrator == cli.pid, "the run should be orchestrated in the CLI's own process"

    step_pids = pids(dg.DagsterEventType.STEP_START)
    shard_steps = [SHARD_STEP.format(i) for i in range(SHARDS)]
    assert sorted(step_pids) == sorted([f"{ASSET}.split_month", *shard_steps, f"{ASSET}.combine"])
    shard_pids = [step_pids[step] for step in shard_steps]
    workers = cluster.worker_pids()
    assert orchestrator not in step_pids.values(), step_pids
    assert set(step_pids.values()) <= workers, f"steps ran outside the workers: {step_pids}, workers {workers}"
    assert len(set(shard_pids)) >= 2, f"all shards ran in one process: {step_pids}"

    # What the shards returned (and wrote to the shared folder) is exactly what was collected.
    shared = Path(env[SMOKE_DIR_ENV])
    expected = [{"month": MONTH, "shard": i, "pid": pid} for i, pid in enumerate(shard_pids)]
    written = [json.loads((shared / "shards" / MONTH / f"shard-{i}.json").read_text()) for i in range(SHARDS)]
    assert written == expected
    with open(shared / ASSET / MONTH, "rb") as f:  # FilesystemIOManager: <base_dir>/<asset key>/<partition>
        assert pickle.load(f) == {"month": MONTH, "shards": expected}
    materialization = instance.get_latest_materialization_event(dg.AssetKey(ASSET))
    assert materialization is not None and materialization.dagster_event.partition == MONTH

    (run_start,) = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_START)
    (run_success,) = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)
    print(
        f"\ncelery: {WORKERS} workers ready in {cluster.startup_seconds:.1f} s; CLI wall {wall:.1f} s; "
        f"run {run_success.timestamp - run_start.timestamp:.1f} s for {len(step_pids)} steps; "
        f"shard pids {shard_pids}"
    )

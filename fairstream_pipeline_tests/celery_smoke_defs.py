"""A tiny, test-only code location for the Celery executor: one month fanned out to 4 shards.

``celery_smoke_month`` is a monthly-partitioned graph asset: ``split_month`` yields 4 dynamic
outputs, ``run_shard`` is mapped over them (one Celery task each), ``combine`` collects the results.
Each shard writes a small file under ``$FAIRSTREAM_CELERY_SMOKE_DIR/shards/<month>/`` and returns
its process id, so a test can tell which worker ran it. Only small values travel between steps.

The directory must be shared by the run's process and every worker (the executor refuses in-memory
IO): outputs go through a FilesystemIOManager rooted at ``$FAIRSTREAM_CELERY_SMOKE_DIR``, resolved in
each process that runs a step, so the workers need that variable too.

Load it with ``dagster job execute -f fairstream_pipeline_tests/celery_smoke_defs.py -j celery_smoke_job``;
the workers import it by path (their working directory is the repository).
"""

# No `from __future__ import annotations`: Dagster reads the context / input type hints at definition time.
import json
import os
from pathlib import Path

import dagster as dg
from dagster_celery import celery_executor

SMOKE_DIR_ENV = "FAIRSTREAM_CELERY_SMOKE_DIR"
SHARDS = 4
JOB_NAME = "celery_smoke_job"
MONTHS = dg.MonthlyPartitionsDefinition(start_date="2026-08-01")


@dg.op(out=dg.DynamicOut(int))
def split_month(context: dg.OpExecutionContext):
    for shard in range(SHARDS):
        yield dg.DynamicOutput(shard, mapping_key=f"shard_{shard}")


@dg.op
def run_shard(context: dg.OpExecutionContext, shard: int) -> dict:
    month = context.partition_key
    folder = Path(os.environ[SMOKE_DIR_ENV]) / "shards" / month
    folder.mkdir(parents=True, exist_ok=True)
    result = {"month": month, "shard": shard, "pid": os.getpid()}
    (folder / f"shard-{shard}.json").write_text(json.dumps(result))
    return result


@dg.op
def combine(context: dg.OpExecutionContext, results: list[dict]) -> dict:
    return {"month": context.partition_key, "shards": sorted(results, key=lambda r: r["shard"])}


@dg.graph_asset(partitions_def=MONTHS)
def celery_smoke_month():
    return combine(split_month().map(run_shard).collect())


celery_smoke_job = dg.define_asset_job(
    JOB_NAME, selection=[celery_smoke_month], executor_def=celery_executor
)

defs = dg.Definitions(
    assets=[celery_smoke_month],
    jobs=[celery_smoke_job],
    resources={"io_manager": dg.FilesystemIOManager(base_dir=dg.EnvVar(SMOKE_DIR_ENV))},
)

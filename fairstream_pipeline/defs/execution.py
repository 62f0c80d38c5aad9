"""The executor of every payout run: in process by default, on Celery workers when the run asks.

``in_process_or_celery`` is chosen per run, in the run config (the launchpad, ``--config-json``)::

    execution:
      config:
        in_process: {}            # the default: every step in the run's own process

    execution:
      config:
        celery:                   # every step a Celery task, run by `dagster-celery worker start`
          broker: pyamqp://guest:guest@rabbitmq:5672/fairstream   # else FAIRSTREAM_CELERY_BROKER
          backend: rpc://                                         # else FAIRSTREAM_CELERY_BACKEND

``FAIRSTREAM_CELERY_BROKER`` is a secret (its URL carries the broker's password): it is read in the
run's process and handed to the Celery executor, never written into the run's config or logged.

In process, DuckDB already uses every core inside a step and the month's lock is held once for
the run. On Celery, each step runs in a worker process, which takes the month's lock in shared mode
for its run (``lib.lake.month_lock``: the instance must be on PostgreSQL), and every worker must reach
the same instance and the same warehouse (docs/deployment.md, "Running on Celery workers"). Not the
``CeleryRunLauncher``: the default run launcher starts the run, and only its steps go to Celery.
"""

import dagster as dg
from dagster_celery import celery_executor
from dagster_celery.executor import CELERY_CONFIG

from fairstream_pipeline.settings import get_settings


def _requirements(executor_config):
    return dg.multiple_process_executor_requirements() if "celery" in executor_config else []


@dg.executor(
    name="in_process_or_celery",
    config_schema=dg.Field(
        dg.Selector({"in_process": dg.in_process_executor.config_schema.as_field(), "celery": CELERY_CONFIG}),
        default_value={"in_process": {}},
    ),
    requirements=_requirements,
)
def in_process_or_celery(init_context: dg.InitExecutorContext) -> dg.Executor:
    """Every step in the run's process (``in_process``), or each on a Celery worker (``celery``)."""
    config = init_context.executor_config
    if "celery" in config:
        chosen, settings = dict(config["celery"]), get_settings()
        chosen["broker"] = chosen.get("broker") or settings.celery_broker.get_secret_value()
        chosen["backend"] = chosen.get("backend") or settings.celery_backend
        executor_def = celery_executor
    else:
        chosen, executor_def = config["in_process"], dg.in_process_executor
    return executor_def.executor_creation_fn(
        dg.InitExecutorContext(
            job=init_context.job, executor_def=executor_def, executor_config=chosen, instance=init_context.instance
        )
    )

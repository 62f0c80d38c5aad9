"""Real Celery workers for the tests, on a private RabbitMQ vhost: ``fairstream_pipeline.celery_workers``
(the same workers as ``make demo-distributed``), failing the test (never skipping) when RabbitMQ, a
vhost or a worker is not there, and checking on exit that no worker process and no vhost is left.

Workers start with the repository as working directory and on ``PYTHONPATH`` (the smoke test's
code location is a file of this package). The instance's schema must exist before they start:
every worker opens the instance, and side by side they race to create the tables of an empty
database.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Self

import pytest

from fairstream_pipeline.celery_workers import LocalWorkers, WorkerError
from fairstream_pipeline_tests.dagster_services import REPO

RABBITMQ_HOST = os.environ.get("FAIRSTREAM_TEST_RABBITMQ_HOST", "127.0.0.1")
RABBITMQ_PORT = int(os.environ.get("FAIRSTREAM_TEST_RABBITMQ_PORT", "5672"))
RABBITMQ_USER = os.environ.get("FAIRSTREAM_TEST_RABBITMQ_USER", "guest")
RABBITMQ_PASSWORD = os.environ.get("FAIRSTREAM_TEST_RABBITMQ_PASSWORD", "guest")
HINT = "Start it (.ci/run does: service rabbitmq-server start) or point FAIRSTREAM_TEST_RABBITMQ_* at one."


class CeleryCluster:
    """N workers with ``--concurrency`` each on a vhost of their own; a context manager."""

    def __init__(self, workers: int, env: dict[str, str], work_dir: Path, concurrency: int = 1):
        assert env.get("DAGSTER_HOME"), "the workers need the test's DAGSTER_HOME"
        pythonpath = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        self.workers = LocalWorkers(
            workers, {**env, "PYTHONPATH": pythonpath}, Path(work_dir), host=RABBITMQ_HOST, port=RABBITMQ_PORT,
            user=RABBITMQ_USER, password=RABBITMQ_PASSWORD, vhost=f"fairstream_test_{uuid.uuid4().hex[:12]}",
            concurrency=concurrency, cwd=REPO,
        )
        self.broker, self.backend, self.vhost = self.workers.broker, self.workers.backend, self.workers.vhost

    @property
    def startup_seconds(self) -> float | None:
        return self.workers.startup_seconds

    def executor_config(self) -> dict[str, Any]:
        return self.workers.executor_config()

    def run_config(self) -> dict[str, Any]:
        """Run config for a job whose executor is ``dagster_celery.celery_executor`` itself."""
        return {"execution": {"config": self.executor_config()}}

    def worker_pids(self) -> set[int]:
        return self.workers.pids()

    def logs(self, lines: int = 40) -> str:
        return self.workers.logs(lines)

    def __enter__(self) -> Self:
        try:
            self.workers.start()
        except WorkerError as exc:
            logs = self.workers.logs()
            self.workers.stop()
            pytest.fail(f"{exc}. {HINT}\n{logs}", pytrace=False)
        return self

    def __exit__(self, *exc_info) -> None:
        survivors = self.workers.stop()
        assert not survivors, f"worker processes {survivors} survived SIGKILL"
        assert self.vhost not in self.workers.list_vhosts(), f"vhost {self.vhost} is still listed"

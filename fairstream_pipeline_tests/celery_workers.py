"""Real Celery workers for ``dagster_celery.celery_executor``, on a private RabbitMQ vhost.

``CeleryCluster`` creates a vhost of its own (``rpc://`` reply queues linger for a day, so a test
must not leave them on ``/``), writes the worker config YAML, starts N ``dagster-celery worker start``
processes with ``--concurrency=1``, waits until every one answers a ping, and on exit stops them
and deletes the vhost. RabbitMQ unreachable is a failure, never a skip.

Each worker is a ``dagster_services.Service``: its own session, SIGINT/SIGTERM reset to their
defaults before exec, and stopped by signalling every process of the session.
``dagster-celery worker start`` runs ``celery worker`` as a child process, which forks a pool
process: SIGTERM to the ``dagster-celery`` process alone leaves the worker running (measured).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

import celery
import pytest
import yaml

from fairstream_pipeline_tests.dagster_services import BIN, REPO, Service, session_members

RABBITMQ_HOST = os.environ.get("FAIRSTREAM_TEST_RABBITMQ_HOST", "127.0.0.1")
RABBITMQ_PORT = int(os.environ.get("FAIRSTREAM_TEST_RABBITMQ_PORT", "5672"))
RABBITMQ_USER = os.environ.get("FAIRSTREAM_TEST_RABBITMQ_USER", "guest")
RABBITMQ_PASSWORD = os.environ.get("FAIRSTREAM_TEST_RABBITMQ_PASSWORD", "guest")
RABBITMQCTL = os.environ.get("FAIRSTREAM_TEST_RABBITMQCTL", "/usr/sbin/rabbitmqctl")
WORKER_APP = "dagster_celery.app"
READY_TIMEOUT = 60  # measured: ~4-5 s for two workers started side by side


def _rabbitmq_hint() -> str:
    return "Start it (.ci/run does: service rabbitmq-server start) or point FAIRSTREAM_TEST_RABBITMQ_* at one."


def require_rabbitmq() -> None:
    """Fail the test (never skip) if nothing accepts connections on the broker's port."""
    try:
        with socket.create_connection((RABBITMQ_HOST, RABBITMQ_PORT), timeout=5):
            return
    except OSError as exc:
        error = exc
    pytest.fail(f"RabbitMQ is not reachable at {RABBITMQ_HOST}:{RABBITMQ_PORT} ({error}). {_rabbitmq_hint()}",
                pytrace=False)


def rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl -q <args>``; fail the test with its output if it does not succeed."""
    try:
        done = subprocess.run([RABBITMQCTL, "-q", *args], check=False, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        error = exc
    else:
        error = None
    if error is not None:
        pytest.fail(f"rabbitmqctl {' '.join(args)} could not run ({error}). {_rabbitmq_hint()}", pytrace=False)
    if done.returncode != 0:
        pytest.fail(
            f"rabbitmqctl {' '.join(args)} exited with {done.returncode}: {done.stderr.strip() or done.stdout.strip()}",
            pytrace=False,
        )
    return done.stdout


def list_vhosts() -> list[str]:
    return [line.strip() for line in rabbitmqctl("list_vhosts").splitlines()[1:] if line.strip()]  # skip "name"


class CeleryCluster:
    """N Celery workers for the Dagster celery_executor on a private vhost. A context manager.

    ``env`` is the workers' environment (DAGSTER_HOME of the test's instance, and whatever the code
    location reads when a step runs); the repository goes on PYTHONPATH, the venv's bin first on
    PATH (``dagster-celery`` execs ``celery`` found on PATH). The instance's schema must exist
    before the workers start: every worker opens the instance on start-up, and side by side they
    race to create the tables of an empty database.
    """

    def __init__(self, workers: int, env: dict[str, str], work_dir: Path, concurrency: int = 1):
        assert env.get("DAGSTER_HOME"), "the workers need the test's DAGSTER_HOME"
        self.count, self.concurrency = workers, concurrency
        self.work_dir = Path(work_dir)
        self.vhost = f"fairstream_test_{uuid.uuid4().hex[:12]}"
        self.broker = f"pyamqp://{RABBITMQ_USER}:{RABBITMQ_PASSWORD}@{RABBITMQ_HOST}:{RABBITMQ_PORT}/{self.vhost}"
        self.backend = "rpc://"
        self.config_path = self.work_dir / "celery.yaml"
        self.worker_names = [f"{self.vhost}_w{i}" for i in range(workers)]
        pythonpath = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        self.env = {**env, "PYTHONPATH": pythonpath, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', os.defpath)}"}
        self.workers: list[Service] = []
        self.vhost_created = False
        self.startup_seconds: float | None = None

    # -- what a run needs ---------------------------------------------------------------------

    def executor_config(self) -> dict[str, Any]:
        """The celery_executor's config block: the same as the workers' YAML."""
        return {"broker": self.broker, "backend": self.backend}

    def run_config(self) -> dict[str, Any]:
        """Run config selecting these workers for a job whose executor is ``celery_executor``."""
        return {"execution": {"config": self.executor_config()}}

    # -- life cycle ----------------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        require_rabbitmq()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        rabbitmqctl("add_vhost", self.vhost)
        self.vhost_created = True
        rabbitmqctl("set_permissions", "-p", self.vhost, RABBITMQ_USER, ".*", ".*", ".*")
        # `dagster-celery worker start -y` reads execution.config (the executor's config schema)
        self.config_path.write_text(yaml.safe_dump(self.run_config(), sort_keys=False))
        started = time.monotonic()
        for name in self.worker_names:
            worker = Service(
                f"celery worker {name}",
                [
                    str(BIN / "dagster-celery"), "worker", "start",
                    "-A", WORKER_APP, "-y", str(self.config_path), "-n", name, "--loglevel", "INFO",
                    "--", f"--concurrency={self.concurrency}",
                ],
                self.work_dir / f"{name}.log",
            )
            self.workers.append(worker)
            worker.start(self.env, cwd=REPO)
        self._wait_until_ready(started)
        self.startup_seconds = time.monotonic() - started

    def _wait_until_ready(self, started: float) -> None:
        app = celery.Celery("fairstream-test-ping", broker=self.broker)
        answered: set[str] = set()
        try:
            while True:
                self.assert_running()
                with app.connection_for_write() as connection:
                    replies = app.control.ping(timeout=1.0, connection=connection) or []
                answered = {name.split("@", 1)[0] for reply in replies for name in reply}
                if set(self.worker_names) <= answered:
                    return
                if time.monotonic() - started > READY_TIMEOUT:
                    raise AssertionError(
                        f"Celery workers not ready after {READY_TIMEOUT} s: answered {sorted(answered)}, "
                        f"expected {self.worker_names}\n{self.logs()}"
                    )
                time.sleep(0.5)
        finally:
            app.close()

    def assert_running(self) -> None:
        for worker in self.workers:
            code = worker.exit_code()
            assert code is None, f"{worker.name} exited with code {code}\n{worker.tail(60)}"

    def worker_pids(self) -> set[int]:
        """Every live process of every worker (dagster-celery, celery main, pool processes)."""
        return {pid for worker in self.workers for pid in session_members(worker.pid)}

    def logs(self, lines: int = 40) -> str:
        return "\n".join(worker.tail(lines) for worker in self.workers)

    def stop(self) -> list[str]:
        """Stop every worker (SIGTERM their sessions, SIGKILL what is left), then delete the vhost.

        Raises AssertionError if a worker process survives or the vhost is still listed.
        """
        notes, failures = [], []

        def stop_one(worker: Service) -> None:
            try:
                notes.extend(worker.stop())
            except AssertionError as exc:
                failures.append(str(exc))

        # side by side: a worker's warm shutdown takes ~2 s (measured)
        with ThreadPoolExecutor(max_workers=max(1, len(self.workers))) as pool:
            list(pool.map(stop_one, self.workers))
        if not failures:
            self.workers = []
        if self.vhost_created:
            rabbitmqctl("delete_vhost", self.vhost)
            self.vhost_created = False
            if self.vhost in list_vhosts():
                failures.append(f"vhost {self.vhost} is still listed after delete_vhost")
        assert not failures, "; ".join(failures)
        return notes

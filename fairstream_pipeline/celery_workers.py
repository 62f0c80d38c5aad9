"""Local Celery workers for the ``celery`` choice of the ``in_process_or_celery`` executor.

Used by ``make demo-distributed`` (``python -m fairstream_pipeline.celery_workers demo``) and by the
tests. :class:`LocalWorkers` creates a RabbitMQ vhost of its own (``rabbitmqctl``; the ``rpc://``
reply queues of a vhost linger for a day), starts N ``dagster-celery worker start`` processes, each
in its own session so that stopping signals the whole tree (``dagster-celery`` runs ``celery worker``
as a child, which forks its pool process), waits until each answers a ping, and on exit stops them
and deletes the vhost. Workers on other machines are started by hand (docs/deployment.md, "Running on Celery
workers").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import yaml

from fairstream_pipeline.settings import get_settings

BIN = Path(sys.executable).parent
WORKER_APP = "dagster_celery.app"
READY_TIMEOUT = 60.0


class WorkerError(RuntimeError):
    """RabbitMQ or a worker is not there, or a worker did not start."""


def rabbitmqctl_path() -> str:
    """``FAIRSTREAM_RABBITMQCTL``, else the ``rabbitmqctl`` on PATH, else ``/usr/sbin/rabbitmqctl``."""
    return get_settings().rabbitmqctl or shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"


def rabbitmqctl(*args: str) -> str:
    try:
        done = subprocess.run([rabbitmqctl_path(), "-q", *args], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WorkerError(f"rabbitmqctl {' '.join(args)} could not run: {exc}") from exc
    if done.returncode != 0:
        raise WorkerError(f"rabbitmqctl {' '.join(args)} exited with {done.returncode}: {(done.stderr or done.stdout).strip()}")
    return done.stdout


def require_broker(host: str, port: int) -> None:
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise WorkerError(f"RabbitMQ is not reachable at {host}:{port} ({exc})") from exc


def session_members(session_id: int) -> list[int]:
    """The live (non-zombie) processes whose session id is ``session_id``, read from /proc/<pid>/stat."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[3]) == session_id and fields[0] != "Z":
                members.append(int(entry))
    return members


class LocalWorkers:
    """N Celery workers on a vhost of their own; a context manager."""

    def __init__(
        self,
        workers: int,
        env: dict[str, str],
        work_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 5672,
        user: str = "guest",
        password: str = "guest",
        vhost: str | None = None,
        concurrency: int = 1,
        cwd: Path | None = None,
    ):
        self.count, self.concurrency, self.host, self.port, self.user = workers, concurrency, host, port, user
        self.work_dir = Path(work_dir)
        self.vhost = vhost or f"fairstream_{uuid.uuid4().hex[:12]}"
        self.broker = f"pyamqp://{user}:{password}@{host}:{port}/{self.vhost}"
        self.backend = "rpc://"
        self.names = [f"{self.vhost}_w{i}" for i in range(workers)]
        # dagster-celery execs `celery` found on PATH: this environment's bin comes first.
        self.env = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', os.defpath)}"}
        self.cwd = cwd
        self.processes: list[subprocess.Popen] = []
        self.startup_seconds: float | None = None
        self._vhost_created = False

    def executor_config(self) -> dict:
        """The ``celery`` block of the run config: ``{"execution": {"config": {"celery": ...}}}``."""
        return {"broker": self.broker, "backend": self.backend}

    def __enter__(self) -> "LocalWorkers":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        require_broker(self.host, self.port)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        rabbitmqctl("add_vhost", self.vhost)
        self._vhost_created = True
        rabbitmqctl("set_permissions", "-p", self.vhost, self.user, ".*", ".*", ".*")
        config = self.work_dir / "celery.yaml"  # `worker start -y` reads celery_executor's own schema
        with open(os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:  # the broker's password
            yaml.safe_dump({"execution": {"config": self.executor_config()}}, file)
        started = time.monotonic()
        for name in self.names:
            with open(self.work_dir / f"{name}.log", "ab") as log:
                self.processes.append(
                    subprocess.Popen(
                        [str(BIN / "dagster-celery"), "worker", "start", "-A", WORKER_APP, "-y", str(config),
                         "-n", name, "--loglevel", "INFO", "--", f"--concurrency={self.concurrency}"],
                        env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                        start_new_session=True,
                        # Dagster copies the SIGINT disposition onto SIGTERM: reset both in the child.
                        preexec_fn=lambda: (signal.signal(signal.SIGINT, signal.SIG_DFL),
                                            signal.signal(signal.SIGTERM, signal.SIG_DFL)),
                    )
                )
        self._wait_until_ready(started)
        self.startup_seconds = time.monotonic() - started

    def _wait_until_ready(self, started: float) -> None:
        import celery

        app = celery.Celery("fairstream-ping", broker=self.broker)
        try:
            while True:
                for process, name in zip(self.processes, self.names):
                    if process.poll() is not None:
                        raise WorkerError(f"worker {name} exited with {process.returncode}:\n{self.log_tail(name)}")
                with app.connection_for_write() as connection:
                    replies = app.control.ping(timeout=1.0, connection=connection) or []
                answered = {node.split("@", 1)[0] for reply in replies for node in reply}
                if set(self.names) <= answered:
                    return
                if time.monotonic() - started > READY_TIMEOUT:
                    raise WorkerError(f"workers not ready after {READY_TIMEOUT:.0f} s: {sorted(answered)} answered")
                time.sleep(0.5)
        finally:
            app.close()

    def list_vhosts(self) -> list[str]:
        return [line.strip() for line in rabbitmqctl("list_vhosts").splitlines()[1:] if line.strip()]

    def logs(self, lines: int = 40) -> str:
        return "\n".join(f"--- {name} ---\n{self.log_tail(name, lines)}" for name in self.names)

    def pids(self) -> set[int]:
        """Every live process of every worker (dagster-celery, celery, pool processes)."""
        return {pid for p in self.processes for pid in session_members(p.pid)}

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.work_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self, grace_seconds: float = 20.0) -> list[int]:
        """SIGTERM every worker's session, SIGKILL what is left; delete the vhost. Returns survivors."""
        for process in self.processes:
            for pid in session_members(process.pid) or [process.pid]:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline and any(session_members(p.pid) for p in self.processes):
            for process in self.processes:
                process.poll()
            time.sleep(0.2)
        for process in self.processes:
            for pid in session_members(process.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        survivors = sorted(pid for p in self.processes for pid in session_members(p.pid))
        self.processes = [] if not survivors else self.processes
        if self._vhost_created:
            rabbitmqctl("delete_vhost", self.vhost)
            self._vhost_created = False
        return survivors


def prepare_instance(slots: int, env: dict[str, str]) -> None:
    """The demo's PostgreSQL instance (``FAIRSTREAM_PG_*`` of this process, which ``env`` passes on to
    the workers): its database (created if missing), its schema (created now, before the workers
    would race to), and a ``duckdb_heavy`` slot per worker (docs/deployment.md, "Pools")."""
    import psycopg2
    from psycopg2 import sql

    settings = get_settings()
    connection = psycopg2.connect(
        host=settings.pg_host, port=settings.pg_port, user=settings.pg_user,
        password=settings.pg_password.get_secret_value(), dbname="postgres", connect_timeout=10,
    )
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (settings.pg_db,))
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(settings.pg_db)))
    connection.close()
    subprocess.run([str(BIN / "dagster"), "instance", "concurrency", "set", "duckdb_heavy", str(slots)],
                   env=env, check=True, stdout=subprocess.DEVNULL)


def demo(argv: list[str] | None = None) -> int:
    """``make demo-distributed``: the demo months on 2 local workers, then the demo's summary."""
    parser = argparse.ArgumentParser(prog="python -m fairstream_pipeline.celery_workers demo")
    parser.add_argument("months", nargs="+")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--buckets", type=int, default=4)
    parser.add_argument("--work-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    env = dict(os.environ, FAIRSTREAM_USER_BUCKETS=str(args.buckets))  # ingestion stores as many buckets
    prepare_instance(args.workers, env)
    with LocalWorkers(args.workers, env, args.work_dir, vhost=f"fairstream_demo_{uuid.uuid4().hex[:6]}") as workers:
        print(f"== {args.workers} Celery workers ready in {workers.startup_seconds:.1f} s on vhost {workers.vhost}")
        # The broker URL carries a password: the runs read it from FAIRSTREAM_CELERY_BROKER (a secret
        # setting) rather than from their config, which the instance stores and the UI shows.
        env["FAIRSTREAM_CELERY_BROKER"] = workers.broker
        run_config = {
            "execution": {"config": {"celery": {"backend": workers.backend}}},
            "ops": {"count_and_allocate": {"ops": {"plan_user_buckets": {"config": {"buckets": args.buckets}}}}},
        }
        for month in args.months:
            print(f"== dagster asset materialize --select '*' --partition {month} (celery, {args.buckets} user buckets)")
            log = args.work_dir / f"materialize-{month}.log"
            with open(log, "w") as out:
                done = subprocess.run(
                    [str(BIN / "dagster"), "asset", "materialize", "-m", "fairstream_pipeline.definitions",
                     "--select", "*", "--partition", month, "--config-json", json.dumps(run_config)],
                    env=env, stdout=out, stderr=subprocess.STDOUT, check=False,
                )
            if done.returncode != 0:
                print("\n".join(log.read_text(errors="replace").splitlines()[-40:]))
                return done.returncode
    return subprocess.run([str(BIN / "fairstream"), "summary", *args.months], env=env, check=False).returncode


if __name__ == "__main__":
    if sys.argv[1:2] != ["demo"]:
        sys.exit("usage: python -m fairstream_pipeline.celery_workers demo MONTH... --work-dir DIR")
    sys.exit(demo(sys.argv[2:]))

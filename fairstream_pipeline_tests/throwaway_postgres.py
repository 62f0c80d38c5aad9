"""A PostgreSQL server of the test's own (initdb + pg_ctl in a temporary folder, on a free port), for
tests that stop and restart it. Never the shared server on 5432."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2
import pytest

from fairstream_pipeline_tests.smtp_server import free_port


def _bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        pytest.fail(f"{name} not found: the PostgreSQL server binaries are needed for the restart tests", pytrace=False)
    return found


class ThrowawayPostgres:
    """``start``, ``stop`` and ``restart_after`` a private server; ``url`` reaches its ``postgres`` database."""

    def __init__(self, base: Path):
        self.base = base
        self.data = base / "data"
        self.sockets = base / "sockets"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        # initdb and the server refuse to run as root: run them as the postgres user then.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, text=True, timeout=120)

    def init(self) -> "ThrowawayPostgres":
        self.base.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if self.as_user:
            shutil.chown(self.base, "postgres")
            shutil.chown(self.sockets, "postgres")
        self._run(_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        return self.start()

    def start(self) -> "ThrowawayPostgres":
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.base / "server.log"),
                  "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        """A fast shutdown: every session is cut, as in a crash of the database host's service."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def reachable(self) -> bool:
        try:
            psycopg2.connect(self.url, connect_timeout=2).close()
            return True
        except psycopg2.OperationalError:
            return False

    def outage(self, seconds: float) -> None:
        """Stop the server, keep it down ``seconds``, start it again."""
        self.stop()
        time.sleep(seconds)
        self.start()

    def destroy(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def throwaway_postgres():
    # Not under pytest's tmp_path: its folders are private to root, and the server runs as postgres.
    server = ThrowawayPostgres(Path(tempfile.mkdtemp(prefix="fairstream-pg-"))).init()
    yield server
    server.destroy()

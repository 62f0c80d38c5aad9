"""Real ``dagster-webserver`` / ``dagster-daemon`` processes for end-to-end tests, and a GraphQL client.

Each service runs in its own session (``start_new_session=True``, so also its own process group),
with SIGINT and SIGTERM reset to their defaults before ``exec``: Dagster copies the SIGINT
disposition onto SIGTERM, and a service started with SIGINT ignored could only be SIGKILLed,
leaving its code server and run workers behind. Stopping a service signals every process of its
session (code servers and run workers included) and checks that none is left.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fairstream_pipeline.celery_workers import session_members

REPO = Path(__file__).resolve().parents[1]
LOCATION, REPOSITORY = "fairstream_pipeline", "__repository__"
STARTUP_TIMEOUT = 90  # webserver + daemon loading the code location: ~10 s measured
RUN_FIELDS = "runId status jobName creationTime startTime endTime tags { key value }"
RUNS_QUERY = f"""
query Runs($filter: RunsFilter) {{
  runsOrError(filter: $filter) {{
    __typename
    ... on Runs {{ results {{ {RUN_FIELDS} }} }}
    ... on PythonError {{ message }}
  }}
}}"""

BIN = Path(sys.executable).parent
T = TypeVar("T")

# exec the command with default SIGINT/SIGTERM handling, whatever the parent ignores
_EXEC_WITH_DEFAULT_SIGNALS = (
    "import os, signal, sys; "
    "signal.signal(signal.SIGINT, signal.SIG_DFL); signal.signal(signal.SIGTERM, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def ignored_signals(pid: int) -> int:
    """The SigIgn mask of a process (bit n-1 set = signal n ignored)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no SigIgn line for pid {pid}")


class Service:
    """One long-running Dagster process, its output in ``log_path``."""

    def __init__(self, name: str, argv: list[str], log_path: Path):
        self.name, self.argv, self.log_path = name, argv, log_path
        self.process: subprocess.Popen | None = None

    def start(self, env: dict[str, str], cwd: Path = REPO) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _EXEC_WITH_DEFAULT_SIGNALS, *self.argv],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def tail(self, lines: int = 40) -> str:
        return f"--- last {lines} lines of {self.name} ({self.log_path}) ---\n{tail(self.log_path, lines)}"

    def stop(self, grace_seconds: float = 20.0) -> list[str]:
        """SIGTERM the whole session, wait, SIGKILL what is left. Returns notes on anything abnormal.

        Raises AssertionError if a process of the session survives SIGKILL.
        """
        if self.process is None:
            return []
        notes = []
        sid = self.process.pid  # start_new_session: session id == process group id == pid
        for pid in session_members(sid) or [sid]:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline:
            self.process.poll()  # reap the leader
            if not session_members(sid):
                break
            time.sleep(0.2)
        left = session_members(sid)
        if left:
            notes.append(
                f"{self.name}: {len(left)} process(es) still running {grace_seconds:.0f} s after SIGTERM: "
                f"{left}; sent SIGKILL"
            )
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and session_members(sid):
                self.process.poll()
                time.sleep(0.1)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        survivors = session_members(sid)
        assert not survivors, f"{self.name}: processes {survivors} of session {sid} survived SIGKILL"
        return notes


class GraphQLError(AssertionError):
    """A GraphQL request that came back with ``errors`` (or without data); the message holds the body."""


class GraphQL:
    """POST queries to a webserver's /graphql endpoint.

    Dagster answers some errors (an asset backfill's PythonError, for instance) with HTTP 500 and a
    valid GraphQL body: the body is parsed whatever the status, and the typed error is the caller's
    to check (``__typename``). Only ``errors`` / missing ``data`` raise.
    """

    def __init__(self, base_url: str):
        self.url = f"{base_url}/graphql"

    def __call__(self, query: str, variables: dict[str, Any] | None = None, timeout: float = 30.0) -> dict:
        request = urllib.request.Request(
            self.url,
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, text = response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode(errors="replace")
        try:
            payload = json.loads(text)
        except ValueError:
            raise GraphQLError(f"HTTP {status}, body is not JSON: {text[:3000]}") from None
        if payload.get("errors") or payload.get("data") is None:
            raise GraphQLError(f"HTTP {status}: {json.dumps(payload)[:6000]}")
        return payload["data"]


class DagsterServices:
    """A webserver and a daemon on one workspace and one DAGSTER_HOME."""

    def __init__(self, env: dict[str, str], log_dir: Path, port: int | None = None):
        self.env = env
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.graphql = GraphQL(self.base_url)
        self.webserver = Service(
            "dagster-webserver",
            [str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)],
            log_dir / "webserver.log",
        )
        self.daemon = Service(
            "dagster-daemon", [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], log_dir / "daemon.log"
        )
        self.services = [self.webserver, self.daemon]

    def start(self, ready: Callable[[], None] = lambda: None) -> None:
        """Start the webserver, call ``ready`` (wait until it answers), then start the daemon.

        One after the other: both create the instance's tables in an empty database on start-up, and
        side by side they race (dagster-postgres logs "Retrying failed database creation").
        """
        self.webserver.start(self.env)
        ready()
        self.daemon.start(self.env)

    def logs(self, lines: int = 40) -> str:
        return "\n".join(s.tail(lines) for s in self.services)

    def assert_running(self) -> None:
        for service in self.services:
            code = service.exit_code()
            assert code is None, f"{service.name} exited with code {code}\n{self.logs(80)}"

    def wait_for(
        self,
        what: str,
        probe: Callable[[], T],
        timeout: float,
        interval: float = 1.0,
        tolerate: tuple[type[BaseException], ...] = (),
    ) -> T:
        """Call ``probe`` until it returns something truthy; fail after ``timeout`` seconds with the logs.

        ``tolerate``: exceptions that mean "not yet" (connection refused while starting up).
        """
        started, last = time.monotonic(), None
        while True:
            self.assert_running()
            try:
                last = probe()
                if last:
                    return last
            except tolerate as exc:
                last = exc
            if time.monotonic() - started > timeout:
                raise AssertionError(
                    f"Timed out after {timeout:.0f} s waiting for {what}; last observation: {last!r}\n{self.logs()}"
                )
            time.sleep(interval)

    def stop(self) -> list[str]:
        """Stop the daemon first (no new runs), then the webserver. Returns notes on abnormal stops."""
        notes, failures = [], []
        for service in (self.daemon, self.webserver):
            try:
                notes += service.stop()
            except AssertionError as exc:
                failures.append(str(exc))
        assert not failures, "; ".join(failures)
        return notes


def wait_for_graphql(services: DagsterServices) -> None:
    services.wait_for(
        "the webserver to answer { version }",
        lambda: services.graphql("{ version }", timeout=5)["version"],
        STARTUP_TIMEOUT,
        tolerate=(OSError, GraphQLError),
    )


def wait_until_loaded(services: DagsterServices) -> None:
    """The code location is LOADED in the webserver, and the daemons we rely on are heartbeating."""
    gql = services.graphql

    def location_loaded():
        entry = gql(
            """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
                 locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
        )["workspaceOrError"]["locationEntries"]
        errors = [e for e in entry if (e["locationOrLoadError"] or {}).get("__typename") == "PythonError"]
        assert not errors, f"code location failed to load: {errors}\n{services.logs()}"
        return [e["name"] for e in entry if e["loadStatus"] == "LOADED"]

    assert services.wait_for("the code location to load", location_loaded, STARTUP_TIMEOUT) == [LOCATION]
    repositories = gql("{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }")
    assert [(r["location"]["name"], r["name"]) for r in repositories["repositoriesOrError"]["nodes"]] == [
        (LOCATION, REPOSITORY)
    ]

    def daemons_healthy():
        statuses = gql("{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }")
        healthy = {d["daemonType"] for d in statuses["instance"]["daemonHealth"]["allDaemonStatuses"] if d["healthy"]}
        return {"SENSOR", "BACKFILL", "QUEUED_RUN_COORDINATOR"} <= healthy

    services.wait_for("the sensor, backfill and run-queue daemons to heartbeat", daemons_healthy, STARTUP_TIMEOUT)

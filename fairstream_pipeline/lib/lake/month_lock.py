"""One run per month: a lock on the month, held by the run that computes it.

Two kinds, with the same behaviour:

- :class:`PostgresMonthLocks` (the Dagster instance is on PostgreSQL): session advisory locks on
  connections the run's processes keep open. The connection's ``application_name`` names the
  holding run, so a second run can say who holds the month. PostgreSQL releases the lock when the
  holder's connection ends, so a dead process never keeps a month locked. The steps of one run on
  several processes (Celery workers) share the month.
- :class:`FileMonthLocks` (the embedded instance): ``<warehouse>/_locks/month=YYYY-MM.json``,
  created exclusively, holding the run, the process and the host. A lock whose run has finished, or
  whose process is gone from this host, is stale: it is moved aside (one atomic rename, so two
  runs cannot both break it) and taken.

A second run of the month fails at once with :class:`MonthLocked`, naming the run that holds it.
The same run may take the lock again (each step process of a multi-process run does).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import psycopg2
import sqlalchemy as sa

APPLICATION_PREFIX = "fairstream-run:"


class MonthLocked(RuntimeError):
    """Another run holds the month."""

    def __init__(self, month: str, holder: "Holder | None", detail: str = ""):
        self.month, self.holder = month, holder
        who = (
            f"run {holder.run_id} (pid {holder.pid} on {holder.host}, since {holder.acquired_at})"
            if holder
            else "another run"
        )
        super().__init__(
            f"{month} is being computed by {who}{detail}; this run stops. One run per month at a time: "
            f"wait for it to finish, or cancel it, then run the month again."
        )


@dataclass(frozen=True)
class Holder:
    run_id: str
    pid: int
    host: str
    acquired_at: str

    @classmethod
    def this_process(cls, run_id: str) -> "Holder":
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return cls(run_id, os.getpid(), socket.gethostname(), now)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FileLease:
    def __init__(self, path: Path, holder: Holder):
        self.path, self.holder = path, holder

    def release(self) -> None:
        """Remove the lock file if it is still this process's."""
        try:
            current = Holder(**json.loads(self.path.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return
        if (current.run_id, current.pid) == (self.holder.run_id, self.holder.pid):
            self.path.unlink(missing_ok=True)


class FileMonthLocks:
    """Lock files in the lake, for the embedded instance."""

    def __init__(self, root: str | Path):
        self.folder = Path(root) / "_locks"

    def path(self, month: str) -> Path:
        return self.folder / f"month={month}.json"

    def acquire(self, month: str, run_id: str, run_finished: Callable[[str], bool]) -> FileLease:
        """Take the month for ``run_id``; ``run_finished(run_id)`` tells whether a holder's run ended."""
        self.folder.mkdir(parents=True, exist_ok=True)
        me, path = Holder.this_process(run_id), self.path(month)
        for _ in range(5):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._read(path)
                if holder is None:
                    time.sleep(0.05)  # being written by its creator
                    continue
                if holder.run_id == run_id:
                    path.write_text(json.dumps(asdict(me)))  # the same run, another step process
                    return FileLease(path, me)
                if not self._stale(holder, run_finished):
                    raise MonthLocked(month, holder)
                try:
                    os.rename(path, path.with_name(f"{path.name}.stale-{uuid.uuid4().hex[:8]}"))
                except FileNotFoundError:
                    pass  # another run broke it first; try again
                continue
            with os.fdopen(fd, "w") as out:
                out.write(json.dumps(asdict(me)))
            return FileLease(path, me)
        raise MonthLocked(month, self._read(path), " (the lock kept changing hands)")

    @staticmethod
    def _read(path: Path) -> Holder | None:
        try:
            return Holder(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            # Empty or half-written: its creator is writing it; old and still broken: stale.
            if time.time() - path.stat().st_mtime > 10:
                return Holder("(unreadable lock file)", 0, "", "")
            return None

    @staticmethod
    def _stale(holder: Holder, run_finished: Callable[[str], bool]) -> bool:
        if holder.pid == 0 or run_finished(holder.run_id):
            return True
        return holder.host == socket.gethostname() and not _process_alive(holder.pid)


def advisory_key(month: str) -> int:
    """A stable signed 64-bit key for the month (never Python's salted hash)."""
    digest = hashlib.sha256(f"fairstream month {month}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresLease:
    def __init__(self, connection):
        self.connection = connection

    def release(self) -> None:
        """Closing the session releases its advisory lock."""
        try:
            self.connection.close()
        except psycopg2.Error:
            pass


class PostgresMonthLocks:
    """Session advisory locks in the instance's PostgreSQL."""

    def __init__(self, url: str):
        parsed = sa.engine.make_url(url)
        self.params = {
            "host": parsed.host, "port": parsed.port or 5432, "user": parsed.username,
            "password": parsed.password, "dbname": parsed.database, "connect_timeout": 10,
        }

    def acquire(self, month: str, run_id: str) -> PostgresLease:
        """Hold the month for ``run_id`` in this process, or raise :class:`MonthLocked` naming its holder.

        Every process of the run (one per step with a multi-process or Celery executor, one for the
        whole run in process) holds the month's *hold* key in shared mode, on a session named after
        the run. Before taking it, a process takes the month's *gate* key exclusively for the few
        milliseconds it needs to check that no session of another run holds the month; so two runs
        can never both pass the check, while the steps of one run share the month. Advisory locks
        belong to a database: instances in other databases of the same server never interfere.
        """
        me = Holder.this_process(run_id)
        connection = psycopg2.connect(
            **self.params, application_name=f"{APPLICATION_PREFIX}{run_id}:{me.pid}:{me.host}"[:63]
        )
        connection.autocommit = True
        gate, hold = advisory_key(month), advisory_key(f"hold {month}")
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", (gate,))
                try:
                    cursor.execute(
                        """SELECT a.application_name, a.backend_start
                           FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                           WHERE l.locktype = 'advisory' AND l.granted
                             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                             AND l.classid = %s AND l.objid = %s AND l.objsubid = 1
                           ORDER BY a.backend_start""",
                        ((hold >> 32) & 0xFFFFFFFF, hold & 0xFFFFFFFF),
                    )
                    holders = [_holder_from_application_name(name, since) for name, since in cursor.fetchall()]
                    others = [h for h in holders if h is None or h.run_id != run_id]
                    if others:
                        raise MonthLocked(month, others[0])
                    cursor.execute("SELECT pg_advisory_lock_shared(%s)", (hold,))
                finally:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", (gate,))
        except BaseException:
            connection.close()
            raise
        return PostgresLease(connection)


def _holder_from_application_name(name: str, since) -> Holder | None:
    if not name.startswith(APPLICATION_PREFIX):
        return None
    run_id, _, rest = name.removeprefix(APPLICATION_PREFIX).partition(":")
    pid, _, rest = rest.partition(":")
    host = rest  # cut at 63 characters with the rest of the name
    return Holder(run_id, int(pid) if pid.isdigit() else 0, host, since.isoformat(timespec="seconds"))

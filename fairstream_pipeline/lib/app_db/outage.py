"""A transaction that rides out an outage of the application database: tried again while it is unreachable."""

from __future__ import annotations

import logging
import time
from typing import Callable

import psycopg2
import sqlalchemy as sa

from fairstream_pipeline.lib.app_db.store import transaction


class DatabaseUnavailable(RuntimeError):
    """The application database stayed unreachable longer than the caller waits for it."""


# A dropped or refused connection: the database restarts, or its host is unreachable for a while.
DB_DOWN_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError, sa.exc.OperationalError, sa.exc.InterfaceError)


def in_transaction(url: str, work: Callable, what: str, sleep: Callable[[float], object], log: logging.Logger,
                   outage_seconds: float):
    """``work(cursor)`` in one transaction; while the database is down, ``sleep`` and try again
    with backoff (0.5 s doubling to 5 s) for up to ``outage_seconds``, then raise
    :class:`DatabaseUnavailable`.

    ``work`` must be safe to repeat: a commit whose answer was lost to the outage runs it again.
    Every ``work`` the statement sender passes is: it is either a no-op the second time (renewing
    leases, recording an outcome it already recorded as the same owner) or harmless (one more
    rate-limit slot taken).
    """
    deadline, delay, warned = time.monotonic() + outage_seconds, 0.5, False
    while True:
        try:
            with transaction(url) as cursor:
                return work(cursor)
        except DB_DOWN_ERRORS as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if time.monotonic() >= deadline:
                raise DatabaseUnavailable(
                    f"the application database was unreachable for {outage_seconds:g} s while {what}: {first_line}"
                ) from exc
            if not warned:
                log.warning(f"the application database is unreachable while {what} ({first_line}); retrying")
                warned = True
            sleep(delay)
            delay = min(delay * 2, 5.0)

"""The real PostgreSQL the tests use. Unreachable is a failure, never a skip."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import psycopg2
import pytest


@dataclass(frozen=True)
class PostgresServer:
    host: str = os.environ.get("FAIRSTREAM_TEST_PG_HOST", "127.0.0.1")
    port: int = int(os.environ.get("FAIRSTREAM_TEST_PG_PORT", "5432"))
    user: str = os.environ.get("FAIRSTREAM_TEST_PG_USER", "postgres")
    password: str = os.environ.get("FAIRSTREAM_TEST_PG_PASSWORD", "unused-with-trust-auth")


PG = PostgresServer()


class _Session:
    def __init__(self, connection):
        self.connection = connection

    def execute(self, sql: str, params: tuple = ()):
        cursor = self.connection.cursor()
        cursor.execute(sql, params)
        return cursor


@contextmanager
def connect_admin(database: str = "postgres") -> Iterator[_Session]:
    """An autocommit connection to ``database``; fails the test if the server cannot be reached."""
    try:
        connection = psycopg2.connect(
            host=PG.host, port=PG.port, user=PG.user, password=PG.password, dbname=database, connect_timeout=5
        )
    except psycopg2.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG.host}:{PG.port} as {PG.user} ({exc}). "
            "Start it (.ci/run does) or point FAIRSTREAM_TEST_PG_* at one.",
            pytrace=False,
        )
    connection.autocommit = True
    try:
        yield _Session(connection)
    finally:
        connection.close()

"""How the payout engine runs its SQL, and what it asks of the connection's catalog.

Every stage runs its statements through :func:`run`, called as ``sql_script.run``: a profiler can
replace it to time each statement (``benchmarks.profile_shard``, ``benchmarks.profile_merge``).
"""

from __future__ import annotations

import duckdb


def run(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Run ``sql`` (one or several statements) to completion."""
    con.execute(sql).fetchall()


def is_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    (found,) = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = $1", [name]).fetchall()[0]
    return found > 0


def has_relation(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """A table or a view of that name."""
    (found,) = con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = $1", [name]).fetchall()[0]
    return found > 0 or is_table(con, name)

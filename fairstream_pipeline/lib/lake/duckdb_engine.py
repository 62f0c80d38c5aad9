"""Open DuckDB connections with FairStream's settings (UTC, bounded memory, spill directory)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb


@dataclass(frozen=True)
class DuckDBSettings:
    """How much of the machine DuckDB may use.

    ``memory_limit`` is a DuckDB size string such as ``4GB``. ``threads`` of ``None`` lets DuckDB
    use every core. When a query needs more than the limit, DuckDB spills to ``temp_directory``.
    """

    memory_limit: str = "4GB"
    threads: int | None = None
    temp_directory: str | None = None


def connect(settings: DuckDBSettings = DuckDBSettings()) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection that computes timestamps in UTC."""
    # Row order is never relied on (every output is written ORDER BY), so DuckDB may parallelise
    # and spill freely.
    config: dict[str, str | int | bool] = {
        "memory_limit": settings.memory_limit,
        "preserve_insertion_order": False,
    }
    if settings.threads:
        config["threads"] = settings.threads
    if settings.temp_directory:
        Path(settings.temp_directory).mkdir(parents=True, exist_ok=True)
        config["temp_directory"] = settings.temp_directory
    con = duckdb.connect(":memory:", config=config)
    con.execute("SET TimeZone = 'UTC'")
    return con


def sql_string(value: str | Path) -> str:
    """Quote a value as a SQL string literal (for file paths inside COPY and read_parquet)."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_list(values: list[str] | list[Path]) -> str:
    return "[" + ", ".join(sql_string(v) for v in values) + "]"


def read_parquet(source: str | Path | list, **options: bool) -> str:
    """``read_parquet(...)`` over a path, glob or list of paths, never inferring Hive columns.

    Our folders are named ``month=YYYY-MM`` and ``date=YYYY-MM-DD``; DuckDB would otherwise add
    them as columns.
    """
    target = sql_list(source) if isinstance(source, list) else sql_string(source)
    flags = "".join(f", {name} = {str(value).lower()}" for name, value in options.items())
    return f"read_parquet({target}, hive_partitioning = false{flags})"

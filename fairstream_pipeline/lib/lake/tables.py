"""Move DuckDB tables in and out of the lake, keeping pico-cent columns exact."""

from __future__ import annotations

from typing import Any

import duckdb

from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet, sql_string
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.payouts.engine import lake_columns, lake_view

PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd"


def attach_month(con: duckdb.DuckDBPyConnection, lake: Lake, month: str, views: dict[str, str]) -> None:
    """Create a view per ``{view_name: asset}`` over the asset's month in the lake."""
    for view, asset in views.items():
        con.execute(
            f"CREATE OR REPLACE VIEW {view} AS "
            f"SELECT {lake_view(asset)} FROM {read_parquet(lake.parquet_glob(asset, month))}"
        ).fetchall()


def publish_month(
    con: duckdb.DuckDBPyConnection, lake: Lake, month: str, tables: list[str], manifest: dict[str, Any]
) -> dict[str, int]:
    """Write each table to ``<table>/month=M`` in the lake, all published together; return row counts."""
    rows = {}
    with lake.write_partitions([(table, month) for table in tables]) as writers:
        for table, writer in zip(tables, writers):
            # ORDER BY ALL: the same rows give the same bytes, whatever order parallel work made them in.
            con.execute(
                f"COPY (SELECT {lake_columns(table)} FROM {table} ORDER BY ALL) "
                f"TO {sql_string(writer.file())} ({PARQUET_OPTIONS})"
            ).fetchall()
            rows[table] = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
            writer.manifest.update(rows=rows[table], **manifest)
    return rows

"""Move DuckDB tables in and out of the lake, keeping pico-cent columns exact.

Pico-cents are ``HUGEINT`` in DuckDB, which DuckDB would write to Parquet as a DOUBLE: the lake
stores them as ``DECIMAL(38,0)`` (:data:`PICO_COLUMNS`, :func:`lake_columns`) and reads them back
as ``HUGEINT`` (:func:`lake_view`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet, sql_string
from fairstream_pipeline.lib.lake.storage import Lake

PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd"
# Scratch files that only the month's own next step reads (a shard's results, for the merge):
# LZ4, faster to write and read than zstd.
SCRATCH_PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION lz4_raw"
PICO_DECIMAL = "DECIMAL(38,0)"
# The pico-cent columns of each table the payout engine writes (the others have none), and the
# ACPS weights in micro-streams, which are HUGEINT too.
PICO_COLUMNS = {
    "segment_pools": ("pool_pico", "residual_pico", "uc_unallocated_pico", "pr_unallocated_pico",
                      "acps_unallocated_pico", "acps_weight"),
    "user_streams": ("contribution_pico",),
    "track_earnings": ("uc_pico", "pr_pico", "acps_pico", "acps_weight"),
    "track_shares": ("direct_pico", "acps_weight", "acps_pro_weight"),
}


def lake_columns(table: str, present: set[str] | None = None) -> str:
    """The ``SELECT`` list that writes ``table`` to Parquet without losing a pico-cent (only the
    pico-cent columns among ``present``, the relation's columns, when given: a month written before
    a column was added lacks it)."""
    pico = [c for c in PICO_COLUMNS.get(table, ()) if present is None or c in present]
    if not pico:
        return "*"
    return f"* REPLACE ({', '.join(f'CAST({c} AS {PICO_DECIMAL}) AS {c}' for c in pico)})"


def lake_view(table: str, present: set[str] | None = None) -> str:
    """The ``SELECT`` list that reads ``table`` back from Parquet with pico-cents as ``HUGEINT``."""
    return lake_columns(table, present).replace(PICO_DECIMAL, "HUGEINT")


def columns_of(con: duckdb.DuckDBPyConnection, relation: str) -> set[str]:
    """The column names of a table, a view or a ``read_parquet(...)``."""
    return {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}


def attach_month(con: duckdb.DuckDBPyConnection, lake: Lake, month: str, views: dict[str, str]) -> None:
    """Create a view per ``{view_name: asset}`` over the asset's month in the lake."""
    for view, asset in views.items():
        source = read_parquet(lake.parquet_glob(asset, month))
        present = columns_of(con, source) if PICO_COLUMNS.get(asset) else None
        con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT {lake_view(asset, present)} FROM {source}").fetchall()


# A scratch file keeps a HUGEINT column as two 64-bit halves, ``<column>__hi`` (BIGINT, the
# floor of x / 2^64) and ``<column>__lo`` (UBIGINT, x mod 2^64): exact, and read back ten times
# faster than DECIMAL(38,0) (29M rows of three such columns: 0.5 s against 5.2 s).
HALF = 2**64
HIGH, LOW = "__hi", "__lo"


def ordered_columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str]]:
    """The (name, type) of each column of ``relation``, in order."""
    return [(row[0], row[1]) for row in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]


def scratch_columns(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """The ``SELECT`` list that writes ``table`` to a scratch file: HUGEINT columns as two halves."""
    return ", ".join(
        f"({name} >> 64)::BIGINT AS {name}{HIGH}, ({name} & {HALF - 1})::UBIGINT AS {name}{LOW}"
        if kind == "HUGEINT" else name
        for name, kind in ordered_columns(con, table)
    )


def scratch_view(con: duckdb.DuckDBPyConnection, relation: str) -> str:
    """The ``SELECT`` list that reads a scratch file's ``relation`` back, each pair of halves as
    the HUGEINT column it came from, in its place."""
    names = [name for name, _ in ordered_columns(con, relation)]
    select = []
    for name in names:
        if name.endswith(HIGH) and name.removesuffix(HIGH) + LOW in names:
            whole = name.removesuffix(HIGH)
            select.append(f"({name}::HUGEINT * {HALF}::HUGEINT + {whole}{LOW}::HUGEINT) AS {whole}")
        elif not (name.endswith(LOW) and name.removesuffix(LOW) + HIGH in names):
            select.append(name)
    return ", ".join(select)


def write_table(con: duckdb.DuckDBPyConnection, table: str, path: str | Path, scratch: bool = False) -> int:
    """Write ``table`` to the Parquet file ``path``; return its row count. ``scratch``: a file that
    only the month's next step reads, with :func:`scratch_view`, and whose row order does not
    matter to it (unsorted, LZ4, HUGEINTs in halves)."""
    if scratch:
        con.execute(
            f"COPY (SELECT {scratch_columns(con, table)} FROM {table}) TO {sql_string(path)} ({SCRATCH_PARQUET_OPTIONS})"
        ).fetchall()
        return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    # ORDER BY ALL: the same rows give the same bytes, whatever order parallel work made them in.
    present = columns_of(con, table) if PICO_COLUMNS.get(table) else None
    con.execute(
        f"COPY (SELECT {lake_columns(table, present)} FROM {table} ORDER BY ALL) TO {sql_string(path)} ({PARQUET_OPTIONS})"
    ).fetchall()
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def publish_month(
    con: duckdb.DuckDBPyConnection,
    lake: Lake,
    month: str,
    tables: list[str],
    manifest: dict[str, Any],
    private: frozenset[str] = frozenset(),
) -> dict[str, int]:
    """Write each table to ``<table>/month=M`` in the lake, all published together; return row counts.

    The tables named in ``private`` carry personal data (bank details): their files are mode 0600.
    """
    rows = {}
    with lake.write_partitions([(table, month) for table in tables]) as writers:
        for table, writer in zip(tables, writers):
            rows[table] = write_table(con, table, writer.file())
            writer.manifest.update(rows=rows[table], **manifest)
            writer.private = table in private
    return rows


@dataclass(frozen=True)
class Rows:
    """The first rows of a query, with its column names: what a preview in the UI shows."""

    columns: list[str]
    rows: list[tuple]


def first_rows(con: duckdb.DuckDBPyConnection, query: str, limit: int = 10) -> Rows:
    """The first ``limit`` rows of ``query``."""
    relation = con.sql(f"SELECT * FROM ({query}) LIMIT {int(limit)}")
    return Rows(relation.columns, relation.fetchall())


def file_rows(con: duckdb.DuckDBPyConnection, path: str | Path, limit: int = 10) -> Rows:
    """The first ``limit`` rows of the Parquet file ``path`` (a table just written, say)."""
    return first_rows(con, f"SELECT * FROM {read_parquet(path)}", limit)

"""Shared helpers for what the assets show in the Dagster UI, and how contract errors surface."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import dagster as dg
import duckdb

from fairstream_pipeline.lib.landing_zone import LandingZoneError

OWNERS = ["team:royalties"]
LAKE_KINDS = {"duckdb", "parquet"}


def lake_out(description: str, code_version: str) -> dg.AssetOut:
    """An output of a graph asset that lives in the lake (its steps pass nothing but paths)."""
    return dg.AssetOut(
        description=description, owners=OWNERS, kinds=LAKE_KINDS, code_version=code_version, dagster_type=dg.Nothing
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def preview(con: duckdb.DuckDBPyConnection, query: str, limit: int = 10) -> dg.MetadataValue:
    """A Markdown table of the first ``limit`` rows of ``query``."""
    relation = con.sql(f"SELECT * FROM ({query}) LIMIT {limit}")
    return dg.MetadataValue.md(markdown_table(relation.columns, relation.fetchall()))


@contextmanager
def contract_failures() -> Iterator[None]:
    """Turn a landing-zone contract error into a Dagster failure that is not retried.

    Bad data does not heal by retrying: the message names the file and the problem so that the
    delivery can be fixed at the source.
    """
    try:
        yield
    except LandingZoneError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc

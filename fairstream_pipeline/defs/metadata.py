"""Shared helpers for what the assets show in the Dagster UI, and how contract errors surface."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import dagster as dg
import duckdb

from fairstream_pipeline.lib.ingestion.landing_zone import LandingZoneError
from fairstream_pipeline.lib.lake.columns import partition_columns
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.lake.tables import Rows
from fairstream_pipeline.lib.markdown import (
    markdown_table as markdown_table,  # re-exported for the domains
)


def lake_metadata(lake: Lake, asset: str, month: str) -> dict[str, dg.MetadataValue]:
    """The columns of an asset's month as its Parquet files hold them (the UI's column schema),
    and the folder of those files (this materialization's version in the lake)."""
    with duckdb.connect() as con:  # reads the files' footers only
        columns = partition_columns(con, lake, asset, month)
    return {
        "dagster/column_schema": dg.MetadataValue.table_schema(
            dg.TableSchema(columns=[dg.TableColumn(name, kind, description=text or None) for name, kind, text in columns])
        ),
        "parquet": dg.MetadataValue.path(str(lake.partition_dir(asset, month))),
    }


def plottable(value: float | None) -> dg.MetadataValue:
    """A percentage or a number of points as a number the UI plots across months (``null`` when
    undefined, e.g. a share of nothing)."""
    return dg.MetadataValue.null() if value is None else dg.MetadataValue.float(value)


def preview(rows: Rows) -> dg.MetadataValue:
    """The first rows of a table (as a ``lib`` function read them) as a Markdown table."""
    return dg.MetadataValue.md(markdown_table(rows.columns, rows.rows))


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

"""The sample month's landing-zone files: Parquet written atomically, with fixed options so that the
same tables give the same bytes; a re-run first removes the month's markers and stale files."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fairstream_pipeline.lib.ingestion.landing_zone import (
    LANDING_AD_REVENUE,
    LANDING_EVENTS,
    LANDING_PAYEES,
    LANDING_PAYMENT_DETAILS,
    LANDING_RIGHTS_SPLITS,
    LANDING_SUBSCRIPTIONS,
    LANDING_TRACKS,
    SUCCESS_MARKER,
)
from fairstream_pipeline.sample.catalog import Catalog
from fairstream_pipeline.sample.month_plan import MonthPlan
from fairstream_pipeline.sample.users import UserBase

PARQUET_OPTIONS = {
    "compression": "zstd",
    "compression_level": 1,
    "version": "2.6",
    "data_page_version": "1.0",
    "write_statistics": True,
    "row_group_size": 1_048_576,
}
EVENT_DICTIONARY_COLUMNS = ["user_id", "track_id", "source"]
FIRST_PART = "part-00000.parquet"


PERSONAL_DATA_MODE = 0o600  # files of personal data (bank details): readable by the owner only


def write_parquet(table: pa.Table, path: Path, mode: int | None = None, **extra) -> None:
    """Write ``table`` to a hidden temporary file, then rename it to ``path``. With ``mode`` the
    temporary file is created with that mode, so the data is never readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if mode is None:
        pq.write_table(table, tmp, **PARQUET_OPTIONS, **extra)
    else:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        os.fchmod(fd, mode)  # a stale temporary file keeps its mode on open
        with os.fdopen(fd, "wb") as sink:
            pq.write_table(table, sink, **PARQUET_OPTIONS, **extra)
    os.replace(tmp, path)


def _clear_data_files(folder: Path) -> None:
    if not folder.is_dir():
        return
    for p in sorted(folder.iterdir()):
        if p.is_file() and (
            p.name.endswith(".parquet") or p.name.endswith(".parquet.tmp") or p.name == SUCCESS_MARKER
        ):
            p.unlink()


def clear_month(out_dir: Path, month: str, dates: list[dt.date]) -> None:
    """Remove the month's ``_SUCCESS`` markers first (the month becomes incomplete), then its data files."""
    day_dirs = [LANDING_EVENTS.path(out_dir, d.isoformat()) for d in dates]
    for folder in day_dirs:
        marker = folder / SUCCESS_MARKER
        if marker.exists():
            marker.unlink()
    for folder in day_dirs + [LANDING_SUBSCRIPTIONS.path(out_dir, month), LANDING_AD_REVENUE.path(out_dir, month)]:
        _clear_data_files(folder)


def write_catalog(out_dir: Path, cat: Catalog) -> None:
    """The catalog's files; the payment details (personal data) mode 0600."""
    for table, data in ((LANDING_TRACKS, cat.tracks), (LANDING_RIGHTS_SPLITS, cat.splits), (LANDING_PAYEES, cat.payees)):
        write_parquet(data, table.path(out_dir))
    write_parquet(cat.payment_details.table, LANDING_PAYMENT_DETAILS.path(out_dir), mode=PERSONAL_DATA_MODE)


def write_month_tables(out_dir: Path, month: str, plan: MonthPlan, base: UserBase) -> None:
    """The month's subscriptions and ad revenue, one file each."""
    write_parquet(plan.subscriptions_table(base), LANDING_SUBSCRIPTIONS.path(out_dir, month) / FIRST_PART)
    write_parquet(plan.ad_revenue_table(base), LANDING_AD_REVENUE.path(out_dir, month) / FIRST_PART)


def write_day(out_dir: Path, day: dt.date, tables: Iterable[pa.Table]) -> None:
    """A day's event ``tables`` as ``part-00000.parquet``, ``part-00001.parquet`` ..., then its
    empty ``_SUCCESS`` marker."""
    folder = LANDING_EVENTS.path(out_dir, day.isoformat())
    folder.mkdir(parents=True, exist_ok=True)
    for k, table in enumerate(tables):
        write_parquet(table, folder / f"part-{k:05d}.parquet", use_dictionary=EVENT_DICTIONARY_COLUMNS)
    (folder / SUCCESS_MARKER).write_bytes(b"")

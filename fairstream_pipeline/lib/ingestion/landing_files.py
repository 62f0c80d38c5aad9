"""A landing file as the ingestion knows it: its footer's facts (:class:`DataFile`), its columns,
where a damaged body breaks, and the fingerprint of a set of files.

Checking a file against the contract is ``lib.ingestion.landing_zone``'s ``check_parquet_file``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq

from fairstream_pipeline.lib.lake.fingerprints import files_fingerprint


@dataclass(frozen=True)
class DataFile:
    """One Parquet file of the landing zone whose footer has been checked against the contract."""

    path: Path
    relative_path: str
    num_rows: int
    size_bytes: int
    mtime_ns: int
    folder_date: date | None = None


def file_columns(path: Path) -> frozenset[str]:
    """The column names of a Parquet file (its footer only)."""
    return frozenset(pq.read_schema(path).names)


def locate_corruption(files: list[DataFile]) -> str | None:
    """Read ``files`` in full, one row group at a time; describe the first part that cannot be read.

    Only called after a read failed: the footer check (``landing_zone.check_parquet_file``) cannot
    see a file whose body is damaged while its header and footer are intact. Returns None when every
    file reads, so that the caller keeps the original (not a contract) error.
    """
    for data_file in files:
        try:
            parquet = pq.ParquetFile(data_file.path)
        except Exception as exc:  # pyarrow raises several types for a bad file
            return f"{data_file.relative_path}: not a readable Parquet file ({exc})"
        first_row = 0
        for group in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            try:
                parquet.read_row_group(group)
            except Exception as exc:
                return (
                    f"{data_file.relative_path}: corrupt Parquet data in row group {group} of "
                    f"{parquet.num_row_groups} (rows {first_row:,} to {first_row + rows - 1:,}): {exc}"
                )
            first_row += rows
    return None


def fingerprint(files: list[DataFile]) -> str:
    """A short hash of the files' names, sizes and modification times: it changes when any file does."""
    ordered = sorted(files, key=lambda f: f.relative_path)
    return files_fingerprint((f.relative_path, f.size_bytes, f.mtime_ns) for f in ordered)

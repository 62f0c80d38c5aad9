"""The landing-zone contract: where each input lives, which columns it must have, and when a month is complete.

See ``docs/data-contract.md``. Everything here reads only directory listings and Parquet footers,
so it is cheap even for a 200-million-play month.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fairstream_pipeline.lib.months import days_of_month

SUCCESS_MARKER = "_SUCCESS"


class LandingZoneError(ValueError):
    """A delivery that breaks the contract. The message names the file, the row or key, and the problem."""


class MonthIncompleteError(LandingZoneError):
    """Some day of the month has no ``_SUCCESS`` marker yet: the collector has not finished."""

    def __init__(self, month: str, missing_days: list[date], total_days: int):
        self.month = month
        self.missing_days = missing_days
        shown = ", ".join(d.isoformat() for d in missing_days[:10])
        more = f" and {len(missing_days) - 10} more" if len(missing_days) > 10 else ""
        super().__init__(
            f"listening_events for {month} is incomplete: {len(missing_days)} of {total_days} days "
            f"have no {SUCCESS_MARKER} marker: {shown}{more}"
        )


# Logical column kinds of the contract, and the Arrow types each accepts.
STRING, INT64, TIMESTAMP = "string", "int64", "timestamp"

EVENT_COLUMNS = {
    "event_id": STRING,
    "user_id": STRING,
    "track_id": STRING,
    "played_at": TIMESTAMP,
    "ms_played": INT64,
}
SUBSCRIPTION_COLUMNS = {"user_id": STRING, "plan": STRING, "country": STRING, "net_cents": INT64}
AD_REVENUE_COLUMNS = {"country": STRING, "net_cents": INT64}
TRACK_COLUMNS = {"track_id": STRING, "title": STRING, "artist_name": STRING}
SPLIT_COLUMNS = {"track_id": STRING, "payee_id": STRING, "share_ppm": INT64}
PAYEE_COLUMNS = {"payee_id": STRING, "name": STRING, "email": STRING}


def _type_matches(kind: str, arrow_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if kind == STRING:
        return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or (
            pa.types.is_string_view(arrow_type)
        )
    if kind == INT64:
        # Any integer that fits in int64 without loss; uint64 could overflow.
        return pa.types.is_integer(arrow_type) and not pa.types.is_uint64(arrow_type)
    if kind == TIMESTAMP:
        return pa.types.is_timestamp(arrow_type)
    raise AssertionError(kind)


@dataclass(frozen=True)
class DataFile:
    """One Parquet file of the landing zone whose footer has been checked against the contract."""

    path: Path
    relative_path: str
    num_rows: int
    size_bytes: int
    mtime_ns: int
    folder_date: date | None = None


def check_parquet_file(path: Path, relative_path: str, columns: dict[str, str]) -> DataFile:
    """Read the footer of ``path`` and check the required columns and their types.

    Raises ``LandingZoneError`` naming the file for a corrupt file, a missing column or a wrong type.
    """
    try:
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
        num_rows = parquet.metadata.num_rows
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise LandingZoneError(f"{relative_path}: not a readable Parquet file ({exc})") from exc
    for name, kind in columns.items():
        index = schema.get_field_index(name)
        if index < 0:
            raise LandingZoneError(f"{relative_path}: missing required column '{name}'")
        arrow_type = schema.field(index).type
        if not _type_matches(kind, arrow_type):
            raise LandingZoneError(
                f"{relative_path}: column '{name}' has type {arrow_type}, expected {kind}"
            )
    stat = path.stat()
    return DataFile(path, relative_path, num_rows, stat.st_size, stat.st_mtime_ns)


def locate_corruption(files: list[DataFile]) -> str | None:
    """Read ``files`` in full, one row group at a time; describe the first part that cannot be read.

    Only called after a read failed: the footer check (:func:`check_parquet_file`) cannot see a file
    whose body is damaged while its header and footer are intact. Returns None when every file
    reads, so that the caller keeps the original (not a contract) error.
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


def _is_data_file(path: Path) -> bool:
    return path.is_file() and path.suffix == ".parquet" and not path.name.startswith(("_", "."))


def file_fingerprint(relative_path: str, size_bytes: int, mtime_ns: int) -> str:
    """A short hash of one file's name, size and modification time (the audit of a restatement)."""
    return hashlib.sha256(f"{relative_path}\0{size_bytes}\0{mtime_ns}\n".encode()).hexdigest()[:16]


def fingerprint(files: list[DataFile]) -> str:
    """A short hash of the files' names, sizes and modification times: it changes when any file does."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.relative_path):
        digest.update(f"{f.relative_path}\0{f.size_bytes}\0{f.mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


class LandingZone:
    """The landing zone rooted at ``root`` (``FAIRSTREAM_LANDING_DIR``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    # Listening events ----------------------------------------------------------------------

    def event_day_dir(self, day: date) -> Path:
        return self.root / "listening_events" / f"date={day.isoformat()}"

    def missing_success_days(self, month: str) -> list[date]:
        """The days of ``month`` whose folder has no ``_SUCCESS`` marker yet."""
        return [
            day
            for day in days_of_month(month)
            if not (self.event_day_dir(day) / SUCCESS_MARKER).is_file()
        ]

    def require_complete(self, month: str) -> None:
        missing = self.missing_success_days(month)
        if missing:
            raise MonthIncompleteError(month, missing, len(days_of_month(month)))

    def event_file_paths(self, month: str) -> list[tuple[date, Path]]:
        """Every event data file of the month, by day then name (no footer reads)."""
        found = []
        for day in days_of_month(month):
            folder = self.event_day_dir(day)
            if folder.is_dir():
                found.extend((day, p) for p in sorted(folder.iterdir()) if _is_data_file(p))
        return found

    def event_files(self, month: str) -> list[DataFile]:
        """Every event file of the month, checked against the contract."""
        checked = []
        for day, path in self.event_file_paths(month):
            data_file = check_parquet_file(path, self._relative(path), EVENT_COLUMNS)
            checked.append(
                DataFile(
                    data_file.path,
                    data_file.relative_path,
                    data_file.num_rows,
                    data_file.size_bytes,
                    data_file.mtime_ns,
                    folder_date=day,
                )
            )
        return checked

    def month_fingerprint(self, month: str) -> str:
        """A hash of the names, sizes and modification times of every file the month reads.

        Cheap (directory listings only): the landing-zone sensor computes it on every tick. The
        catalog is not part of it: a catalog change is picked up by the next run of any month.
        """
        paths = [path for _, path in self.event_file_paths(month)]
        for dataset in ("subscriptions", "ad_revenue"):
            folder = self.root / dataset / f"month={month}"
            if folder.is_dir():
                paths += sorted(p for p in folder.iterdir() if _is_data_file(p))
        stats = []
        for path in paths:
            stat = path.stat()
            stats.append(DataFile(path, self._relative(path), 0, stat.st_size, stat.st_mtime_ns))
        return fingerprint(stats)

    # Monthly revenue -------------------------------------------------------------------------

    def _monthly_files(self, dataset: str, month: str, columns: dict[str, str]) -> list[DataFile]:
        folder = self.root / dataset / f"month={month}"
        paths = sorted(p for p in folder.iterdir() if _is_data_file(p)) if folder.is_dir() else []
        if not paths:
            raise LandingZoneError(f"{dataset}/month={month}: no .parquet files")
        return [check_parquet_file(p, self._relative(p), columns) for p in paths]

    def subscription_files(self, month: str) -> list[DataFile]:
        return self._monthly_files("subscriptions", month, SUBSCRIPTION_COLUMNS)

    def ad_revenue_files(self, month: str) -> list[DataFile]:
        return self._monthly_files("ad_revenue", month, AD_REVENUE_COLUMNS)

    # Catalog -----------------------------------------------------------------------------------

    def catalog_file(self, name: str, columns: dict[str, str]) -> DataFile:
        path = self.root / "catalog" / f"{name}.parquet"
        if not path.is_file():
            raise LandingZoneError(f"catalog/{name}.parquet: file not found")
        return check_parquet_file(path, self._relative(path), columns)

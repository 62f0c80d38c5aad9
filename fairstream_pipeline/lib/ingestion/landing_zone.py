"""The landing-zone contract: where each input lives, which columns it must have, and when a month is complete.

``LANDING_TABLES`` is the contract's one definition (files, columns, types): the ingestion checks
against it and the sample generator and the tests' builders write from it. See
``docs/data-contract.md``. Everything here reads only directory listings and Parquet footers, so it
is cheap even for a 200-million-play month. A checked file (``DataFile``), and what the ingestion
reads of one beyond its footer, are in ``lib.ingestion.landing_files``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fairstream_pipeline.lib.ingestion.landing_files import DataFile, fingerprint
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


# Logical column kinds of the contract; each has a DuckDB type and the Arrow type our writers use.
STRING, INT64, TIMESTAMP = "string", "int64", "timestamp"
_KIND_TYPES = {
    STRING: ("VARCHAR", pa.string()),
    INT64: ("BIGINT", pa.int64()),
    TIMESTAMP: ("TIMESTAMPTZ", pa.timestamp("us", tz="UTC")),
}
CATALOG_DIR = "catalog"
_KEY_PATTERNS = {"date": "YYYY-MM-DD", "month": "YYYY-MM"}


@dataclass(frozen=True)
class Column:
    """One column of a landing table; ``nullable`` when the contract allows a null value in it,
    ``optional`` when a file may leave the column out (it then reads as null everywhere)."""

    name: str
    kind: str
    nullable: bool = False
    optional: bool = False

    @property
    def duckdb_type(self) -> str:
        return _KIND_TYPES[self.kind][0]

    @property
    def arrow_type(self) -> pa.DataType:
        return _KIND_TYPES[self.kind][1]


@dataclass(frozen=True)
class LandingTable:
    """One input of the landing zone: its files and its columns.

    ``partition`` is ``"date"`` or ``"month"`` for a dataset of one folder per key
    (``<name>/<partition>=<key>/*.parquet``), None for a single file ``catalog/<name>.parquet``.
    """

    name: str
    columns: tuple[Column, ...]
    partition: str | None = None

    @property
    def column_kinds(self) -> dict[str, str]:
        """``{column: kind}`` of the required columns: what :func:`check_parquet_file` requires."""
        return {c.name: c.kind for c in self.columns if not c.optional}

    @property
    def optional_kinds(self) -> dict[str, str]:
        """``{column: kind}`` of the optional columns: checked for their type when a file has them."""
        return {c.name: c.kind for c in self.columns if c.optional}

    @property
    def arrow_schema(self) -> pa.Schema:
        """The schema a writer of this table uses. Every field stays nullable (Parquet OPTIONAL):
        whether a null is allowed is the ingestion's rule, not the file's."""
        return pa.schema([pa.field(c.name, c.arrow_type) for c in self.columns])

    def typed_columns_sql(self, alias: str = "", present: frozenset[str] | set[str] | None = None) -> str:
        """Its columns for a DuckDB SELECT, each cast to its contract type unless already VARCHAR
        (``alias``: the relation's name, e.g. ``r``, for ``r.col``). An optional column that is not
        in ``present`` (the file's columns, :func:`file_columns`) reads as a typed null; without
        ``present`` only the required columns are selected."""
        prefix = f"{alias}." if alias else ""
        selected = []
        for c in self.columns:
            if c.optional and (present is None or c.name not in present):
                if present is not None:
                    selected.append(f"NULL::{c.duckdb_type} AS {c.name}")
            elif c.duckdb_type == "VARCHAR":
                selected.append(f"{prefix}{c.name}")
            else:
                selected.append(f"CAST({prefix}{c.name} AS {c.duckdb_type}) AS {c.name}")
        return ", ".join(selected)

    @property
    def location(self) -> str:
        """Where its files live, as ``docs/data-contract.md`` writes it."""
        if self.partition is None:
            return f"{CATALOG_DIR}/{self.name}.parquet"
        return f"{self.name}/{self.partition}={_KEY_PATTERNS[self.partition]}/*.parquet"

    def path(self, root: Path, key: str | None = None) -> Path:
        """The folder of partition ``key`` under ``root``, or the catalog file."""
        if self.partition is None:
            return Path(root) / CATALOG_DIR / f"{self.name}.parquet"
        return Path(root) / self.name / f"{self.partition}={key}"


LANDING_EVENTS = LandingTable(
    "listening_events",
    (
        Column("event_id", STRING),
        Column("user_id", STRING),
        Column("track_id", STRING),
        Column("played_at", TIMESTAMP),
        Column("ms_played", INT64),
        # ACPS v1: how the play started (``lib.payouts.rules.PLAY_SOURCES``); null or another value: not active.
        Column("source", STRING, nullable=True, optional=True),
    ),
    partition="date",
)
LANDING_SUBSCRIPTIONS = LandingTable(
    "subscriptions",
    (Column("user_id", STRING), Column("plan", STRING), Column("country", STRING), Column("net_cents", INT64)),
    partition="month",
)
LANDING_AD_REVENUE = LandingTable("ad_revenue", (Column("country", STRING), Column("net_cents", INT64)), partition="month")
LANDING_TRACKS = LandingTable(
    "tracks",
    (
        Column("track_id", STRING),
        Column("title", STRING),
        Column("artist_name", STRING),
        # ACPS v1: the primary artist (null: ``artist_name`` identifies the artist) and ``music``
        # (the default) or ``noise``; another value counts as music.
        Column("artist_id", STRING, nullable=True, optional=True),
        Column("content_type", STRING, nullable=True, optional=True),
    ),
)
LANDING_RIGHTS_SPLITS = LandingTable(
    "rights_splits", (Column("track_id", STRING), Column("payee_id", STRING), Column("share_ppm", INT64))
)
LANDING_PAYEES = LandingTable(
    "payees", (Column("payee_id", STRING), Column("name", STRING), Column("email", STRING, nullable=True))
)
#: Optional: the payees' bank accounts. Without the file FairStream does not manage payment details
#: (nobody is held, no payment batch); with it, a payee without a valid row is held (rules v3).
#: Personal data: the file is read, never logged, and every copy the pipeline writes is mode 0600.
LANDING_PAYMENT_DETAILS = LandingTable(
    "payment_details",
    (
        Column("payee_id", STRING),
        Column("iban", STRING),
        Column("bic", STRING, nullable=True),
        Column("account_holder", STRING, nullable=True),
    ),
)
#: Every input of the landing zone, the one definition of its contract.
LANDING_TABLES = (
    LANDING_EVENTS,
    LANDING_SUBSCRIPTIONS,
    LANDING_AD_REVENUE,
    LANDING_TRACKS,
    LANDING_RIGHTS_SPLITS,
    LANDING_PAYEES,
    LANDING_PAYMENT_DETAILS,
)

# The required columns of each input, by kind (what the ingestion checks each file's footer for).
EVENT_COLUMNS = LANDING_EVENTS.column_kinds
SUBSCRIPTION_COLUMNS = LANDING_SUBSCRIPTIONS.column_kinds
AD_REVENUE_COLUMNS = LANDING_AD_REVENUE.column_kinds
TRACK_COLUMNS = LANDING_TRACKS.column_kinds
SPLIT_COLUMNS = LANDING_RIGHTS_SPLITS.column_kinds
PAYEE_COLUMNS = LANDING_PAYEES.column_kinds
PAYMENT_DETAIL_COLUMNS = LANDING_PAYMENT_DETAILS.column_kinds


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


def check_parquet_file(
    path: Path, relative_path: str, columns: dict[str, str], optional: dict[str, str] | None = None
) -> DataFile:
    """Read the footer of ``path`` and check the required columns and their types, and the type of
    each ``optional`` column the file has.

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
    for name, kind in (optional or {}).items():
        index = schema.get_field_index(name)
        if index >= 0 and not _type_matches(kind, schema.field(index).type):
            raise LandingZoneError(
                f"{relative_path}: optional column '{name}' has type {schema.field(index).type}, expected {kind}"
            )
    stat = path.stat()
    return DataFile(path, relative_path, num_rows, stat.st_size, stat.st_mtime_ns)


def _is_data_file(path: Path) -> bool:
    return path.is_file() and path.suffix == ".parquet" and not path.name.startswith(("_", "."))


class LandingZone:
    """The landing zone rooted at ``root`` (``FAIRSTREAM_LANDING_DIR``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    # Listening events ----------------------------------------------------------------------

    def event_day_dir(self, day: date) -> Path:
        return LANDING_EVENTS.path(self.root, day.isoformat())

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
            data_file = check_parquet_file(path, self._relative(path), EVENT_COLUMNS, LANDING_EVENTS.optional_kinds)
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
        for table in (LANDING_SUBSCRIPTIONS, LANDING_AD_REVENUE):
            folder = table.path(self.root, month)
            if folder.is_dir():
                paths += sorted(p for p in folder.iterdir() if _is_data_file(p))
        stats = []
        for path in paths:
            stat = path.stat()
            stats.append(DataFile(path, self._relative(path), 0, stat.st_size, stat.st_mtime_ns))
        return fingerprint(stats)

    # Monthly revenue -------------------------------------------------------------------------

    def monthly_files(self, table: LandingTable, month: str) -> list[DataFile]:
        """The month's files of a monthly ``table``, checked against the contract; none is an error."""
        folder = table.path(self.root, month)
        paths = sorted(p for p in folder.iterdir() if _is_data_file(p)) if folder.is_dir() else []
        if not paths:
            raise LandingZoneError(f"{self._relative(folder)}: no .parquet files")
        return [check_parquet_file(p, self._relative(p), table.column_kinds) for p in paths]

    def subscription_files(self, month: str) -> list[DataFile]:
        return self.monthly_files(LANDING_SUBSCRIPTIONS, month)

    def ad_revenue_files(self, month: str) -> list[DataFile]:
        return self.monthly_files(LANDING_AD_REVENUE, month)

    # Catalog -----------------------------------------------------------------------------------

    def optional_catalog_file(self, name: str, columns: dict[str, str]) -> DataFile | None:
        """``catalog/<name>.parquet`` checked against the contract, or None when there is no such file."""
        path = self.root / CATALOG_DIR / f"{name}.parquet"
        return check_parquet_file(path, self._relative(path), columns) if path.is_file() else None

    def catalog_file(self, name: str, columns: dict[str, str], optional: dict[str, str] | None = None) -> DataFile:
        path = self.root / CATALOG_DIR / f"{name}.parquet"
        if not path.is_file():
            raise LandingZoneError(f"{CATALOG_DIR}/{name}.parquet: file not found")
        return check_parquet_file(path, self._relative(path), columns, optional)

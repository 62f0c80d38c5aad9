"""Validate a month's landing-zone files and turn them into clean tables, with DuckDB.

The monthly tables and the catalog (the listening events are ``lib.ingestion.plays``'s):

- :func:`ingest_monthly_table` checks a month's subscriptions (:data:`BILLED_USERS`) or free-tier
  ad revenue (:data:`AD_REVENUE`); a broken row is an error.
- :func:`ingest_catalog` loads the catalog's tracks, payees, rights splits and (optional) payment
  details, and
  :func:`snapshot_payee_directory` the month's payee directory from them.

Each function writes Parquet to the paths it is given and returns counts; it never writes
anything when it raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet, sql_string
from fairstream_pipeline.lib.ingestion.landing_zone import (
    LANDING_AD_REVENUE,
    LANDING_PAYEES,
    LANDING_PAYMENT_DETAILS,
    LANDING_RIGHTS_SPLITS,
    LANDING_SUBSCRIPTIONS,
    LANDING_TRACKS,
    PAYEE_COLUMNS,
    PAYMENT_DETAIL_COLUMNS,
    SPLIT_COLUMNS,
    TRACK_COLUMNS,
    LandingTable,
    LandingZone,
    LandingZoneError,
)
from fairstream_pipeline.lib.ingestion.landing_files import DataFile, locate_corruption
from fairstream_pipeline.lib.payouts.rules import SPECIAL_PAYEES

PARQUET_OPTIONS = "FORMAT parquet, COMPRESSION zstd"
# A file DuckDB cannot read is a delivery problem; anything else (out of memory, say) is not, and
# must stay retryable. DuckDB reports a damaged body with its base ``duckdb.Error``, so a failure of
# any other type is checked file by file (:func:`read_failure`) before it is called a contract error.
READ_ERRORS = (duckdb.IOException, duckdb.InvalidInputException, duckdb.ConversionException)
TRANSIENT_ERRORS = (duckdb.OutOfMemoryException, duckdb.InterruptException)


def read_failure(exc: duckdb.Error, files: list[DataFile], what: str) -> LandingZoneError | None:
    """The contract error behind a failed read of ``files``, or None when it is not the files' fault.

    A file that fails to read anywhere in its body is named, with the row group; a DuckDB read error
    on files that pyarrow reads in full still names the dataset.
    """
    if isinstance(exc, TRANSIENT_ERRORS):
        return None
    located = locate_corruption(files)
    if located:
        return LandingZoneError(f"{located} (DuckDB: {str(exc).strip().splitlines()[0]})")
    if isinstance(exc, READ_ERRORS):
        return LandingZoneError(f"{what}: cannot read the files ({exc})")
    return None


def copy_to_parquet(con: duckdb.DuckDBPyConnection, query: str, out_file: Path) -> None:
    """Write the rows of ``query`` to ``out_file`` (Parquet, zstd)."""
    con.execute(f"COPY ({query}) TO {sql_string(out_file)} ({PARQUET_OPTIONS})").fetchall()


def _register_files(con: duckdb.DuckDBPyConnection, table: str, files: list[DataFile]) -> None:
    """A temp table mapping each absolute path DuckDB reports to the landing-relative name and day."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {table} "
        "(filename VARCHAR, source_file VARCHAR, folder_date DATE)"
    )
    if files:
        con.executemany(
            f"INSERT INTO {table} VALUES (?, ?, ?)",
            [(str(f.path), f.relative_path, f.folder_date) for f in files],
        )


def _read(files: list[DataFile], files_table: str, columns: str) -> str:
    """A query over ``files`` with the contract ``columns`` plus where each row came from."""
    return (
        f"SELECT {columns}, f.source_file, r.file_row_number, f.folder_date FROM "
        + read_parquet([f.path for f in files], filename=True, file_row_number=True, union_by_name=True)
        + f" r JOIN {files_table} f ON r.filename = f.filename"
    )


def _load(con: duckdb.DuckDBPyConnection, table: str, query: str, files: list[DataFile], what: str) -> None:
    """Create temp ``table`` from ``query`` over ``files``; a read failure names the file, or the dataset."""
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {query}")
    except duckdb.Error as exc:
        error = read_failure(exc, files, what)
        if error is None:
            raise
        raise error from exc


def _first_problems(con: duckdb.DuckDBPyConnection, query: str, describe) -> None:
    """Raise a ``LandingZoneError`` for the first rows ``query`` returns, if any.

    ``query`` must return ``problem_count`` as its last column (a window count over all problems).
    """
    rows = con.execute(query).fetchall()
    if not rows:
        return
    total = rows[0][-1]
    message = describe(rows[0])
    if total > 1:
        message += f" ({total - 1} more problem{'s' if total > 2 else ''} of this kind)"
    raise LandingZoneError(message)


# The monthly tables: subscriptions and ad revenue -------------------------------------------

PLAN_TIER = "CASE WHEN plan = 'free' THEN 'free' ELSE 'paid' END"


@dataclass(frozen=True)
class MonthlyTable:
    """A table the landing zone delivers once a month (``landing``: ``<name>/month=M``): one row per
    ``key``, each with ``net_cents``, written to the lake asset ``asset``.

    ``problems`` are the ``WHEN ... THEN 'what is wrong'`` branches of a SQL ``CASE`` over a row; the
    first broken row, or the first key listed twice, fails the month naming its file and row.
    """

    asset: str
    landing: LandingTable
    key: str
    problems: str
    output: str  # the columns written to the lake
    tier: str  # a row's tier (free or paid), for the totals

    @property
    def folder(self) -> str:
        """The landing folder's name, also the temp table the rows are loaded into."""
        return self.landing.name

    @property
    def files_table(self) -> str:
        """The temp table of its files."""
        return f"{self.landing.name}_files"

    @property
    def columns(self) -> str:
        """The contract columns as read, from ``r``."""
        return self.landing.typed_columns_sql("r")

    def files(self, zone: LandingZone, month: str) -> list[DataFile]:
        """The month's files, checked against the contract."""
        return zone.monthly_files(self.landing, month)


BILLED_USERS = MonthlyTable(
    "billed_users",
    LANDING_SUBSCRIPTIONS,
    key="user_id",
    problems="""
                WHEN user_id IS NULL OR user_id = '' THEN 'user_id is null or empty'
                WHEN plan IS NULL OR plan = '' THEN 'plan is null or empty'
                WHEN country IS NULL THEN 'country is null'
                WHEN NOT regexp_full_match(country, '[A-Z]{2}')
                    THEN 'country ''' || country || ''' is not an ISO 3166-1 alpha-2 code'
                WHEN net_cents IS NULL THEN 'net_cents is null'
                WHEN net_cents < 0 THEN 'has negative net_cents ' || net_cents
                WHEN plan = 'free' AND net_cents <> 0
                    THEN 'is on the free plan but has net_cents ' || net_cents || ' (expected 0)'""",
    output=f"user_id, plan, {PLAN_TIER} AS tier, country, net_cents",
    tier=PLAN_TIER,
)
AD_REVENUE = MonthlyTable(
    "ad_revenue",
    LANDING_AD_REVENUE,
    key="country",
    problems="""
                WHEN country IS NULL THEN 'country is null'
                WHEN NOT regexp_full_match(country, '[A-Z]{2}')
                    THEN 'is not an ISO 3166-1 alpha-2 code'
                WHEN net_cents IS NULL THEN 'has a null net_cents'
                WHEN net_cents < 0 THEN 'has negative net_cents ' || net_cents""",
    output="country, net_cents",
    tier="'free'",  # ad revenue pays the free tier
)


@dataclass(frozen=True)
class MonthlyTableResult:
    rows: int
    net_cents: int
    rows_by_tier: dict[str, int]
    net_cents_by_tier: dict[str, int]
    files: list[DataFile]


def ingest_monthly_table(
    con: duckdb.DuckDBPyConnection, zone: LandingZone, month: str, out_file: Path, table: MonthlyTable
) -> MonthlyTableResult:
    """Validate ``<folder>/month=M`` and write one row per key to ``out_file``, ordered by key."""
    files = table.files(zone, month)
    where = f"{table.folder}/month={month}"
    _register_files(con, table.files_table, files)
    _load(con, table.folder, _read(files, table.files_table, table.columns), files, where)
    _first_problems(
        con,
        f"""
        SELECT source_file, file_row_number, {table.key}, problem, count(*) OVER () FROM (
            SELECT *, CASE{table.problems}
            END AS problem FROM {table.folder})
        WHERE problem IS NOT NULL ORDER BY source_file, file_row_number LIMIT 1
        """,
        lambda r: f"{r[0]} row {r[1]}: " + (f"{table.key} '{r[2]}' {r[3]}" if r[2] else r[3]),
    )
    _first_problems(
        con,
        f"""
        SELECT {table.key}, count(*), list(source_file ORDER BY source_file, file_row_number),
               list(file_row_number ORDER BY source_file, file_row_number), count(*) OVER ()
        FROM {table.folder} GROUP BY {table.key} HAVING count(*) > 1 ORDER BY {table.key} LIMIT 1
        """,
        lambda r: _duplicate_message(where, table.key, r[0], r[1], r[2], r[3]),
    )
    copy_to_parquet(con, f"SELECT {table.output} FROM {table.folder} ORDER BY {table.key}", out_file)
    by_tier = con.execute(  # (HAVING: a constant tier would make an empty table one group)
        f"""SELECT {table.tier} AS tier, count(*), sum(net_cents) FROM {table.folder}
            GROUP BY ALL HAVING count(*) > 0 ORDER BY tier"""
    ).fetchall()
    return MonthlyTableResult(
        rows=sum(n for _, n, _ in by_tier),
        net_cents=sum(int(cents) for _, _, cents in by_tier),
        rows_by_tier={tier: n for tier, n, _ in by_tier},
        net_cents_by_tier={tier: int(cents) for tier, _, cents in by_tier},
        files=files,
    )


def _duplicate_message(
    folder: str, key_name: str, key: str, copies: int, sources: list[str], rows: list[int]
) -> str:
    if len(set(sources)) == 1:
        where = ", ".join(str(r) for r in rows)
        return f"{sources[0]}: {key_name} '{key}' is listed {copies} times (rows {where})"
    where = ", ".join(f"{s.rsplit('/', 1)[-1]} row {r}" for s, r in zip(sources, rows))
    return f"{folder}: {key_name} '{key}' is listed {copies} times ({where})"


# Catalog ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Catalog:
    tracks: int
    split_rows: int
    payees: int
    files: list[DataFile]
    payment_details: int | None = None  # rows of catalog/payment_details.parquet; None: no such file


def ingest_catalog(con: duckdb.DuckDBPyConnection, zone: LandingZone) -> Catalog:
    """Load ``catalog/*.parquet`` into temp tables ``catalog_tracks``, ``split_rows``, ``catalog_payees``
    and, when the optional ``payment_details.parquet`` exists, ``catalog_payment_details``.

    A track or payee listed twice, or a row without its id, is an error. Broken *shares* are not:
    they send the track's money to suspense (``docs/payout-rules.md``, rule 7); nor are broken bank
    details: they hold the payee (rule 10, ``lib.payments.details``).
    """
    details = zone.optional_catalog_file("payment_details", PAYMENT_DETAIL_COLUMNS)
    sources = {
        "catalog_tracks": (zone.catalog_file("tracks", TRACK_COLUMNS), LANDING_TRACKS.typed_columns_sql("r"), "track_id"),
        "split_rows": (
            zone.catalog_file("rights_splits", SPLIT_COLUMNS),
            LANDING_RIGHTS_SPLITS.typed_columns_sql("r"),
            None,
        ),
        "catalog_payees": (zone.catalog_file("payees", PAYEE_COLUMNS), LANDING_PAYEES.typed_columns_sql("r"), "payee_id"),
    }
    if details is not None:
        sources["catalog_payment_details"] = (details, LANDING_PAYMENT_DETAILS.typed_columns_sql("r"), "payee_id")
    for table, (data_file, columns, _) in sources.items():
        _register_files(con, f"{table}_files", [data_file])
        _load(con, table, _read([data_file], f"{table}_files", columns), [data_file], data_file.relative_path)
    for table, (data_file, _, key) in sources.items():
        id_column = key or "track_id"
        _first_problems(
            con,
            f"""SELECT source_file, file_row_number, count(*) OVER () FROM {table}
                WHERE {id_column} IS NULL OR {id_column} = '' ORDER BY file_row_number LIMIT 1""",
            lambda r, c=id_column: f"{r[0]} row {r[1]}: {c} is null or empty",
        )
        if key:
            _first_problems(
                con,
                f"""SELECT {key}, count(*), list(source_file ORDER BY file_row_number),
                           list(file_row_number ORDER BY file_row_number), count(*) OVER ()
                    FROM {table} GROUP BY {key} HAVING count(*) > 1 ORDER BY {key} LIMIT 1""",
                lambda r, k=key, f=data_file: _duplicate_message(f.relative_path, k, r[0], r[1], r[2], r[3]),
            )
    reserved = ", ".join(f"'{p}'" for p in SPECIAL_PAYEES)
    _first_problems(
        con,
        f"""SELECT source_file, file_row_number, payee_id, count(*) OVER () FROM (
                SELECT source_file, file_row_number, payee_id FROM catalog_payees
                UNION ALL SELECT source_file, file_row_number, payee_id FROM split_rows)
            WHERE payee_id IN ({reserved}) ORDER BY source_file, file_row_number LIMIT 1""",
        lambda r: f"{r[0]} row {r[1]}: payee_id '{r[2]}' is reserved for the pipeline",
    )
    counts = {
        table: con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] for table in sources
    }
    return Catalog(
        tracks=counts["catalog_tracks"],
        split_rows=counts["split_rows"],
        payees=counts["catalog_payees"],
        files=[data_file for data_file, _, _ in sources.values()],
        payment_details=counts.get("catalog_payment_details"),
    )


def snapshot_payee_directory(con: duckdb.DuckDBPyConnection) -> None:
    """``payee_directory`` (``payee_id``, ``name``, ``email``): the loaded ``catalog_payees``, by id."""
    con.execute(
        "CREATE TEMP TABLE payee_directory AS SELECT payee_id, name, email FROM catalog_payees ORDER BY payee_id"
    ).fetchall()

"""Validate a month's landing-zone files and turn them into clean tables, with DuckDB.

Three steps, one per ingestion asset:

- :func:`ingest_billed_users` checks the month's subscriptions; a broken row is an error.
- :func:`ingest_ad_revenue` checks the month's free-tier ad revenue; a broken row is an error.
- :func:`ingest_plays` splits the month's listening events into clean, de-duplicated plays and a
  quarantine with one reason per row (``docs/data-contract.md``), and proves every row is accounted for.

Each function writes Parquet to the paths it is given and returns counts; it never writes
anything when it raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from fairstream_pipeline.lib.duckdb_engine import read_parquet, sql_string
from fairstream_pipeline.lib.faults import fault_point
from fairstream_pipeline.lib.landing_zone import (
    PAYEE_COLUMNS,
    SPLIT_COLUMNS,
    TRACK_COLUMNS,
    DataFile,
    LandingZone,
    LandingZoneError,
    locate_corruption,
)
from fairstream_pipeline.lib.payout_rules import SPECIAL_PAYEES

QUARANTINE_REASONS = ("invalid_row", "outside_partition", "conflicting_duplicate", "unknown_user")

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


def _copy(con: duckdb.DuckDBPyConnection, query: str, out_file: Path) -> None:
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


# Subscriptions ------------------------------------------------------------------------------

@dataclass(frozen=True)
class BilledUsers:
    rows: int
    users_by_tier: dict[str, int]
    net_cents_by_tier: dict[str, int]
    files: list[DataFile]


def ingest_billed_users(
    con: duckdb.DuckDBPyConnection, zone: LandingZone, month: str, out_file: Path
) -> BilledUsers:
    """Validate ``subscriptions/month=M`` and write one row per billed user with its tier."""
    files = zone.subscription_files(month)
    _register_files(con, "subscription_files", files)
    _load(
        con,
        "subscriptions",
        _read(
            files,
            "subscription_files",
            "r.user_id, r.plan, r.country, CAST(r.net_cents AS BIGINT) AS net_cents",
        ),
        files,
        f"subscriptions/month={month}",
    )
    _first_problems(
        con,
        """
        SELECT source_file, file_row_number, user_id, problem, count(*) OVER () FROM (
            SELECT *, CASE
                WHEN user_id IS NULL OR user_id = '' THEN 'user_id is null or empty'
                WHEN plan IS NULL OR plan = '' THEN 'plan is null or empty'
                WHEN country IS NULL THEN 'country is null'
                WHEN NOT regexp_full_match(country, '[A-Z]{2}')
                    THEN 'country ''' || country || ''' is not an ISO 3166-1 alpha-2 code'
                WHEN net_cents IS NULL THEN 'net_cents is null'
                WHEN net_cents < 0 THEN 'has negative net_cents ' || net_cents
                WHEN plan = 'free' AND net_cents <> 0
                    THEN 'is on the free plan but has net_cents ' || net_cents || ' (expected 0)'
            END AS problem FROM subscriptions)
        WHERE problem IS NOT NULL ORDER BY source_file, file_row_number LIMIT 1
        """,
        lambda r: f"{r[0]} row {r[1]}: "
        + (f"user_id '{r[2]}' {r[3]}" if r[2] else r[3]),
    )
    _first_problems(
        con,
        """
        SELECT user_id, count(*) AS copies,
               list(source_file ORDER BY source_file, file_row_number),
               list(file_row_number ORDER BY source_file, file_row_number),
               count(*) OVER ()
        FROM subscriptions GROUP BY user_id HAVING count(*) > 1 ORDER BY user_id LIMIT 1
        """,
        lambda r: _duplicate_message(f"subscriptions/month={month}", "user_id", r[0], r[1], r[2], r[3]),
    )
    _copy(
        con,
        """
        SELECT user_id, plan, CASE WHEN plan = 'free' THEN 'free' ELSE 'paid' END AS tier,
               country, net_cents
        FROM subscriptions ORDER BY user_id
        """,
        out_file,
    )
    by_tier = con.execute(
        """SELECT CASE WHEN plan = 'free' THEN 'free' ELSE 'paid' END AS tier, count(*), sum(net_cents)
           FROM subscriptions GROUP BY ALL ORDER BY tier"""
    ).fetchall()
    return BilledUsers(
        rows=sum(n for _, n, _ in by_tier),
        users_by_tier={tier: n for tier, n, _ in by_tier},
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


# Ad revenue ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class AdRevenue:
    countries: int
    net_cents: int
    files: list[DataFile]


def ingest_ad_revenue(
    con: duckdb.DuckDBPyConnection, zone: LandingZone, month: str, out_file: Path
) -> AdRevenue:
    """Validate ``ad_revenue/month=M`` and write one row per country."""
    files = zone.ad_revenue_files(month)
    _register_files(con, "ad_revenue_files", files)
    _load(
        con,
        "ad_revenue",
        _read(files, "ad_revenue_files", "r.country, CAST(r.net_cents AS BIGINT) AS net_cents"),
        files,
        f"ad_revenue/month={month}",
    )
    _first_problems(
        con,
        """
        SELECT source_file, file_row_number, country, problem, count(*) OVER () FROM (
            SELECT *, CASE
                WHEN country IS NULL THEN 'country is null'
                WHEN NOT regexp_full_match(country, '[A-Z]{2}')
                    THEN 'is not an ISO 3166-1 alpha-2 code'
                WHEN net_cents IS NULL THEN 'has a null net_cents'
                WHEN net_cents < 0 THEN 'has negative net_cents ' || net_cents
            END AS problem FROM ad_revenue)
        WHERE problem IS NOT NULL ORDER BY source_file, file_row_number LIMIT 1
        """,
        lambda r: f"{r[0]} row {r[1]}: " + (f"country '{r[2]}' {r[3]}" if r[2] else r[3]),
    )
    _first_problems(
        con,
        """
        SELECT country, count(*), list(source_file ORDER BY source_file, file_row_number),
               list(file_row_number ORDER BY source_file, file_row_number), count(*) OVER ()
        FROM ad_revenue GROUP BY country HAVING count(*) > 1 ORDER BY country LIMIT 1
        """,
        lambda r: _duplicate_message(f"ad_revenue/month={month}", "country", r[0], r[1], r[2], r[3]),
    )
    _copy(con, "SELECT country, net_cents FROM ad_revenue ORDER BY country", out_file)
    countries, cents = con.execute("SELECT count(*), coalesce(sum(net_cents), 0) FROM ad_revenue").fetchall()[0]
    return AdRevenue(countries=countries, net_cents=int(cents), files=files)


# Listening events ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PlayIngestion:
    """The accounting of one month of listening events."""

    rows_read: int
    clean_plays: int
    duplicates_dropped: int
    quarantined: dict[str, int] = field(default_factory=dict)
    files: list[DataFile] = field(default_factory=list)

    @property
    def quarantined_total(self) -> int:
        return sum(self.quarantined.values())


def indexed_rows(files: list[tuple[int, DataFile]], columns: str) -> str:
    """The rows of ``files`` with ``file_index``, ``folder_date`` and ``file_row_number``.

    One ``read_parquet`` per file, glued with ``UNION ALL``: the file's index and day are
    constants, which is much cheaper than joining every row on its file name.
    """
    return " UNION ALL ".join(
        f"SELECT {index} AS file_index, DATE '{f.folder_date.isoformat()}' AS folder_date, "
        f"file_row_number, {columns} FROM {read_parquet(str(f.path), file_row_number=True)}"
        for index, f in files
    )


EVENT_COLUMNS_SQL = (
    "event_id, user_id, track_id, CAST(played_at AS TIMESTAMPTZ) AS played_at, "
    "CAST(ms_played AS BIGINT) AS ms_played"
)
ROW_REASON_SQL = """CASE
    WHEN event_id IS NULL OR event_id = '' OR user_id IS NULL OR user_id = ''
         OR track_id IS NULL OR track_id = '' OR played_at IS NULL
         OR ms_played IS NULL OR ms_played < 0 THEN 'invalid_row'
    WHEN CAST(played_at AS DATE) <> folder_date THEN 'outside_partition'
END"""


def _run_day(con: duckdb.DuckDBPyConnection, day, day_files: list[tuple[int, DataFile]]) -> None:
    """The two passes over one day's files: repeated event-id hashes, then the rows to decide on."""
    con.execute("DELETE FROM repeated_ids").fetchall()
    con.execute(
        f"""INSERT INTO repeated_ids
            SELECT DATE '{day.isoformat()}', hash(event_id) AS h
            FROM ({indexed_rows(day_files, 'event_id')})
            GROUP BY h HAVING count(*) > 1"""
    ).fetchall()
    con.execute(
        f"""
        INSERT INTO suspects
        SELECT r.file_index, r.folder_date, r.file_row_number, r.event_id, r.user_id, r.track_id,
               r.played_at, r.ms_played, r.row_reason, b.user_id IS NULL
        FROM (
            SELECT *, {ROW_REASON_SQL} AS row_reason, hash(event_id) AS h
            FROM ({indexed_rows(day_files, EVENT_COLUMNS_SQL)})
        ) r
        LEFT JOIN billed b ON b.user_id = r.user_id
        LEFT JOIN repeated_ids d ON d.h = r.h
        WHERE d.h IS NOT NULL OR b.user_id IS NULL OR r.row_reason IS NOT NULL
        """
    ).fetchall()


def ingest_plays(
    con: duckdb.DuckDBPyConnection,
    zone: LandingZone,
    month: str,
    billed_users_glob: str,
    files_file: Path,
    removed_file: Path,
    quarantine_file: Path,
) -> PlayIngestion:
    """Classify every event row of the month; write the clean-plays files and removals, and the quarantine.

    Reasons are applied in the order of ``QUARANTINE_REASONS``; exact duplicates (within a UTC day:
    copies of a play share ``played_at``) are dropped and counted. Two passes over the files:

    1. the hashes of ``event_id`` seen more than once in the day;
    2. a streaming filter keeping only the rows that need a decision: row-level problems, users
       not billed this month, and rows whose ``event_id`` hash repeats in the day.

    Both run one UTC day at a time, so memory is bounded by a day's events.

    Everything after that works on those few rows. See ``fairstream_pipeline.lib.clean_plays``.
    """
    zone.require_complete(month)
    files = list(enumerate(zone.event_files(month)))
    con.execute(
        "CREATE OR REPLACE TEMP TABLE event_files (file_index INTEGER, source_file VARCHAR, "
        "folder_date DATE, num_rows BIGINT, size_bytes BIGINT, mtime_ns BIGINT)"
    ).fetchall()
    if files:
        con.executemany(
            "INSERT INTO event_files VALUES (?, ?, ?, ?, ?, ?)",
            [(i, f.relative_path, f.folder_date, f.num_rows, f.size_bytes, f.mtime_ns) for i, f in files],
        )
    con.execute("CREATE OR REPLACE TEMP TABLE repeated_ids (folder_date DATE, h UBIGINT)").fetchall()
    con.execute(
        "CREATE OR REPLACE TEMP TABLE billed AS "
        f"SELECT user_id FROM {read_parquet(billed_users_glob)}"
    ).fetchall()
    suspects_columns = (
        "file_index INTEGER, folder_date DATE, file_row_number BIGINT, event_id VARCHAR, user_id VARCHAR, "
        "track_id VARCHAR, played_at TIMESTAMPTZ, ms_played BIGINT, row_reason VARCHAR, "
        "unknown_user BOOLEAN"
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE suspects ({suspects_columns})").fetchall()
    by_day: dict = {}
    for index, data_file in files:
        by_day.setdefault(data_file.folder_date, []).append((index, data_file))
    for day, day_files in sorted(by_day.items()):
        fault_point("ingestion")
        try:
            _run_day(con, day, day_files)
        except duckdb.Error as exc:
            error = read_failure(exc, [f for _, f in day_files], f"listening_events/date={day.isoformat()}")
            if error is None:
                raise
            raise error from exc

    # Decide on the suspects: 1-2 row-level reasons, 3-4 duplicates within a day, 5 unknown users.
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE event_groups AS
        SELECT folder_date, event_id, count(*) AS copies,
               min(user_id) <> max(user_id) OR min(track_id) <> max(track_id)
                 OR min(played_at) <> max(played_at) OR min(ms_played) <> max(ms_played) AS conflicting,
               min((file_index, file_row_number)) AS first_copy
        FROM suspects WHERE row_reason IS NULL
        GROUP BY folder_date, event_id HAVING count(*) > 1
        """
    ).fetchall()
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE decisions AS
        SELECT s.*, CASE
            WHEN s.row_reason IS NOT NULL THEN s.row_reason
            WHEN g.conflicting THEN 'conflicting_duplicate'
            WHEN g.copies IS NOT NULL AND (s.file_index, s.file_row_number) <> g.first_copy THEN 'duplicate'
            WHEN s.unknown_user THEN 'unknown_user'
        END AS reason
        FROM suspects s LEFT JOIN event_groups g USING (folder_date, event_id)
        """
    ).fetchall()
    con.execute(
        f"COPY (SELECT file_index, file_row_number, reason FROM decisions WHERE reason IS NOT NULL "
        f"ORDER BY file_index, file_row_number) TO {sql_string(removed_file)} ({PARQUET_OPTIONS})"
    ).fetchall()
    con.execute(
        f"COPY (SELECT * FROM event_files ORDER BY file_index) TO {sql_string(files_file)} ({PARQUET_OPTIONS})"
    ).fetchall()
    _copy(
        con,
        """
        SELECT d.reason, f.source_file, d.file_row_number,
               d.event_id, d.user_id, d.track_id, d.played_at, d.ms_played
        FROM decisions d JOIN event_files f USING (file_index)
        WHERE d.reason IS NOT NULL AND d.reason <> 'duplicate'
        ORDER BY f.source_file, d.file_row_number
        """,
        quarantine_file,
    )
    counts = dict(
        con.execute("SELECT reason, count(*) FROM decisions WHERE reason IS NOT NULL GROUP BY reason").fetchall()
    )
    rows_read = sum(f.num_rows for _, f in files)
    duplicates = counts.pop("duplicate", 0)
    quarantined = {reason: counts.get(reason, 0) for reason in QUARANTINE_REASONS}
    return PlayIngestion(
        rows_read=rows_read,
        clean_plays=rows_read - duplicates - sum(quarantined.values()),
        duplicates_dropped=duplicates,
        quarantined=quarantined,
        files=[f for _, f in files],
    )


# Catalog ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Catalog:
    tracks: int
    split_rows: int
    payees: int
    files: list[DataFile]


def ingest_catalog(con: duckdb.DuckDBPyConnection, zone: LandingZone) -> Catalog:
    """Load ``catalog/*.parquet`` into temp tables ``catalog_tracks``, ``split_rows``, ``catalog_payees``.

    A track or payee listed twice, or a row without its id, is an error. Broken *shares* are not:
    they send the track's money to suspense (``docs/payout-rules.md``, rule 7).
    """
    sources = {
        "catalog_tracks": (zone.catalog_file("tracks", TRACK_COLUMNS), "r.track_id, r.title, r.artist_name", "track_id"),
        "split_rows": (
            zone.catalog_file("rights_splits", SPLIT_COLUMNS),
            "r.track_id, r.payee_id, CAST(r.share_ppm AS BIGINT) AS share_ppm",
            None,
        ),
        "catalog_payees": (zone.catalog_file("payees", PAYEE_COLUMNS), "r.payee_id, r.name, r.email", "payee_id"),
    }
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
    )

"""The landing-zone contract is defined once (``LANDING_TABLES``); the generator, the tests' builders,
the ingestion's footer checks and docs/data-contract.md all agree with it."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fairstream_pipeline.lib.ingestion import landing_zone
from fairstream_pipeline.lib.ingestion.landing_zone import (
    INT64,
    LANDING_TABLES,
    STRING,
    TIMESTAMP,
    LandingTable,
    LandingZone,
    check_parquet_file,
)
from fairstream_pipeline.sample import generate_month
from fairstream_pipeline_tests.landing_builders import Landing, utc

MONTH = "2026-10"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "data-contract.md"


def table_of(relative_path: str) -> LandingTable:
    """The one contract table whose location matches a landing-relative file path."""
    patterns = {
        t: t.location.replace("YYYY-MM-DD", "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]").replace(
            "YYYY-MM", "[0-9][0-9][0-9][0-9]-[0-9][0-9]"
        )
        for t in LANDING_TABLES
    }
    matches = [t for t, pattern in patterns.items() if fnmatch.fnmatchcase(relative_path, pattern)]
    assert len(matches) == 1, (relative_path, matches)
    return matches[0]


def assert_files_follow_the_contract(root: Path) -> None:
    """Every Parquet file under ``root`` has exactly its table's schema and passes the ingestion's
    footer check; every table has a file; the ingestion finds them where the contract says."""
    seen = set()
    for path in sorted(root.rglob("*.parquet")):
        relative = path.relative_to(root).as_posix()
        table = table_of(relative)
        schema = pq.read_schema(path)
        assert schema.equals(table.arrow_schema), (relative, schema, table.arrow_schema)
        check_parquet_file(path, relative, table.column_kinds)
        seen.add(table.name)
    assert seen == {t.name for t in LANDING_TABLES}
    zone = LandingZone(root)
    zone.require_complete(MONTH)
    assert zone.event_files(MONTH) and zone.subscription_files(MONTH) and zone.ad_revenue_files(MONTH)
    for table in LANDING_TABLES:
        if table.partition is None:
            assert zone.catalog_file(table.name, table.column_kinds).path == table.path(root)


def test_each_kind_has_one_arrow_and_one_duckdb_type():
    # the pin of the contract's physical types (the generator's bytes depend on them)
    types = {
        STRING: (pa.string(), "VARCHAR"),
        INT64: (pa.int64(), "BIGINT"),
        TIMESTAMP: (pa.timestamp("us", tz="UTC"), "TIMESTAMPTZ"),
    }
    for table in LANDING_TABLES:
        for column in table.columns:
            assert (column.arrow_type, column.duckdb_type) == types[column.kind]
    assert [t.location for t in LANDING_TABLES] == [
        "listening_events/date=YYYY-MM-DD/*.parquet",
        "subscriptions/month=YYYY-MM/*.parquet",
        "ad_revenue/month=YYYY-MM/*.parquet",
        "catalog/tracks.parquet",
        "catalog/rights_splits.parquet",
        "catalog/payees.parquet",
    ]


def test_the_ingestion_column_maps_come_from_the_contract():
    exported = [
        landing_zone.EVENT_COLUMNS,
        landing_zone.SUBSCRIPTION_COLUMNS,
        landing_zone.AD_REVENUE_COLUMNS,
        landing_zone.TRACK_COLUMNS,
        landing_zone.SPLIT_COLUMNS,
        landing_zone.PAYEE_COLUMNS,
    ]
    assert exported == [t.column_kinds for t in LANDING_TABLES]


def test_the_ingestion_reads_each_column_cast_to_its_contract_type():
    assert landing_zone.LANDING_EVENTS.typed_columns_sql() == (
        "event_id, user_id, track_id, CAST(played_at AS TIMESTAMPTZ) AS played_at, CAST(ms_played AS BIGINT) AS ms_played"
    )
    assert landing_zone.LANDING_SUBSCRIPTIONS.typed_columns_sql("r") == (
        "r.user_id, r.plan, r.country, CAST(r.net_cents AS BIGINT) AS net_cents"
    )
    from fairstream_pipeline.lib.ingestion import plays
    from fairstream_pipeline.lib.ingestion.monthly_tables import AD_REVENUE, BILLED_USERS

    assert plays.EVENT_COLUMNS_SQL == landing_zone.LANDING_EVENTS.typed_columns_sql()
    assert BILLED_USERS.columns == landing_zone.LANDING_SUBSCRIPTIONS.typed_columns_sql("r")
    assert AD_REVENUE.columns == landing_zone.LANDING_AD_REVENUE.typed_columns_sql("r")


def test_the_generator_writes_exactly_the_contract(tmp_path):
    generate_month(tmp_path, MONTH, users=50, seed=1, events=3_000)
    assert_files_follow_the_contract(tmp_path)


def test_the_test_builders_write_exactly_the_contract(tmp_path):
    landing = Landing(tmp_path)
    landing.catalog([("t1", "Song", "Artist")], [("t1", "p1", 1_000_000)], [("p1", "Artist", None)])
    landing.subscriptions(MONTH, [("u1", "premium", "FR", 999)])
    landing.ad_revenue(MONTH, [("FR", 100)])
    landing.events(f"{MONTH}-01", [("e1", "u1", "t1", utc(f"{MONTH}-01 10:00"), 200_000)])
    landing.close_days(MONTH)
    assert_files_follow_the_contract(tmp_path)


@pytest.mark.parametrize("table", LANDING_TABLES, ids=lambda t: t.name)
def test_the_docs_list_each_input_with_its_columns_in_order(table):
    rows = [line for line in DOCS.read_text().splitlines() if line.startswith(f"| `{table.location}` |")]
    assert len(rows) == 1, table.location
    described = re.findall(r"`(\w+)` (string|int64|timestamp)( \(nullable)?", rows[0])
    assert described == [(c.name, c.kind, " (nullable" if c.nullable else "") for c in table.columns]

"""The landing-zone contract is defined once (``LANDING_TABLES``); the generator, the tests' builders,
the ingestion's footer checks and docs/data-contract.md all agree with it."""

from __future__ import annotations

import fnmatch
import re
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import schwifty
from schwifty.exceptions import SchwiftyException

from fairstream_pipeline.lib.ingestion import landing_zone
from fairstream_pipeline.lib.ingestion.landing_zone import (
    INT64,
    LANDING_PAYEES,
    LANDING_PAYMENT_DETAILS,
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
        "catalog/payment_details.parquet",
    ]


def test_the_ingestion_column_maps_come_from_the_contract():
    exported = [
        landing_zone.EVENT_COLUMNS,
        landing_zone.SUBSCRIPTION_COLUMNS,
        landing_zone.AD_REVENUE_COLUMNS,
        landing_zone.TRACK_COLUMNS,
        landing_zone.SPLIT_COLUMNS,
        landing_zone.PAYEE_COLUMNS,
        landing_zone.PAYMENT_DETAIL_COLUMNS,
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

    every = {c.name for c in landing_zone.LANDING_EVENTS.columns}
    assert landing_zone.LANDING_EVENTS.typed_columns_sql(present=every).endswith(", source")
    # an optional column a file leaves out reads as a typed null
    assert landing_zone.LANDING_EVENTS.typed_columns_sql(present=every - {"source"}).endswith(
        ", NULL::VARCHAR AS source"
    )
    assert landing_zone.LANDING_TRACKS.optional_kinds == {"artist_id": STRING, "content_type": STRING}
    assert "source" not in landing_zone.EVENT_COLUMNS  # optional: not required by the footer check
    assert plays.event_columns_sql.__doc__
    assert BILLED_USERS.columns == landing_zone.LANDING_SUBSCRIPTIONS.typed_columns_sql("r")
    assert AD_REVENUE.columns == landing_zone.LANDING_AD_REVENUE.typed_columns_sql("r")


def test_the_generator_writes_exactly_the_contract(tmp_path):
    generate_month(tmp_path, MONTH, users=50, seed=1, events=3_000)
    assert_files_follow_the_contract(tmp_path)


def test_the_test_builders_write_exactly_the_contract(tmp_path):
    landing = Landing(tmp_path)
    landing.catalog([("t1", "Song", "Artist", "a1", "music")], [("t1", "p1", 1_000_000)], [("p1", "Artist", None)])
    details = landing.payment_details([("p1", "DE89370400440532013000", "COBADEFFXXX", None)])
    assert stat.S_IMODE(details.stat().st_mode) == 0o600
    landing.subscriptions(MONTH, [("u1", "premium", "FR", 999)])
    landing.ad_revenue(MONTH, [("FR", 100)])
    landing.events(f"{MONTH}-01", [("e1", "u1", "t1", utc(f"{MONTH}-01 10:00"), 200_000, "search")])
    landing.close_days(MONTH)
    assert_files_follow_the_contract(tmp_path)


def test_a_delivery_without_the_optional_columns_passes_the_footer_checks(tmp_path):
    landing = Landing(tmp_path)
    landing.catalog([("t1", "Song", "Artist")], [("t1", "p1", 1_000_000)], [("p1", "Artist", None)])
    landing.events(f"{MONTH}-01", [("e1", "u1", "t1", utc(f"{MONTH}-01 10:00"), 200_000)])
    landing.close_days(MONTH)
    zone = LandingZone(tmp_path)
    (events,) = zone.event_files(MONTH)
    assert "source" not in pq.read_schema(events.path).names
    tracks = zone.catalog_file("tracks", landing_zone.TRACK_COLUMNS, landing_zone.LANDING_TRACKS.optional_kinds)
    assert pq.read_schema(tracks.path).names == ["track_id", "title", "artist_name"]


@pytest.mark.parametrize("table", LANDING_TABLES, ids=lambda t: t.name)
def test_the_docs_list_each_input_with_its_columns_in_order(table):
    rows = [line for line in DOCS.read_text().splitlines() if line.startswith(f"| `{table.location}` |")]
    assert len(rows) == 1, table.location
    described = re.findall(r"`(\w+)` (string|int64|timestamp)( \(nullable)?", rows[0])
    assert described == [(c.name, c.kind, " (nullable" if c.nullable else "") for c in table.columns]


def test_payment_details_are_an_optional_catalog_file(tmp_path):
    zone = LandingZone(tmp_path)
    columns = LANDING_PAYMENT_DETAILS.column_kinds
    assert zone.optional_catalog_file(LANDING_PAYMENT_DETAILS.name, columns) is None
    Landing(tmp_path).payment_details([("p1", "FR7630006000011234567890189", None, "Someone Else")])
    found = zone.optional_catalog_file(LANDING_PAYMENT_DETAILS.name, columns)
    assert found is not None and found.relative_path == "catalog/payment_details.parquet" and found.num_rows == 1


def _details_are_valid(iban: str, bic: str | None) -> bool:
    """The pipeline's rule, checked independently of the generator: a valid IBAN, and a BIC when
    given that is valid and of the IBAN's country."""
    try:
        country = schwifty.IBAN(iban).country_code
        return bic is None or schwifty.BIC(bic).country_code == country
    except SchwiftyException:
        return False


def test_the_generated_payment_details_mix_valid_invalid_and_missing_rows(tmp_path):
    summary = generate_month(tmp_path, MONTH, users=50, seed=1, events=3_000)
    path = LANDING_PAYMENT_DETAILS.path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # personal data
    rows = pq.read_table(path).to_pylist()
    payees = pq.read_table(LANDING_PAYEES.path(tmp_path)).column("payee_id").to_pylist()
    listed = [r["payee_id"] for r in rows]
    assert len(set(listed)) == len(listed) and set(listed) <= set(payees)  # the catalog rule
    valid = [r for r in rows if _details_are_valid(r["iban"], r["bic"])]
    invalid = [r for r in rows if not _details_are_valid(r["iban"], r["bic"])]
    assert len(valid) == summary.payees_with_valid_details
    assert len(invalid) == summary.payees_with_invalid_details >= 1
    assert len(payees) - len(rows) == summary.payees_without_details >= 1
    assert summary.payees_with_valid_details + summary.payees_with_invalid_details + summary.payees_without_details == summary.payees
    assert summary.payees_with_valid_details >= 0.85 * summary.payees
    # an IBAN that schwifty rejects, and a valid IBAN with another country's BIC
    for r in invalid:
        if r["bic"] is None or schwifty.BIC(r["bic"]).country_code == r["iban"][:2]:
            with pytest.raises(SchwiftyException):
                schwifty.IBAN(r["iban"])
    assert any(r["bic"] and schwifty.BIC(r["bic"]).country_code != r["iban"][:2] for r in invalid)
    for r in valid:
        schwifty.IBAN(r["iban"]).validate(validate_bban=True)
    assert any(r["bic"] for r in valid) and any(r["bic"] is None for r in valid)
    assert any(r["account_holder"] for r in rows) and any(r["account_holder"] is None for r in rows)

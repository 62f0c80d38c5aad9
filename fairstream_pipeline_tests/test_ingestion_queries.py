"""One ingestion path for the monthly tables (subscriptions and ad revenue), the payee directory,
and the clean-plays preview, on small hand-made landing zones."""

from __future__ import annotations

from datetime import date

import duckdb
import pyarrow.parquet as pq
import pytest

from fairstream_pipeline.lib.ingestion.clean_plays import clean_plays_preview
from fairstream_pipeline.lib.ingestion.landing_zone import LandingZone, LandingZoneError
from fairstream_pipeline.lib.ingestion.monthly_tables import (
    AD_REVENUE,
    BILLED_USERS,
    MonthlyTableResult,
    ingest_catalog,
    ingest_monthly_table,
    snapshot_payee_directory,
)
from fairstream_pipeline.lib.lake.tables import Rows

MONTH = "2026-10"


def test_billed_users_one_row_per_user_with_its_tier(landing, tmp_path):
    landing.subscriptions(MONTH, [("u3", "free", "DE", 0), ("u1", "premium", "FR", 999)], name="a.parquet")
    landing.subscriptions(MONTH, [("u2", "family", "FR", 1_500)], name="b.parquet")
    out = tmp_path / "billed.parquet"
    result = ingest_monthly_table(duckdb.connect(), LandingZone(landing.root), MONTH, out, BILLED_USERS)
    assert result == MonthlyTableResult(
        rows=3,
        net_cents=2_499,
        rows_by_tier={"free": 1, "paid": 2},
        net_cents_by_tier={"free": 0, "paid": 2_499},
        files=result.files,
    )
    assert [f.relative_path for f in result.files] == [
        f"subscriptions/month={MONTH}/a.parquet",
        f"subscriptions/month={MONTH}/b.parquet",
    ]
    assert pq.read_table(out).to_pylist() == [
        {"user_id": "u1", "plan": "premium", "tier": "paid", "country": "FR", "net_cents": 999},
        {"user_id": "u2", "plan": "family", "tier": "paid", "country": "FR", "net_cents": 1_500},
        {"user_id": "u3", "plan": "free", "tier": "free", "country": "DE", "net_cents": 0},
    ]


def test_ad_revenue_one_row_per_country(landing, tmp_path):
    landing.ad_revenue(MONTH, [("FR", 3_000), ("DE", 250)])
    out = tmp_path / "ads.parquet"
    result = ingest_monthly_table(duckdb.connect(), LandingZone(landing.root), MONTH, out, AD_REVENUE)
    assert (result.rows, result.net_cents, result.rows_by_tier, result.net_cents_by_tier) == (
        2, 3_250, {"free": 2}, {"free": 3_250}
    )
    assert pq.read_table(out).to_pylist() == [{"country": "DE", "net_cents": 250}, {"country": "FR", "net_cents": 3_000}]


def test_an_empty_month_of_ad_revenue(landing, tmp_path):
    landing.ad_revenue(MONTH, [])
    result = ingest_monthly_table(duckdb.connect(), LandingZone(landing.root), MONTH, tmp_path / "a.parquet", AD_REVENUE)
    assert (result.rows, result.net_cents, result.rows_by_tier) == (0, 0, {})
    assert pq.read_table(tmp_path / "a.parquet").num_rows == 0


@pytest.mark.parametrize(
    ("table", "rows", "message"),
    [
        (
            BILLED_USERS,
            [("u1", "premium", "FR", 999), ("u2", "premium", "FR", -999), ("u3", "premium", "FR", -1)],
            f"subscriptions/month={MONTH}/part-0.parquet row 1: user_id 'u2' has negative net_cents -999 (1 more problem of this kind)",
        ),
        (
            BILLED_USERS,
            [("", "premium", "FR", 999)],
            f"subscriptions/month={MONTH}/part-0.parquet row 0: user_id is null or empty",
        ),
        (
            BILLED_USERS,
            [("u1", "premium", "FR", 1), ("u2", "premium", "FR", 1), ("u1", "premium", "FR", 1)],
            f"subscriptions/month={MONTH}/part-0.parquet: user_id 'u1' is listed 2 times (rows 0, 2)",
        ),
        (
            AD_REVENUE,
            [("FR", 100), ("fr", 5)],
            f"ad_revenue/month={MONTH}/part-0.parquet row 1: country 'fr' is not an ISO 3166-1 alpha-2 code",
        ),
        (AD_REVENUE, [(None, 100)], f"ad_revenue/month={MONTH}/part-0.parquet row 0: country is null"),
        (
            AD_REVENUE,
            [("FR", 100), ("FR", 5)],
            f"ad_revenue/month={MONTH}/part-0.parquet: country 'FR' is listed 2 times (rows 0, 1)",
        ),
    ],
)
def test_a_broken_row_fails_naming_file_and_row_and_writes_nothing(landing, tmp_path, table, rows, message):
    getattr(landing, "subscriptions" if table is BILLED_USERS else "ad_revenue")(MONTH, rows)
    out = tmp_path / "out.parquet"
    with pytest.raises(LandingZoneError) as failure:
        ingest_monthly_table(duckdb.connect(), LandingZone(landing.root), MONTH, out, table)
    assert str(failure.value) == message
    assert not out.exists()


def test_a_key_listed_in_two_files(landing, tmp_path):
    landing.ad_revenue(MONTH, [("FR", 1)], name="a.parquet")
    landing.ad_revenue(MONTH, [("DE", 2), ("FR", 3)], name="b.parquet")
    with pytest.raises(LandingZoneError) as failure:
        ingest_monthly_table(duckdb.connect(), LandingZone(landing.root), MONTH, tmp_path / "o.parquet", AD_REVENUE)
    assert str(failure.value) == f"ad_revenue/month={MONTH}: country 'FR' is listed 2 times (a.parquet row 0, b.parquet row 1)"


def test_payee_directory_snapshots_the_catalog_payees(landing):
    landing.catalog(
        [("t1", "One", "A")],
        [("t1", "P2", 1_000_000)],
        [("P2", "Two", "two@example.org"), ("P1", "One", None)],
    )
    con = duckdb.connect()
    ingest_catalog(con, LandingZone(landing.root))
    snapshot_payee_directory(con)
    assert con.execute("SELECT * FROM payee_directory").fetchall() == [("P1", "One", None), ("P2", "Two", "two@example.org")]


def test_clean_plays_preview():
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE clean_plays AS SELECT * FROM (VALUES ('u1', 't1', 40000::BIGINT, DATE '2026-10-01'))
           t(user_id, track_id, ms_played, day)"""
    )
    assert clean_plays_preview(con) == Rows(
        ["user_id", "track_id", "day", "ms_played"], [("u1", "t1", date(2026, 10, 1), 40_000)]
    )

"""The queries behind the payout assets' metadata and checks, on small hand-made tables."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from fairstream_pipeline.lib.lake.tables import Rows
from fairstream_pipeline.lib.payouts.checks import payees_without_email, suspense_cents
from fairstream_pipeline.lib.payouts.report import (
    StreamTotals,
    directory_without_email,
    flagged_users_preview,
    invalid_tracks,
    segment_summary,
    stream_totals,
    tracks_by_verdict,
)


@pytest.fixture
def catalog() -> duckdb.DuckDBPyConnection:
    """t1 valid (one payee), t2 valid (two payees), t3 and t4 shares not summing to 10^6, t5 no split
    rows; P3 has no email, P4 a blank one, P9 is in no split, P5 is in the splits but not the directory."""
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE track_splits AS SELECT * FROM (VALUES
               ('t1', 'P1', 1000000::BIGINT, true, NULL),
               ('t2', 'P1', 500000, true, NULL),
               ('t2', 'P2', 500000, true, NULL),
               ('t3', 'P3', 400000, false, 'shares sum to 400000, not 1000000'),
               ('t4', 'P4', 300000, false, 'shares sum to 800000, not 1000000'),
               ('t4', 'P5', 500000, false, 'shares sum to 800000, not 1000000'),
               ('t5', NULL, NULL, false, 'no split rows'))
           t(track_id, payee_id, share_ppm, valid, problem)"""
    )
    con.execute(
        """CREATE TABLE payee_directory AS SELECT * FROM (VALUES
               ('P1', 'One', 'one@example.org'), ('P2', 'Two', 'two@example.org'), ('P3', 'Three', NULL),
               ('P4', 'Four', '  '), ('P9', 'Nine', ''))
           t(payee_id, name, email)"""
    )
    return con


def test_tracks_by_verdict_most_first(catalog):
    assert tracks_by_verdict(catalog) == [
        ("valid", 2),
        ("no split rows", 1),
        ("shares sum to 400000, not 1000000", 1),
        ("shares sum to 800000, not 1000000", 1),
    ]


def test_invalid_tracks_lists_their_split_rows(catalog):
    assert invalid_tracks(catalog) == Rows(
        ["track_id", "problem", "payees", "shares"],
        [
            ("t3", "shares sum to 400000, not 1000000", ["P3"], [400000]),
            ("t4", "shares sum to 800000, not 1000000", ["P4", "P5"], [300000, 500000]),
            ("t5", "no split rows", [None], [None]),
        ],
    )
    assert invalid_tracks(catalog, limit=1).rows == [("t3", "shares sum to 400000, not 1000000", ["P3"], [400000])]


def test_directory_without_email_counts_null_and_empty_only(catalog):
    assert directory_without_email(catalog) == 2  # P3 (null) and P9 (empty); P4's blank is an address here


def test_payees_without_email_are_the_split_payees_that_cannot_be_mailed(catalog):
    # P4's blank address counts as none; P9 is in no split; P5 is not in the directory.
    assert payees_without_email(catalog) == [
        ("P3", "no email"),
        ("P4", "no email"),
        ("P5", "not in payees.parquet"),
    ]


def test_suspense_cents():
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE payee_earnings AS SELECT * FROM (VALUES
               ('FR', 'paid', '__suspense__', 700::BIGINT), ('DE', 'paid', '__suspense__', 50),
               ('FR', 'paid', '__unallocated__', 9), ('FR', 'paid', 'P1', 6300))
           t(country, tier, payee_id, uc_cents)"""
    )
    assert suspense_cents(con) == 750
    con.execute("DELETE FROM payee_earnings WHERE payee_id = '__suspense__'")
    assert suspense_cents(con) == 0


def test_stream_totals_and_the_flagged_preview():
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE user_streams AS SELECT * FROM (VALUES
               ('u1', 10::BIGINT, false), ('u2', 0, false), ('bot', 0, true), ('u3', 2, false))
           t(user_id, streams, flagged)"""
    )
    assert stream_totals(con) == StreamTotals(users=4, counted_streams=12, streaming_users=2, flagged_users=1)
    con.execute("DELETE FROM user_streams")
    assert stream_totals(con) == StreamTotals(0, 0, 0, 0)
    con.execute(
        """CREATE TABLE flagged_users AS SELECT * FROM (VALUES
               ('bot1', DATE '2024-01-04', 6::BIGINT), ('bot2', DATE '2024-01-02', 90), ('bot3', DATE '2024-01-09', 30))
           t(user_id, worst_day, worst_day_streams)"""
    )
    assert flagged_users_preview(con, limit=2) == Rows(
        ["user_id", "worst_day", "worst_day_streams"],
        [("bot2", date(2024, 1, 2), 90), ("bot3", date(2024, 1, 9), 30)],
    )


def test_segment_summary_floors_pico_cents_to_cents():
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE segment_pools AS SELECT * FROM (VALUES
               ('FR', 'paid', 3::BIGINT, 12::BIGINT, 14700::BIGINT, 1999999999999::HUGEINT, 0::HUGEINT),
               ('DE', 'paid', 1, 0, 700, 0, 700000000000000),
               ('FR', 'free', 2, 4, 2100, 5, 3000000000000))
           t(country, tier, users, counted_streams, target_cents, residual_pico, uc_unallocated_pico)"""
    )
    assert segment_summary(con) == [
        ("DE", "paid", 1, 0, 700, 0, 700),
        ("FR", "free", 2, 4, 2100, 0, 3),
        ("FR", "paid", 3, 12, 14700, 1, 0),
    ]

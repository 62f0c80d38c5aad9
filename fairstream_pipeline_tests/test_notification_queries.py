"""A closed month's statements as the emails, the app database and the outbox read them."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.notifications.closed_statements import (
    adjustment_rows,
    published_line_rows,
    published_statement_rows,
    rendered_messages,
    statement_rows,
)

MONTH = "2024-02"


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    """P1 earns in two segments and has three adjustments (one a returned payment); P2 has only a
    carried balance, is held and has no directory entry; __suspense__ holds money; P3 has closed
    earnings but no statement."""
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE payee_statements AS SELECT * FROM (VALUES
               ('P1', 100::BIGINT, 1500::BIGINT, -20::BIGINT, 1400::BIGINT, 1580::BIGINT, 0::BIGINT, NULL::VARCHAR),
               ('P2', 3000, 0, 0, 0, 0, 3000, 'no_payment_details'),
               ('__suspense__', 50, 40, 0, 40, 0, 90, NULL))
           t(payee_id, opening_balance_cents, earned_cents, adjustment_cents, pro_rata_cents, paid_cents,
             closing_balance_cents, hold_reason)"""
    )
    con.execute(
        """CREATE TABLE closed_earnings AS SELECT * FROM (VALUES
               ('FR', 'paid', 'P1', 1000::BIGINT, 900::BIGINT), ('DE', 'paid', 'P1', 500, 500),
               ('FR', 'paid', '__suspense__', 40, 40), ('FR', 'free', 'P3', 7, 7))
           t(country, tier, payee_id, uc_cents, pr_cents)"""
    )
    con.execute(
        """CREATE TABLE payee_adjustments AS SELECT * FROM (VALUES
               ('P1', '2024-01', -30::BIGINT, 'late_data'), ('P1', '2023-12', 10, 'late_data'),
               ('P1', '2024-01', 0, 'returned_payment'))
           t(payee_id, source_month, cents, reason)"""
    )
    con.execute(
        """CREATE TABLE payee_directory AS SELECT * FROM (VALUES ('P1', 'One', 'one@example.org'))
           t(payee_id, name, email)"""
    )
    return con


def test_statement_rows_are_the_real_payees_with_their_lines_and_adjustments(con):
    assert statement_rows(con) == [
        (
            "P1", "One", "one@example.org", 100, 1500, 1400, 1580, 0,
            [("DE", "paid", 500, 500), ("FR", "paid", 1000, 900)],
            -20,
            [("2023-12", 10, "late_data"), ("2024-01", -30, "late_data"), ("2024-01", 0, "returned_payment")],
            None,
        ),
        ("P2", None, None, 3000, 0, 0, 0, 3000, [], 0, [], "no_payment_details"),
    ]


def test_published_statement_rows_hold_every_statement_with_the_close(con):
    rows = published_statement_rows(con, MONTH, "2024-03-01T09:00:00+00:00", "abc123", "v3")
    closed_at = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    assert [(*r[:11], *r[12:]) for r in rows] == [
        (MONTH, "P1", "One", "one@example.org", 100, 1500, -20, 1400, 1580, 0, "v3", "abc123", None),
        (MONTH, "P2", None, None, 3000, 0, 0, 0, 0, 3000, "v3", "abc123", "no_payment_details"),
        (MONTH, "__suspense__", None, None, 50, 40, 0, 40, 0, 90, "v3", "abc123", None),
    ]
    assert {r[11] for r in rows} == {closed_at}


def test_published_lines_are_those_of_payees_with_a_statement(con):
    assert published_line_rows(con, MONTH) == [
        (MONTH, "P1", "DE", "paid", 500, 500),
        (MONTH, "P1", "FR", "paid", 1000, 900),
        (MONTH, "__suspense__", "FR", "paid", 40, 40),
    ]


def test_adjustment_rows(con):
    assert adjustment_rows(con) == [
        ("P1", "2023-12", 10, "late_data"), ("P1", "2024-01", -30, "late_data"), ("P1", "2024-01", 0, "returned_payment")
    ]


def test_rendered_messages_are_read_back_by_payee(tmp_path):
    lake = Lake(tmp_path / "warehouse")
    with lake.write_partition("statement_notifications", MONTH) as out:
        pq.write_table(pa.table({"payee_id": ["P2", "P1"], "subject": ["two", "one"]}), out.file())
    assert rendered_messages(duckdb.connect(), lake, MONTH) == [("P1", "one"), ("P2", "two")]

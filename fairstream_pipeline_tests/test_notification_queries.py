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
    """P1 earns in two segments and has two adjustments; P2 has only a carried balance and no
    directory entry; __suspense__ holds money; P3 has closed earnings but no statement."""
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE payee_statements AS SELECT * FROM (VALUES
               ('P1', 100::BIGINT, 1500::BIGINT, -20::BIGINT, 1400::BIGINT, 1580::BIGINT, 0::BIGINT),
               ('P2', 300, 0, 0, 0, 0, 300),
               ('__suspense__', 50, 40, 0, 40, 0, 90))
           t(payee_id, opening_balance_cents, earned_cents, adjustment_cents, pro_rata_cents, paid_cents,
             closing_balance_cents)"""
    )
    con.execute(
        """CREATE TABLE closed_earnings AS SELECT * FROM (VALUES
               ('FR', 'paid', 'P1', 1000::BIGINT, 900::BIGINT), ('DE', 'paid', 'P1', 500, 500),
               ('FR', 'paid', '__suspense__', 40, 40), ('FR', 'free', 'P3', 7, 7))
           t(country, tier, payee_id, uc_cents, pr_cents)"""
    )
    con.execute(
        """CREATE TABLE payee_adjustments AS SELECT * FROM (VALUES
               ('P1', '2024-01', -30::BIGINT), ('P1', '2023-12', 10))
           t(payee_id, source_month, cents)"""
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
            [("2023-12", 10), ("2024-01", -30)],
        ),
        ("P2", None, None, 300, 0, 0, 0, 300, [], 0, []),
    ]


def test_published_statement_rows_hold_every_statement_with_the_close(con):
    rows = published_statement_rows(con, MONTH, "2024-03-01T09:00:00+00:00", "abc123")
    closed_at = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    assert [(*r[:11], r[12]) for r in rows] == [
        (MONTH, "P1", "One", "one@example.org", 100, 1500, -20, 1400, 1580, 0, "v2", "abc123"),
        (MONTH, "P2", None, None, 300, 0, 0, 0, 0, 300, "v2", "abc123"),
        (MONTH, "__suspense__", None, None, 50, 40, 0, 40, 0, 90, "v2", "abc123"),
    ]
    assert {r[11] for r in rows} == {closed_at}


def test_published_lines_are_those_of_payees_with_a_statement(con):
    assert published_line_rows(con, MONTH) == [
        (MONTH, "P1", "DE", "paid", 500, 500),
        (MONTH, "P1", "FR", "paid", 1000, 900),
        (MONTH, "__suspense__", "FR", "paid", 40, 40),
    ]


def test_adjustment_rows(con):
    assert adjustment_rows(con) == [("P1", "2023-12", 10), ("P1", "2024-01", -30)]


def test_rendered_messages_are_read_back_by_payee(tmp_path):
    lake = Lake(tmp_path / "warehouse")
    with lake.write_partition("statement_notifications", MONTH) as out:
        pq.write_table(pa.table({"payee_id": ["P2", "P1"], "subject": ["two", "one"]}), out.file())
    assert rendered_messages(duckdb.connect(), lake, MONTH) == [("P1", "one"), ("P2", "two")]

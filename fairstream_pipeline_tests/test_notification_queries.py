"""A closed month's statements as the emails, the app database and the outbox read them."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fairstream_pipeline.lib.app_db.store import LINE_COLUMNS, STATEMENT_COLUMNS
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.notifications.closed_statements import (
    adjustment_rows,
    published_line_rows,
    published_statement_rows,
    rendered_message_batches,
    statement_row_batches,
    statement_rows,
)

MONTH = "2024-02"


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    """A month closed before rules v4 (no acps_cents, no payout_model): P1 earns in two segments and
    has three adjustments (one a returned payment); P2 has only a carried balance, is held and has
    no directory entry; __suspense__ holds money; P3 has closed earnings but no statement."""
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


@pytest.fixture
def con_v4(con) -> duckdb.DuckDBPyConnection:
    """The same month closed under rules v4, paid artist-centric: the statements keep acps_cents and
    payout_model, the lines acps_cents; P1's earned is its ACPS cents (1100 + 400)."""
    con.execute(
        """CREATE OR REPLACE TABLE payee_statements AS SELECT * FROM (VALUES
               ('P1', 100::BIGINT, 1500::BIGINT, -20::BIGINT, 1400::BIGINT, 1580::BIGINT, 0::BIGINT, NULL::VARCHAR,
                1500::BIGINT, 'artist_centric'),
               ('P2', 3000, 0, 0, 0, 0, 3000, 'no_payment_details', 0, 'artist_centric'),
               ('__suspense__', 50, 45, 0, 40, 0, 95, NULL, 45, 'artist_centric'))
           t(payee_id, opening_balance_cents, earned_cents, adjustment_cents, pro_rata_cents, paid_cents,
             closing_balance_cents, hold_reason, acps_cents, payout_model)"""
    )
    con.execute(
        """CREATE OR REPLACE TABLE closed_earnings AS SELECT * FROM (VALUES
               ('FR', 'paid', 'P1', 1000::BIGINT, 900::BIGINT, 1100::BIGINT), ('DE', 'paid', 'P1', 500, 500, 400),
               ('FR', 'paid', '__suspense__', 40, 40, 45), ('FR', 'free', 'P3', 7, 7, 9))
           t(country, tier, payee_id, uc_cents, pr_cents, acps_cents)"""
    )
    return con


ADJUSTMENTS = [("2023-12", 10, "late_data"), ("2024-01", -30, "late_data"), ("2024-01", 0, "returned_payment")]


def test_statement_rows_are_the_real_payees_with_their_lines_and_adjustments(con_v4):
    assert statement_rows(con_v4) == [
        (
            "P1", "One", "one@example.org", 100, 1500, 1400, 1500, 1580, 0, "artist_centric",
            [("DE", "paid", 500, 500, 400), ("FR", "paid", 1000, 900, 1100)],
            -20,
            ADJUSTMENTS,
            None,
        ),
        ("P2", None, None, 3000, 0, 0, 0, 0, 3000, "artist_centric", [], 0, [], "no_payment_details"),
    ]


def test_statement_rows_of_a_month_closed_before_rules_v4_are_user_centric_without_acps(con):
    assert statement_rows(con) == [
        (
            "P1", "One", "one@example.org", 100, 1500, 1400, 0, 1580, 0, "user_centric",
            [("DE", "paid", 500, 500, 0), ("FR", "paid", 1000, 900, 0)],
            -20,
            ADJUSTMENTS,
            None,
        ),
        ("P2", None, None, 3000, 0, 0, 0, 0, 3000, "user_centric", [], 0, [], "no_payment_details"),
    ]


def test_statement_rows_are_the_statement_email_fields_in_order(con_v4):
    """The notification asset builds ``Statement(month, *row)`` from these rows, field by field."""
    from fairstream_pipeline.lib.notifications.statement_email import Statement, render_statement

    payee, name, email, *amounts, lines, adjustment, adjustments, hold_reason = statement_rows(con_v4)[0]
    statement = Statement(
        MONTH, payee, name, email, *amounts, lines=tuple(lines), adjustment_cents=adjustment,
        adjustments=tuple(adjustments), hold_reason=hold_reason,
    )
    assert (statement.earned_cents, statement.acps_cents, statement.payout_model) == (1500, 1500, "artist_centric")
    assert [statement.model_cents(m) for m in ("user_centric", "pro_rata", "artist_centric")] == [1500, 1400, 1500]
    assert "Paid under: artist-centric" in render_statement(statement, 1000, "x").body_text


def test_published_statement_rows_hold_every_statement_with_the_close(con_v4):
    rows = published_statement_rows(con_v4, MONTH, "2024-03-01T09:00:00+00:00", "abc123", "v4")
    closed_at = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    assert len(rows[0]) == len(STATEMENT_COLUMNS)
    assert [(*r[:11], *r[12:]) for r in rows] == [
        (MONTH, "P1", "One", "one@example.org", 100, 1500, -20, 1400, 1580, 0, "v4", "abc123", None, 1500, "artist_centric"),
        (MONTH, "P2", None, None, 3000, 0, 0, 0, 0, 3000, "v4", "abc123", "no_payment_details", 0, "artist_centric"),
        (MONTH, "__suspense__", None, None, 50, 45, 0, 40, 0, 95, "v4", "abc123", None, 45, "artist_centric"),
    ]
    assert {r[11] for r in rows} == {closed_at}


def test_published_statement_rows_of_a_month_closed_before_rules_v4(con):
    rows = published_statement_rows(con, MONTH, "2024-03-01T09:00:00+00:00", "abc123", "v3")
    assert [(*r[:11], *r[12:]) for r in rows] == [
        (MONTH, "P1", "One", "one@example.org", 100, 1500, -20, 1400, 1580, 0, "v3", "abc123", None, 0, "user_centric"),
        (MONTH, "P2", None, None, 3000, 0, 0, 0, 0, 3000, "v3", "abc123", "no_payment_details", 0, "user_centric"),
        (MONTH, "__suspense__", None, None, 50, 40, 0, 40, 0, 90, "v3", "abc123", None, 0, "user_centric"),
    ]


def test_published_lines_are_those_of_payees_with_a_statement(con_v4):
    assert published_line_rows(con_v4, MONTH) == [
        (MONTH, "P1", "DE", "paid", 500, 500, 400),
        (MONTH, "P1", "FR", "paid", 1000, 900, 1100),
        (MONTH, "__suspense__", "FR", "paid", 40, 40, 45),
    ]
    assert len(LINE_COLUMNS) == 7


def test_published_lines_of_a_month_closed_before_rules_v4_have_no_acps(con):
    assert published_line_rows(con, MONTH) == [
        (MONTH, "P1", "DE", "paid", 500, 500, 0),
        (MONTH, "P1", "FR", "paid", 1000, 900, 0),
        (MONTH, "__suspense__", "FR", "paid", 40, 40, 0),
    ]


def test_adjustment_rows(con):
    assert adjustment_rows(con) == [
        ("P1", "2023-12", 10, "late_data"), ("P1", "2024-01", -30, "late_data"), ("P1", "2024-01", 0, "returned_payment")
    ]


def test_statement_row_batches_are_the_statement_rows_in_lists_of_at_most_the_batch_size(con_v4):
    con_v4.execute("INSERT INTO payee_statements VALUES ('P0', 0, 5, 0, 5, 0, 5, NULL, 5, 'pro_rata')")
    rows = statement_rows(con_v4)
    assert [r[0] for r in rows] == ["P0", "P1", "P2"]
    assert list(statement_row_batches(con_v4, 2)) == [rows[:2], rows[2:]]
    assert list(statement_row_batches(con_v4, 3)) == [rows]


def test_rendered_messages_are_read_back_in_batches_as_written(tmp_path):
    """The Parquet file is written by payee (``statement_build``): read back in that order, the
    columns asked for in the order asked, in batches of at most ``batch_rows``."""
    lake = Lake(tmp_path / "warehouse")
    with lake.write_partition("statement_notifications", MONTH) as out:
        with pq.ParquetWriter(out.file(), pa.schema([("subject", pa.string()), ("payee_id", pa.string())])) as writer:
            writer.write_table(pa.table({"subject": ["one", "two"], "payee_id": ["P1", "P2"]}))
            writer.write_table(pa.table({"subject": ["three"], "payee_id": ["P3"]}))
    batches = list(rendered_message_batches(lake, MONTH, batch_rows=2, columns=("payee_id", "subject")))
    assert [b.schema.names for b in batches] == [["payee_id", "subject"]] * 2
    assert [b.to_pylist() for b in batches] == [
        [{"payee_id": "P1", "subject": "one"}, {"payee_id": "P2", "subject": "two"}],
        [{"payee_id": "P3", "subject": "three"}],
    ]

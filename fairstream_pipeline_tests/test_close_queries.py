"""Where a month's opening balances come from (one rule for the statements and their check), and
what the close records as paid."""

from __future__ import annotations

import duckdb
import pytest

from fairstream_pipeline.lib.close.draft import draft_statements
from fairstream_pipeline.lib.close.ledger import attach_previous_statements, opening_month
from fairstream_pipeline.lib.close.month_checks import statements_finding
from fairstream_pipeline.lib.close.period_close import statement_payments
from fairstream_pipeline.lib.lake.storage import Lake, MissingPartitionError
from fairstream_pipeline.lib.lake.tables import publish_month
from fairstream_pipeline.lib.payouts.rules import PayoutRules

FIRST, SECOND = "2024-01", "2024-02"
MISSING_JANUARY = (
    "payee_statements for 2024-01 is missing, so 2024-02 has no opening balances: "
    "materialize 2024-01 first (backfills run months in order)."
)


def _publish(lake: Lake, month: str, table: str, query: str, **manifest) -> None:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE {table} AS {query}")
    publish_month(con, lake, month, [table], manifest)


def _statements(rows: str) -> str:
    return (
        f"SELECT * FROM (VALUES {rows}) t(payee_id, opening_balance_cents, earned_cents, adjustment_cents, "
        "pro_rata_cents, paid_cents, closing_balance_cents)"
    )


@pytest.fixture
def lake(tmp_path) -> Lake:
    """February's earnings, statements and adjustments; January has nothing yet."""
    lake = Lake(tmp_path / "warehouse")
    _publish(
        lake, SECOND, "payee_earnings",
        "SELECT 'FR' AS country, 'paid' AS tier, 'P1' AS payee_id, 500::BIGINT AS uc_cents, 400::BIGINT AS pr_cents",
    )
    _publish(
        lake, SECOND, "payee_statements", _statements("('P1', 800::BIGINT, 500::BIGINT, 0::BIGINT, 400::BIGINT, 1300::BIGINT, 0::BIGINT)"),
        rules=PayoutRules().as_dict(),
    )
    _publish(
        lake, SECOND, "payee_adjustments",
        "SELECT NULL::VARCHAR AS payee_id, NULL::VARCHAR AS source_month, NULL::BIGINT AS cents WHERE false",
    )
    return lake


def test_opening_month():
    assert opening_month(FIRST, FIRST) is None
    assert opening_month(FIRST, SECOND) == FIRST
    assert opening_month(FIRST, "2025-01") == "2024-12"


def test_the_first_month_opens_from_zero_balances(lake):
    con = duckdb.connect()
    assert attach_previous_statements(con, lake, FIRST, FIRST) is None
    assert con.execute("DESCRIBE previous_statements").fetchall() == [
        ("payee_id", "VARCHAR", "YES", None, None, None),
        ("closing_balance_cents", "BIGINT", "YES", None, None, None),
    ]
    assert con.execute("SELECT count(*) FROM previous_statements").fetchall() == [(0,)]


def test_a_later_month_opens_from_the_previous_statements(lake):
    _publish(lake, FIRST, "payee_statements", _statements("('P1', 0::BIGINT, 800::BIGINT, 0::BIGINT, 800::BIGINT, 0::BIGINT, 800::BIGINT)"))
    con = duckdb.connect()
    assert attach_previous_statements(con, lake, FIRST, SECOND) == FIRST
    assert con.execute("SELECT payee_id, closing_balance_cents FROM previous_statements").fetchall() == [("P1", 800)]
    # ... and the check finds February's statements consistent with January's closing balances.
    finding = statements_finding(duckdb.connect(), lake, FIRST, SECOND)
    assert (finding.checked, finding.problems) == (1, [])


def test_the_statements_and_their_check_refuse_a_month_without_previous_statements(lake):
    with pytest.raises(MissingPartitionError) as direct:
        attach_previous_statements(duckdb.connect(), lake, FIRST, SECOND)
    with pytest.raises(MissingPartitionError) as asset:
        draft_statements(duckdb.connect(), lake, FIRST, SECOND, PayoutRules())
    with pytest.raises(MissingPartitionError) as check:
        statements_finding(duckdb.connect(), lake, FIRST, SECOND)
    assert str(direct.value) == str(asset.value) == str(check.value) == MISSING_JANUARY
    # With February as the first month, the check needs no January: it opens from zero, and then
    # P1's opening of 800 has no closing balance behind it.
    finding = statements_finding(duckdb.connect(), lake, SECOND, SECOND)
    assert finding.problems == [("P1", "opening differs from last closing")]


def test_statement_payments():
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE payee_statements AS "
        + _statements(
            "('P1', 0::BIGINT, 1300::BIGINT, 0::BIGINT, 0::BIGINT, 1300::BIGINT, 0::BIGINT), "
            "('P2', 0, 700, 0, 0, 0, 700), ('P3', 0, 2000, 0, 0, 2000, 0), ('__suspense__', 0, 90, 0, 0, 0, 90)"
        )
    )
    assert statement_payments(con) == (2, 3300)
    con.execute("DELETE FROM payee_statements")
    assert statement_payments(con) == (0, 0)

"""The blocking money checks catch corrupted money and stop it from moving downstream."""

import duckdb
import pytest

from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.payouts.checks import statements_balance
from fairstream_pipeline_tests.payout_cases import MonthCase, Plays

MONTH = "2024-01"
CONFIG = {"resources": {"payout_rules": {"config": {"royalty_share_ppm": 1_000_000}}}}


@pytest.fixture
def computed_month(landing, materialize_month, tmp_path, monkeypatch):
    """A computed month left open (a draft), so that its statements could still be rewritten."""
    monkeypatch.setenv("FAIRSTREAM_AUTO_CLOSE", "false")
    MonthCase(
        [("U1", "premium", "FR", 1000), ("U2", "premium", "FR", 1000), ("F", "free", "FR", 0)],
        [Plays("U1", "X", 3), Plays("U2", "Y", 1), Plays("F", "X", 2)],
        ad_revenue=[("FR", 500)],
    ).write(landing, MONTH)
    assert materialize_month(MONTH, run_config=CONFIG).success
    return Lake(tmp_path / "warehouse")


def _rewrite(lake: Lake, asset: str, select: str) -> None:
    """Replace the month's file of ``asset`` by ``select`` over it (a corrupted intermediate)."""
    path = lake.partition_dir(asset, MONTH) / "part-00000.parquet"
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_parquet('{path}', hive_partitioning = false)")
    con.execute(f"COPY ({select}) TO '{path}' (FORMAT parquet)")


def _checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def _materialized(result) -> set[str]:
    return {e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_inflated_track_earnings_are_caught_and_statements_are_not_written(computed_month, materialize_month):
    statements_before = (computed_month.partition_dir("payee_statements", MONTH) / "part-00000.parquet").read_bytes()
    # Someone doubles track X's user-centric money in the intermediate table.
    _rewrite(
        computed_month,
        "track_earnings",
        "SELECT * REPLACE (CASE WHEN track_id = 'X' THEN uc_pico * 2 ELSE uc_pico END AS uc_pico) FROM t",
    )
    result = materialize_month(
        MONTH, selection="key:payee_earnings or key:payee_statements or key:payee_adjustments", run_config=CONFIG
    )

    assert not result.success
    assert _checks(result) == {
        "uc_cents_reconcile_per_segment": False,
        "pr_cents_reconcile_per_segment": True,
        "acps_cents_reconcile_per_segment": True,
        "no_negative_earnings": True,
        "model_totals_equal_target": False,
        "suspense_share": True,
    }
    assert _materialized(result) == {"payee_earnings"}
    failed_steps = {e.step_key for e in result.all_events if e.is_step_failure}
    assert failed_steps == {"payee_earnings_money_checks"}
    # The statements on disk are still the good ones.
    after = (computed_month.partition_dir("payee_statements", MONTH) / "part-00000.parquet").read_bytes()
    assert after == statements_before


def test_a_tampered_segment_target_is_caught_against_the_inputs(computed_month, materialize_month):
    _rewrite(
        computed_month,
        "segment_pools",
        "SELECT * REPLACE (CASE WHEN tier = 'paid' THEN target_cents + 7 ELSE target_cents END AS target_cents) FROM t",
    )
    result = materialize_month(MONTH, selection="key:payee_earnings", run_config=CONFIG)
    assert not result.success
    checks = _checks(result)
    assert checks["uc_cents_reconcile_per_segment"] is False
    assert checks["pr_cents_reconcile_per_segment"] is False


def test_statements_balance_names_each_kind_of_broken_statement():
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE payee_earnings AS SELECT * FROM (VALUES
               ('FR', 'paid', 'A', 500::BIGINT, 400::BIGINT, 300::BIGINT),
               ('FR', 'paid', 'B', 2000, 2100, 2000),
               ('FR', 'paid', '__suspense__', 1500, 1500, 1500),
               ('FR', 'paid', 'D', 10, 10, 10),
               ('FR', 'paid', 'J', 1500, 1500, 1500),
               ('FR', 'paid', 'K', 1200, 1200, 1200),
               ('FR', 'paid', 'L', 10, 10, 10),
               ('FR', 'paid', 'M', 20, 10, 30)) t(country, tier, payee_id, uc_cents, pr_cents, acps_cents)"""
    )
    con.execute(
        """CREATE TABLE previous_statements AS SELECT * FROM (VALUES ('A', 300::BIGINT), ('E', 50))
           t(payee_id, closing_balance_cents)"""
    )
    con.execute(
        """CREATE TABLE payee_adjustments AS SELECT * FROM (VALUES
               ('F', '2023-11', -700::BIGINT), ('G', '2023-11', 300), ('H', '2023-10', 5))
           t(payee_id, source_month, cents)"""
    )
    con.execute(
        """CREATE TABLE payee_statements AS SELECT * FROM (VALUES
               ('A', 300::BIGINT, 500::BIGINT, 0::BIGINT, 400::BIGINT, 0::BIGINT, 801::BIGINT, NULL::VARCHAR),
               ('B', 0, 2000, 0, 2100, 1000, 1000, NULL),
               ('D', 0, 11, 0, 10, 0, 11, NULL),
               ('F', 0, 0, -700, 0, 0, -700, NULL),
               ('G', 0, 0, 200, 0, 0, 200, NULL),
               ('J', 0, 1500, 0, 1500, 0, 1500, NULL),
               ('K', 0, 1200, 0, 1200, 1200, 0, 'no_payment_details'),
               ('L', 0, 10, 0, 10, 0, 10, 'vacation'),
               ('M', 0, 20, 0, 10, 0, 20, NULL),
               ('__suspense__', 0, 1500, 0, 1500, 1500, 0, NULL))
           t(payee_id, opening_balance_cents, earned_cents, adjustment_cents, pro_rata_cents, paid_cents,
             closing_balance_cents, hold_reason)"""
    )
    # The month pays user-centric; M's ACPS figure on its statement is not its payee_earnings'.
    con.execute("ALTER TABLE payee_statements ADD COLUMN payout_model VARCHAR DEFAULT 'user_centric'")
    con.execute(
        "ALTER TABLE payee_statements ADD COLUMN acps_cents BIGINT; "
        "UPDATE payee_statements s SET acps_cents = e.acps_cents FROM payee_earnings e WHERE e.payee_id = s.payee_id; "
        "UPDATE payee_statements SET acps_cents = coalesce(acps_cents, 0); "
        "UPDATE payee_statements SET acps_cents = 31 WHERE payee_id = 'M'"
    )
    finding = statements_balance(con, threshold_cents=1000)
    assert finding.checked == 10
    assert finding.problems == [
        ("A", "opening + earned + adjustment - paid <> closing"),
        ("B", "a payment must be the whole balance and reach the threshold"),
        ("D", "earned differs from payee_earnings"),
        ("G", "adjustment differs from payee_adjustments"),
        ("J", "a balance at or over the threshold was not paid"),
        ("K", "a hold_reason on a payee who was paid or not due a payment"),
        ("L", "unknown hold_reason vacation"),
        ("M", "acps differs from payee_earnings"),
        ("__suspense__", "a special payee was paid"),
        ("E", "payee has earnings, an adjustment or a balance but no statement"),
        ("H", "payee has earnings, an adjustment or a balance but no statement"),
    ]
    # F's negative closing balance (a clawback carried over) is not a problem.


def test_statements_balance_holds_exactly_who_the_payment_details_hold():
    """Rule 10: with payment details, a payee due a payment is paid only when payable, and held with
    exactly the reason the details give; without them (standing False) nobody may be held."""
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE payee_earnings AS SELECT 'FR' AS country, 'paid' AS tier, payee_id, 2000::BIGINT AS uc_cents,
                  2000::BIGINT AS pr_cents, 0::BIGINT AS acps_cents
           FROM (VALUES ('OK'), ('PAID_NO_ROW'), ('WRONG'), ('HELD_OK'), ('SMALL')) t(payee_id)
           WHERE payee_id <> 'SMALL' UNION ALL SELECT 'FR', 'paid', 'SMALL', 10, 10, 0"""
    )
    con.execute("CREATE TABLE previous_statements (payee_id VARCHAR, closing_balance_cents BIGINT)")
    con.execute("CREATE TABLE payee_adjustments (payee_id VARCHAR, source_month VARCHAR, cents BIGINT)")
    con.execute(
        """CREATE TABLE payee_statements AS SELECT * FROM (VALUES
               ('OK', 0::BIGINT, 2000::BIGINT, 0::BIGINT, 2000::BIGINT, 2000::BIGINT, 0::BIGINT, NULL::VARCHAR),
               ('PAID_NO_ROW', 0, 2000, 0, 2000, 2000, 0, NULL),
               ('WRONG', 0, 2000, 0, 2000, 0, 2000, 'returned_payment'),
               ('HELD_OK', 0, 2000, 0, 2000, 0, 2000, 'invalid_payment_details'),
               ('SMALL', 0, 10, 0, 10, 0, 10, NULL))
           t(payee_id, opening_balance_cents, earned_cents, adjustment_cents, pro_rata_cents, paid_cents,
             closing_balance_cents, hold_reason)"""
    )
    con.execute("ALTER TABLE payee_statements ADD COLUMN acps_cents BIGINT DEFAULT 0")
    con.execute("ALTER TABLE payee_statements ADD COLUMN payout_model VARCHAR DEFAULT 'user_centric'")
    con.execute(
        """CREATE VIEW payment_standing AS SELECT * FROM (VALUES
               ('OK', NULL::VARCHAR), ('WRONG', 'invalid_payment_details'), ('HELD_OK', 'invalid_payment_details'),
               ('SMALL', 'invalid_payment_details')) t(payee_id, hold_reason)"""
    )
    assert statements_balance(con, threshold_cents=1000, standing=True).problems == [
        ("PAID_NO_ROW", "hold_reason null but the payment details say no_payment_details"),
        ("WRONG", "hold_reason returned_payment but the payment details say invalid_payment_details"),
    ]
    assert statements_balance(con, threshold_cents=1000, standing=False).problems == [
        ("HELD_OK", "hold_reason invalid_payment_details but the payment details say payable"),
        ("WRONG", "hold_reason returned_payment but the payment details say payable"),
    ]
    assert statements_balance(con, threshold_cents=1000, standing=None).problems == []


def test_statements_balance_checks_earned_against_the_paying_model():
    """Earned is the cents of the statement's payout_model; one month has one model."""
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE payee_earnings AS SELECT * FROM (VALUES
               ('FR', 'paid', 'P', 1386::BIGINT, 1286::BIGINT, 2286::BIGINT),
               ('FR', 'paid', 'Q', 900, 643, 714),
               ('FR', 'paid', 'N', 714, 1071, 0)) t(country, tier, payee_id, uc_cents, pr_cents, acps_cents)"""
    )
    con.execute("CREATE TABLE previous_statements (payee_id VARCHAR, closing_balance_cents BIGINT)")
    con.execute("CREATE TABLE payee_adjustments (payee_id VARCHAR, source_month VARCHAR, cents BIGINT)")
    con.execute(
        """CREATE TABLE payee_statements AS SELECT * FROM (VALUES
               ('N', 0::BIGINT, 0::BIGINT, 0::BIGINT, 1071::BIGINT, 0::BIGINT, 0::BIGINT, NULL::VARCHAR, 0::BIGINT,
                'artist_centric'),
               ('P', 0, 2286, 0, 1286, 2286, 0, NULL, 2286, 'artist_centric'),
               ('Q', 0, 900, 0, 643, 0, 900, NULL, 714, 'artist_centric'))
           t(payee_id, opening_balance_cents, earned_cents, adjustment_cents, pro_rata_cents, paid_cents,
             closing_balance_cents, hold_reason, acps_cents, payout_model)"""
    )
    assert statements_balance(con, threshold_cents=1000).problems == [
        ("Q", "earned differs from payee_earnings"),  # Q's user-centric cents, under artist_centric
    ]
    con.execute("UPDATE payee_statements SET earned_cents = 714, closing_balance_cents = 714 WHERE payee_id = 'Q'")
    assert statements_balance(con, threshold_cents=1000).problems == []
    con.execute("UPDATE payee_statements SET payout_model = 'pro_rata', earned_cents = 643, "
                "closing_balance_cents = 643 WHERE payee_id = 'Q'")
    assert statements_balance(con, threshold_cents=1000).problems == [
        (payee, "two payout models in one month") for payee in ("N", "P", "Q")
    ]

"""Period close through the real `dagster` CLI: worked case C10 and the empty month (docs/payout-rules.md)."""

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline_tests.landing_builders import Landing
from fairstream_pipeline_tests.payout_cases import MonthCase, Plays
from fairstream_pipeline_tests.test_cli_end_to_end import embedded_home, materialize, project_env

pytestmark = pytest.mark.e2e

JAN, FEB, MAR, APR = "2024-01", "2024-02", "2024-03", "2024-04"
C10_CONFIG = json.dumps(
    {
        "resources": {"payout_rules": {"config": {"royalty_share_ppm": 1_000_000, "payout_threshold_cents": 1000}}},
    }
)


def c10_month(u1_cents: int) -> MonthCase:
    """U1 pays ``u1_cents`` and plays X once; U2 pays 600 and plays Y once; all premium in FR."""
    return MonthCase(
        [("U1", "premium", "FR", u1_cents), ("U2", "premium", "FR", 600)], [Plays("U1", "X", 1), Plays("U2", "Y", 1)]
    )


@pytest.fixture
def c10(tmp_path):
    landing = Landing(tmp_path / "landing")
    env = project_env(landing.root, tmp_path / "warehouse", embedded_home(tmp_path / "home"))
    env["FAIRSTREAM_FIRST_MONTH"] = JAN
    lake = Lake(tmp_path / "warehouse")

    def run(month: str):
        result = materialize(env, month, "*", "--config-json", C10_CONFIG)
        assert result.returncode == 0, result.stderr[-4000:]
        return result

    return landing, lake, run, env


def statements(lake: Lake, month: str) -> dict[str, tuple[int, int, int, int]]:
    """payee -> (earned, adjustment, paid, closing)"""
    rows = duckdb.sql(
        f"""SELECT payee_id, earned_cents, adjustment_cents, paid_cents, closing_balance_cents
            FROM {read_parquet(lake.parquet_glob('payee_statements', month))} ORDER BY payee_id"""
    ).fetchall()
    return {payee: tuple(amounts) for payee, *amounts in rows}


def earned(lake: Lake, month: str) -> dict[str, int]:
    rows = duckdb.sql(
        f"SELECT payee_id, sum(uc_cents)::BIGINT FROM {read_parquet(lake.parquet_glob('payee_earnings', month))} "
        "GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return dict(rows)


def adjustments(lake: Lake, month: str) -> list[tuple]:
    return duckdb.sql(
        f"SELECT payee_id, source_month, cents FROM {read_parquet(lake.parquet_glob('payee_adjustments', month))} "
        "ORDER BY ALL"
    ).fetchall()


def closed_bytes(lake: Lake, month: str) -> dict[str, bytes]:
    return {
        asset: (lake.partition_dir(asset, month) / "part-00000.parquet").read_bytes()
        for asset in ("payee_statements", "payee_adjustments", "period_close")
    }


def test_c10_late_data_after_close_posts_adjustments_once(c10):
    landing, lake, run, env = c10
    for month in (JAN, FEB):
        c10_month(2000).write(landing, month)
        run(month)
    assert statements(lake, JAN) == {"X": (2000, 0, 2000, 0), "Y": (600, 0, 0, 600)}
    assert statements(lake, FEB) == {"X": (2000, 0, 2000, 0), "Y": (600, 0, 1200, 0)}
    assert lake.manifest("period_close", JAN)["closed_by_run"]
    january_as_closed = closed_bytes(lake, JAN)

    # A late file for 2024-01-15: U1 also played Y three times in January.
    landing.events(
        "2024-01-15",
        [(f"late-{i}", "U1", "Y", f"2024-01-15 10:0{i}", 60_000) for i in range(3)],
        name="late.parquet",
    )
    restated = run(JAN)
    closed_at = lake.manifest("period_close", JAN)["closed_at"]
    assert f"2024-01 is closed (at {closed_at}); changes post as adjustments to 2024-03" in restated.stderr
    assert closed_bytes(lake, JAN) == january_as_closed
    assert earned(lake, JAN) == {"X": 500, "Y": 2100}
    restating_run = lake.manifest("payee_earnings", JAN)["run_id"]
    assert restating_run in restated.stderr

    c10_month(1000).write(landing, MAR)
    run(MAR)
    assert statements(lake, MAR) == {"X": (1000, -1500, 0, -500), "Y": (600, 1500, 2100, 0)}
    assert adjustments(lake, MAR) == [("X", JAN, -1500), ("Y", JAN, 1500)]
    (audit,) = lake.manifest("payee_adjustments", MAR)["restatements"]
    assert audit["source_month"] == JAN and audit["restated_by_run"] == restating_run
    assert [(f["path"], f["change"]) for f in audit["changed_files"]] == [
        ("listening_events/date=2024-01-15/late.parquet", "added")
    ]

    # January again, with no new data: nothing changes, and April posts nothing for it.
    run(JAN)
    assert closed_bytes(lake, JAN) == january_as_closed
    c10_month(2000).write(landing, APR)
    run(APR)
    assert statements(lake, APR) == {"X": (2000, 0, 1500, 0), "Y": (600, 0, 0, 600)}
    assert adjustments(lake, APR) == []

    summary = subprocess.run(
        [str(Path(sys.executable).parent / "fairstream"), "summary", JAN, MAR], env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert summary.returncode == 0, summary.stderr
    assert f"== {JAN} (closed at {closed_at} by run " in summary.stdout
    assert "changes post to 2024-05" in summary.stdout
    assert "adjustments for 2024-01: 2 payees, net 0.00 EUR (late data for 2024-01)" in summary.stdout
    assert "carried over -5.00 EUR (1 negative)" in summary.stdout

    # Ledger: per payee, the months' earned + adjustments equal the final restated earnings.
    for payee in ("X", "Y"):
        posted = sum(statements(lake, m)[payee][0] + statements(lake, m)[payee][1] for m in (JAN, FEB, MAR, APR))
        assert posted == sum(earned(lake, m)[payee] for m in (JAN, FEB, MAR, APR))


def test_an_empty_month_fails_its_blocking_check_and_stays_open(tmp_path):
    landing = Landing(tmp_path / "landing")
    MonthCase([("U1", "premium", "FR", 2000), ("U2", "premium", "FR", 600)], [], ad_revenue=[("FR", 300)]).write(
        landing, JAN
    )
    assert not list((landing.root / "listening_events").rglob("*.parquet"))
    assert len(list((landing.root / "listening_events").rglob("_SUCCESS"))) == 31
    env = project_env(landing.root, tmp_path / "warehouse", embedded_home(tmp_path / "home"))
    env["FAIRSTREAM_FIRST_MONTH"] = JAN
    result = materialize(env, JAN, "*", "--config-json", C10_CONFIG)
    assert result.returncode != 0
    assert "Asset check 'month_has_counted_streams' on 'segment_pools' did not pass" in result.stderr
    assert (
        "2024-01 has revenue (subscriptions 26.00 EUR from 2 paying users, ad revenue 3.00 EUR) but 0 counted streams"
        in result.stderr
    )
    lake = Lake(tmp_path / "warehouse")
    assert not lake.exists("payee_earnings", JAN)
    assert not lake.exists("period_close", JAN)

"""End to end: the real `dagster` CLI in a subprocess over generated sample months."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from fairstream_pipeline.lib.ingestion.user_buckets import MIN_AUTO_BUCKETS
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.settings import Settings
from fairstream_pipeline.sample import generate_month
from fairstream_pipeline_tests.conftest import TEST_SETTINGS

MONTHS = ("2026-09", "2026-10")
DAGSTER = str(Path(sys.executable).parent / "dagster")
BLOCKING_CHECKS = (
    ("clean_plays_rows_accounted_for", "clean_plays"),
    ("uc_cents_reconcile_per_segment", "payee_earnings"),
    ("pr_cents_reconcile_per_segment", "payee_earnings"),
    ("no_negative_earnings", "payee_earnings"),
    ("acps_cents_reconcile_per_segment", "payee_earnings"),
    ("model_totals_equal_target", "payee_earnings"),
    ("statements_balance_check", "payee_statements"),
)


@pytest.fixture(scope="module")
def sample_landing(tmp_path_factory) -> tuple[Path, dict]:
    landing = tmp_path_factory.mktemp("landing")
    summaries = {m: generate_month(landing, m, users=400, seed=11).to_dict() for m in MONTHS}
    return landing, summaries


def project_env(landing: Path, warehouse: Path, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAIRSTREAM_", "DAGSTER_"))}
    env.update(
        FAIRSTREAM_FIRST_MONTH=MONTHS[0],
        FAIRSTREAM_LANDING_DIR=str(landing),
        FAIRSTREAM_WAREHOUSE_DIR=str(warehouse),
        FAIRSTREAM_DUCKDB_MEMORY_LIMIT="1GB",
        DAGSTER_HOME=str(home),
        **TEST_SETTINGS,
        **extra,
    )
    return env


def materialize(env: dict, month: str, select: str = "*", *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DAGSTER, "asset", "materialize", "-m", "fairstream_pipeline.definitions",
         "--select", select, "--partition", month, *extra],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=600,
    )


def embedded_home(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return path


@pytest.fixture(scope="module")
def two_months(sample_landing, tmp_path_factory):
    """Both sample months materialized, in order, by the real CLI with an embedded instance and the
    default number of user buckets."""
    landing, summaries = sample_landing
    root = tmp_path_factory.mktemp("cli")
    env = project_env(landing, root / "warehouse", embedded_home(root / "home"))
    del env["FAIRSTREAM_USER_BUCKETS"]
    runs = {m: materialize(env, m, "*") for m in MONTHS}
    return env, Lake(root / "warehouse"), summaries, runs


def test_both_months_succeed_and_every_blocking_check_passes(two_months):
    _, lake, _, runs = two_months
    for month, run in runs.items():
        assert run.returncode == 0, run.stderr[-3000:]
        for check, asset in BLOCKING_CHECKS:
            assert f"Asset check '{check}' on '{asset}' passed" in run.stderr, (month, check)
        assert "RUN_SUCCESS" in run.stderr
        # The default B, chosen from the month's size: a small month gets the floor of 8 buckets,
        # one allocation step per bucket.
        assert Settings.model_fields["user_buckets"].default is None
        assert lake.manifest("clean_plays", month)["user_buckets"] == MIN_AUTO_BUCKETS == 8
        assert "count_and_allocate.allocate_user_bucket[bucket_7]" in run.stderr
        assert "count_and_allocate.allocate_user_bucket[bucket_8]" not in run.stderr


def test_ingestion_finds_exactly_the_anomalies_the_generator_injected(two_months):
    _, lake, summaries, _ = two_months
    for month, s in summaries.items():
        manifest = lake.manifest("clean_plays", month)
        assert manifest["rows_read"] == s["rows_written"]
        assert manifest["clean_plays"] == s["expected_clean_plays"]
        assert manifest["duplicates_dropped"] == s["exact_duplicates"]
        assert manifest["quarantined"] == {
            "invalid_row": s["invalid_rows"],
            "outside_partition": s["outside_partition"],
            "conflicting_duplicate": s["conflicting_duplicate_rows"],
            "unknown_user": s["unknown_user_events"],
        }
        assert lake.row_count("flagged_users", month) == len(s["bot_user_ids"])


def test_october_opens_with_september_closing_balances(two_months):
    _, lake, _, _ = two_months
    sept = lake.parquet_glob("payee_statements", "2026-09")
    octo = lake.parquet_glob("payee_statements", "2026-10")
    mismatches, carried, paid_in_october = duckdb.sql(
        f"""SELECT count(*) FILTER (WHERE coalesce(o.opening_balance_cents, 0) <> coalesce(s.closing_balance_cents, 0)),
                   coalesce(sum(s.closing_balance_cents), 0),
                   count(*) FILTER (WHERE s.closing_balance_cents > 0 AND o.paid_cents > 0)
            FROM read_parquet('{sept}', hive_partitioning = false) s
            FULL OUTER JOIN read_parquet('{octo}', hive_partitioning = false) o USING (payee_id)"""
    ).fetchall()[0]
    assert mismatches == 0
    assert carried > 0  # some payees stayed under the threshold in September...
    assert paid_in_october > 0  # ...and some of them crossed it in October


def test_a_corrupted_intermediate_is_stopped_by_the_blocking_check(two_months, tmp_path):
    env, lake, _, _ = two_months
    month = MONTHS[1]
    statements = lake.partition_dir("payee_statements", month) / "part-00000.parquet"
    before = statements.read_bytes()
    track_earnings = lake.partition_dir("track_earnings", month) / "part-00000.parquet"
    good = tmp_path / "track_earnings.parquet"
    shutil.copy(track_earnings, good)
    try:
        duckdb.sql(
            f"""COPY (SELECT * REPLACE (uc_pico * 3 AS uc_pico)
                      FROM read_parquet('{good}', hive_partitioning = false))
                TO '{track_earnings}' (FORMAT parquet)"""
        )
        run = materialize(env, month, "payee_earnings+")
    finally:
        shutil.copy(good, track_earnings)
    assert run.returncode != 0
    assert "Asset check 'uc_cents_reconcile_per_segment' on 'payee_earnings' did not pass" in run.stderr
    assert 'Dependencies for step roll_statements failed' in run.stderr
    assert statements.read_bytes() == before


def test_a_month_whose_previous_statements_are_missing_fails_naming_that_month(sample_landing, tmp_path):
    landing, _ = sample_landing
    env = project_env(landing, tmp_path / "warehouse", embedded_home(tmp_path / "home"))
    run = materialize(env, MONTHS[1], "*")
    assert run.returncode != 0
    assert "payee_statements for 2026-09 is missing, so 2026-10 has no opening balances" in run.stderr

"""The deployment instance (top-level dagster.yaml) keeps the operational settings we rely on."""

from pathlib import Path

import dagster as dg
import pytest
import yaml

DAGSTER_YAML = Path(__file__).resolve().parents[1] / "dagster.yaml"


@pytest.fixture(scope="module")
def settings() -> dict:
    return yaml.safe_load(DAGSTER_YAML.read_text())


def test_storage_is_postgres_from_the_environment_with_the_psycopg2_scheme(settings):
    db = settings["storage"]["postgres"]["postgres_db"]
    assert db["scheme"] == "postgresql+psycopg2"
    assert {k: v for k, v in db.items() if k != "scheme"} == {
        "hostname": {"env": "FAIRSTREAM_PG_HOST"},
        "port": {"env": "FAIRSTREAM_PG_PORT"},
        "username": {"env": "FAIRSTREAM_PG_USER"},
        "password": {"env": "FAIRSTREAM_PG_PASSWORD"},
        "db_name": {"env": "FAIRSTREAM_PG_DB"},
    }


def test_run_retries_retry_crashed_workers_but_never_a_failed_check(settings):
    assert settings["run_retries"]["enabled"] is True
    assert 1 <= settings["run_retries"]["max_retries"] <= 3
    assert settings["run_retries"]["retry_on_asset_or_op_failure"] is False


def test_run_monitoring_frees_slots_and_stops_hung_runs(settings):
    monitoring = settings["run_monitoring"]
    assert monitoring["enabled"] is True
    # a month re-launched after its run died in a pooled step waits at most about a minute for the slot
    assert 0 < monitoring["free_slots_after_run_end_seconds"] <= 60
    assert monitoring["poll_interval_seconds"] <= 60
    assert 0 < monitoring["max_runtime_seconds"] <= 6 * 3600


def test_concurrency_one_run_per_month_one_heavy_step_and_a_run_cap(settings):
    runs = settings["concurrency"]["runs"]
    assert 1 <= runs["max_concurrent_runs"] <= 8
    limits = {limit["key"]: limit for limit in runs["tag_concurrency_limits"]}
    assert limits["dagster/partition"] == {
        "key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1
    }
    assert limits["dagster/backfill"]["limit"] == 1
    assert settings["concurrency"]["pools"]["default_limit"] == 1  # 2 cores: one heavy DuckDB step


def test_housekeeping_and_telemetry(settings):
    assert settings["retention"]["schedule"]["purge_after_days"] > 0
    assert settings["retention"]["sensor"]["purge_after_days"]["skipped"] <= 30
    assert settings["telemetry"] == {"enabled": False}


def test_dagster_accepts_the_file(tmp_path, postgres_instance_env):
    """Dagster itself validates the file against a real PostgreSQL: a wrong key fails here."""
    (tmp_path / "dagster.yaml").write_text(DAGSTER_YAML.read_text())
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    try:
        assert instance.run_retries_enabled
        assert instance.run_retries_max_retries == 2
        assert not instance.run_retries_retry_on_asset_or_op_failure
        assert instance.run_monitoring_enabled
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    finally:
        instance.dispose()

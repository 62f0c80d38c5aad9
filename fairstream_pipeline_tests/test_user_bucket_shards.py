"""A month sharded into user buckets through Dagster: the same bytes for B = 1, 3 and 16, and every
shard records what it did."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from fairstream_pipeline.defs.resources import (
    AppDatabaseResource,
    DuckDBEngine,
    LandingZoneResource,
    PayoutRulesResource,
    WarehouseResource,
)
from fairstream_pipeline.lib.lake import Lake
from fairstream_pipeline.lib.sample_data import generate_month
from fairstream_pipeline_tests.conftest import step_failure_messages

MONTH = "2024-01"  # the first month (FAIRSTREAM_FIRST_MONTH default): it opens with zero balances
TABLES = ("user_streams", "flagged_users", "segment_pools", "track_earnings", "payee_earnings", "payee_statements")
SHARD_STEP = "count_and_allocate.allocate_user_bucket"


@pytest.fixture(scope="module")
def landing_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bucket_landing")
    generate_month(root, MONTH, users=150, seed=3, events=30_000)
    return root


def bucket_config(buckets: int) -> dict:
    """The run config choosing ``buckets`` for this run only."""
    return {"ops": {"count_and_allocate": {"ops": {"plan_user_buckets": {"config": {"buckets": buckets}}}}}}


def materialize(definitions, landing_root: Path, warehouse: Path, buckets: int, monkeypatch) -> dg.ExecuteInProcessResult:
    """B = 3 through FAIRSTREAM_USER_BUCKETS, any other B through the run config."""
    if buckets == 3:
        monkeypatch.setenv("FAIRSTREAM_USER_BUCKETS", "3")
        run_config = None
    else:
        monkeypatch.delenv("FAIRSTREAM_USER_BUCKETS", raising=False)
        run_config = bucket_config(buckets)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        assets=[*definitions.assets, *definitions.asset_checks],
        partition_key=MONTH,
        resources={
            "landing_zone": LandingZoneResource(root=str(landing_root)),
            "warehouse": WarehouseResource(root=str(warehouse)),
            "duckdb": DuckDBEngine(memory_limit="1GB", threads=2, temp_directory=str(warehouse.parent / "spill")),
            "payout_rules": PayoutRulesResource(),
            "app_database": AppDatabaseResource(),
        },
        raise_on_error=False,
        instance=instance,
        run_config=run_config,
    )
    assert result.success, [e.message for e in result.all_events if e.is_step_failure]
    return result


def shard_records(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {
        event.step_key: event.event_specific_data.metadata
        for event in result.all_events
        if event.event_type_value == "STEP_OUTPUT" and (event.step_key or "").startswith(SHARD_STEP)
    }


def test_one_three_or_sixteen_buckets_give_byte_identical_months(definitions, landing_root, tmp_path, monkeypatch):
    hashes, records = {}, {}
    for buckets in (1, 3, 16):
        warehouse = tmp_path / f"warehouse-{buckets}"
        result = materialize(definitions, landing_root, warehouse, buckets, monkeypatch)
        lake = Lake(warehouse)
        hashes[buckets] = {table: lake.content_hash(table, MONTH) for table in TABLES}
        records[buckets] = shard_records(result)
        assert lake.manifest("user_streams", MONTH)["user_buckets"] == buckets
        assert not (warehouse / "_shards" / f"month={MONTH}").exists() or not any(
            (warehouse / "_shards" / f"month={MONTH}").iterdir()
        ), "the merge leaves no shard folder behind"
    assert hashes[3] == hashes[1]
    assert hashes[16] == hashes[1]

    # Every bucket ran as its own step and recorded its users, streams and memory; together they
    # hold every billed user and every counted stream exactly once.
    lake = Lake(tmp_path / "warehouse-1")
    users, streams = duckdb.sql(
        f"SELECT count(*), sum(streams) FROM read_parquet('{lake.parquet_glob('user_streams', MONTH)}')"
    ).fetchall()[0]
    for buckets in (3, 16):
        shards = records[buckets]
        assert sorted(shards) == sorted(f"{SHARD_STEP}[bucket_{b}]" for b in range(buckets))
        assert sum(m["users"].value for m in shards.values()) == users
        assert sum(m["counted_streams"].value for m in shards.values()) == streams
        assert all(m["peak_rss_mib"].value > 0 for m in shards.values())
        assert all(m["users"].value > 0 for m in shards.values()), "150 users leave no bucket of 16 empty"


def test_a_bad_number_of_buckets_fails_naming_the_setting(definitions, landing_root, tmp_path, monkeypatch):
    monkeypatch.setenv("FAIRSTREAM_USER_BUCKETS", "0")
    result = dg.materialize(
        assets=[*definitions.assets, *definitions.asset_checks],
        partition_key=MONTH,
        resources={
            "landing_zone": LandingZoneResource(root=str(landing_root)),
            "warehouse": WarehouseResource(root=str(tmp_path / "warehouse")),
            "duckdb": DuckDBEngine(memory_limit="1GB", threads=2, temp_directory=str(tmp_path / "spill")),
            "payout_rules": PayoutRulesResource(),
            "app_database": AppDatabaseResource(),
        },
        raise_on_error=False,
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert not result.success
    assert step_failure_messages(result) == [
        "FAIRSTREAM_USER_BUCKETS: the number of user buckets must be an integer from 1 to 1024, got 0"
    ]

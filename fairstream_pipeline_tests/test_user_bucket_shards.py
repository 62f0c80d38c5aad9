"""A month sharded into user buckets through Dagster: the same bytes for B = 1, 3 and 16, and every
shard records what it did."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fairstream_pipeline.defs.payments.resources import PaymentsResource
from fairstream_pipeline.defs.resources import (
    AppDatabaseResource,
    DuckDBEngine,
    LandingZoneResource,
    PayoutRulesResource,
    WarehouseResource,
)
from fairstream_pipeline.lib.ingestion.clean_plays import decode_track_earnings
from fairstream_pipeline.lib.ingestion.landing_zone import LANDING_EVENTS
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.sample import generate_month
from fairstream_pipeline.lib.payouts.shards import ShardStore, attach_shards, shard_track_dictionary
from fairstream_pipeline.lib.ingestion.user_buckets import user_bucket
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


def landing_rows(landing_root: Path) -> int:
    """The month's event rows, from the footers."""
    return sum(pq.ParquetFile(p).metadata.num_rows for p in landing_root.rglob("listening_events/**/*.parquet"))


def materialize(definitions, landing_root: Path, warehouse: Path, buckets: int | str, monkeypatch) -> dg.ExecuteInProcessResult:
    """B = 3 through FAIRSTREAM_USER_BUCKETS, "auto" as the settings choose it (one bucket per 3,000
    plays), any other B through the run config."""
    if buckets == 3:
        monkeypatch.setenv("FAIRSTREAM_USER_BUCKETS", "3")
        run_config = None
    elif buckets == "auto":
        monkeypatch.delenv("FAIRSTREAM_USER_BUCKETS", raising=False)
        monkeypatch.setenv("FAIRSTREAM_PLAYS_PER_USER_BUCKET", "3000")
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
            "payments": PaymentsResource(),
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
    rows = landing_rows(landing_root)
    auto = -(-rows // 3000)
    assert 8 < auto < 16, rows
    for buckets in (1, 3, 16, "auto"):
        warehouse = tmp_path / f"warehouse-{buckets}"
        result = materialize(definitions, landing_root, warehouse, buckets, monkeypatch)
        lake = Lake(warehouse)
        hashes[buckets] = {table: lake.content_hash(table, MONTH) for table in TABLES}
        records[buckets] = shard_records(result)
        assert lake.manifest("user_streams", MONTH)["user_buckets"] == (auto if buckets == "auto" else buckets)
        if buckets in (3, "auto"):  # chosen at ingestion: the shards read their own files
            assert lake.manifest("clean_plays", MONTH)["user_buckets"] == (auto if buckets == "auto" else 3)
        assert not (warehouse / "_shards" / f"month={MONTH}").exists() or not any(
            (warehouse / "_shards" / f"month={MONTH}").iterdir()
        ), "the merge leaves no shard folder behind"
    assert hashes[3] == hashes[1]
    assert hashes[16] == hashes[1]
    assert hashes["auto"] == hashes[1]
    assert len(records["auto"]) == auto

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
            "payments": PaymentsResource(),
        },
        raise_on_error=False,
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert not result.success
    assert step_failure_messages(result) == [
        "FAIRSTREAM_USER_BUCKETS: the number of user buckets must be an integer from 1 to 1024, got 0"
    ]


def test_a_skewed_bucket_with_a_looping_user_holding_a_tenth_of_the_plays_still_reconciles(
    definitions, tmp_path, monkeypatch
):
    """One paid user plays 3,303 times (~10% of the month), under every cap so that all count:
    their bucket is far bigger than the others, and the month is still exact and the same bytes."""
    landing = tmp_path / "landing"
    generate_month(landing, MONTH, users=150, seed=3, events=30_000)
    looper = "u0000001"
    subscriptions = pq.read_table(landing / "subscriptions" / f"month={MONTH}").to_pylist()
    assert next(s for s in subscriptions if s["user_id"] == looper)["plan"] != "free"
    days = [date(2024, 1, d) for d in range(1, 32)]
    plays = 0
    for day in days:
        rows = [
            {
                "event_id": f"loop-{day.isoformat()}-{i}",
                "user_id": looper,
                "track_id": f"t{1 + i % 20:06d}",  # 20 tracks: at most 6 plays per track and day (cap 10)
                "played_at": datetime(day.year, day.month, day.day, 12, tzinfo=timezone.utc) + timedelta(seconds=i),
                "ms_played": 60_000,
            }
            for i in range(106 if day.day <= 14 else 107)
        ]
        plays += len(rows)
        pq.write_table(
            pa.Table.from_pylist(rows, schema=LANDING_EVENTS.arrow_schema),
            LANDING_EVENTS.path(landing, day.isoformat()) / "part-loop.parquet",
        )
    assert plays == 3_303

    hashes, records = {}, {}
    for buckets in (1, 4):
        warehouse = tmp_path / f"warehouse-{buckets}"
        result = materialize(definitions, landing, warehouse, buckets, monkeypatch)
        hashes[buckets] = {table: Lake(warehouse).content_hash(table, MONTH) for table in TABLES}
        records[buckets] = shard_records(result)
    assert hashes[4] == hashes[1]

    lake = Lake(tmp_path / "warehouse-4")
    ((looper_streams, flagged),) = duckdb.sql(
        f"SELECT streams, flagged FROM read_parquet('{lake.parquet_glob('user_streams', MONTH)}') WHERE user_id = '{looper}'"
    ).fetchall()
    assert not flagged and looper_streams >= 3_303  # every loop play counts (plus their own organic plays)
    total = sum(m["counted_streams"].value for m in records[4].values())
    skewed = records[4][f"{SHARD_STEP}[bucket_{user_bucket(looper, 4)}]"]["counted_streams"].value
    others = [m["counted_streams"].value for k, m in records[4].items() if not k.endswith(f"[bucket_{user_bucket(looper, 4)}]")]
    assert skewed >= looper_streams and skewed > max(others)
    assert looper_streams * 10 >= total * 0.9, f"the looper holds {looper_streams} of {total} counted streams"


def test_the_merge_takes_the_shard_folders_it_is_given_even_from_a_parent_run(tmp_path):
    """A re-execution from failure re-runs only the failed buckets: the merge then gets the parent
    run's folders for the others, and needs exactly buckets 0..B-1 of one B."""
    parent, retry = ShardStore(tmp_path, MONTH, "parent"), ShardStore(tmp_path, MONTH, "retry")
    folders = []
    for bucket, store in ((0, parent), (1, retry), (2, parent)):
        con = duckdb.connect()
        con.execute(f"CREATE TABLE user_streams AS SELECT 'u{bucket}' AS user_id, 'FR' AS country, 'paid' AS tier, "
                    f"{bucket + 1}::BIGINT AS streams, false AS flagged, 5::HUGEINT AS contribution_pico")
        con.execute("CREATE TABLE flagged_users AS SELECT 'x' AS user_id, DATE '2024-01-01' AS worst_day, 1::BIGINT AS worst_day_streams WHERE false")
        con.execute(f"CREATE TABLE track_shares AS SELECT 'FR' AS country, 'paid' AS tier, 't1' AS track_id, "
                    f"{bucket + 1}::BIGINT AS streams, {2**70 + bucket}::HUGEINT AS direct_pico, "
                    f"{10 * bucket}::HUGEINT AS acps_weight, {20 * bucket}::HUGEINT AS acps_pro_weight")
        con.execute(f"CREATE TABLE artist_reach AS SELECT 'a1' AS artist_id, {bucket + 1}::BIGINT AS streams, "
                    "1::BIGINT AS listeners")
        folders.append(store.write(con, bucket, 3)[0])
    con = duckdb.connect()
    assert attach_shards(con, folders) == 3
    # one row per (segment, track), and per artist: the shards' users are distinct, so listeners add up
    assert con.execute("SELECT * FROM track_shares").fetchall() == [("FR", "paid", "t1", 6, 3 * 2**70 + 3, 30, 60)]
    assert con.execute("SELECT * FROM artist_reach").fetchall() == [("a1", 6, 3)]
    assert con.execute("SELECT list(user_id ORDER BY user_id) FROM user_streams").fetchall() == [(["u0", "u1", "u2"],)]
    with pytest.raises(ValueError, match=r"the shards do not cover one set of buckets: \[\(0, 3\), \(2, 3\)\]"):
        attach_shards(duckdb.connect(), [folders[0], folders[2]])
    parent.remove_month()
    assert not (tmp_path / "_shards" / f"month={MONTH}").exists()


def test_the_merge_adds_track_shares_up_the_same_in_one_pass_or_in_parts(tmp_path, monkeypatch):
    """A large month's track_shares are added up in passes over parts of the tracks
    (``ROWS_PER_SUM``): every part count gives the same (segment, track) sums, none lost or doubled."""
    import fairstream_pipeline.lib.payouts.shards as shards

    store, folders = ShardStore(tmp_path, MONTH, "run"), []
    for bucket in range(3):
        con = duckdb.connect()
        con.execute("CREATE TABLE user_streams AS SELECT 'u' AS user_id, 'FR' AS country, 'paid' AS tier, "
                    "1::BIGINT AS streams, false AS flagged, 5::HUGEINT AS contribution_pico WHERE false")
        con.execute("CREATE TABLE flagged_users AS SELECT 'x' AS user_id, DATE '2024-01-01' AS worst_day, 1::BIGINT AS worst_day_streams WHERE false")
        con.execute(f"""CREATE TABLE track_shares AS
            SELECT country, tier, track_id, (track_id + {bucket})::BIGINT AS streams,
                   ({2**70} + track_id * 1000 + {bucket})::HUGEINT AS direct_pico,
                   (track_id * 10)::HUGEINT AS acps_weight, (track_id * 20)::HUGEINT AS acps_pro_weight
            FROM range(40) r(track_id), (VALUES ('FR', 'paid'), ('DE', 'free')) s(country, tier)
            WHERE (track_id + {bucket}) % 3 <> 0""")
        con.execute("CREATE TABLE artist_reach AS SELECT 1 AS artist_id, 1::BIGINT AS streams, 1::BIGINT AS listeners")
        folders.append(store.write(con, bucket, 3)[0])
    sums = {}
    for rows_per_sum in (10**9, 50, 7, 1):
        monkeypatch.setattr(shards, "ROWS_PER_SUM", rows_per_sum)
        con = duckdb.connect()
        attach_shards(con, folders)
        sums[rows_per_sum] = con.execute("SELECT * FROM track_shares ORDER BY ALL").fetchall()
    assert sums[50] == sums[7] == sums[1] == sums[10**9]
    # each (segment, track) is in two of the three shards: track 4 in shards 0 and 1 (4 % 3, 5 % 3)
    assert len(sums[1]) == 80 and ("FR", "paid", 4, 9, 2 * 2**70 + 8001, 80, 160) in sums[1]


def test_the_merge_refuses_shards_whose_tracks_are_coded_by_different_dictionaries(tmp_path):
    """A parent run's shard coded by last ingestion's track dictionary cannot be added to one coded
    by the current one: the same index may be another track."""
    store, folders = ShardStore(tmp_path, MONTH, "run"), []
    for bucket, dictionary in ((0, "clean_plays/month=2026-10/v1/tracks.parquet"), (1, "clean_plays/month=2026-10/v2/tracks.parquet")):
        con = duckdb.connect()
        con.execute("CREATE TABLE user_streams AS SELECT 'u' AS user_id, 'FR' AS country, 'paid' AS tier, "
                    "1::BIGINT AS streams, false AS flagged, 5::HUGEINT AS contribution_pico")
        con.execute("CREATE TABLE flagged_users AS SELECT 'x' AS user_id, DATE '2024-01-01' AS worst_day, 1::BIGINT AS worst_day_streams WHERE false")
        con.execute("CREATE TABLE track_shares AS SELECT 'FR' AS country, 'paid' AS tier, 7 AS track_id, 1::BIGINT AS streams, "
                    "5::HUGEINT AS direct_pico, 0::HUGEINT AS acps_weight, 0::HUGEINT AS acps_pro_weight")
        con.execute("CREATE TABLE artist_reach AS SELECT 1 AS artist_id, 1::BIGINT AS streams, 1::BIGINT AS listeners")
        folders.append(store.write(con, bucket, 2, dictionary)[0])
    assert shard_track_dictionary(folders[:1]) == Path("clean_plays/month=2026-10/v1/tracks.parquet")
    with pytest.raises(ValueError, match=r"coded by different dictionaries: \['clean_plays/month=2026-10/v1/tracks.parquet', 'clean_plays/month=2026-10/v2/tracks.parquet'\]"):
        shard_track_dictionary(folders)


def test_decoding_the_merged_tracks_gives_their_ids_and_never_drops_an_unknown_index(tmp_path):
    dictionary = tmp_path / "tracks.parquet"
    duckdb.sql(f"COPY (SELECT * FROM (VALUES (0, 'T-a', true), (1, 'T-b', false)) t(track_index, track_id, catalogued)) TO '{dictionary}'")
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE track_earnings AS SELECT * FROM (VALUES ('FR', 'paid', 1, 3::BIGINT, 7::HUGEINT, 8::HUGEINT)) "
                "t(country, tier, track_id, streams, uc_pico, pr_pico)")
    decode_track_earnings(con, dictionary)
    assert con.execute("SELECT * FROM track_earnings").fetchall() == [("FR", "paid", "T-b", 3, 7, 8)]
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE track_earnings AS SELECT * FROM (VALUES ('FR', 'paid', 0, 1::BIGINT, 1::HUGEINT, 1::HUGEINT), "
                "('FR', 'free', 5, 1::BIGINT, 1::HUGEINT, 1::HUGEINT)) t(country, tier, track_id, streams, uc_pico, pr_pico)")
    with pytest.raises(ValueError, match=r"1 \(segment, track\) rows of the shards have a track index missing from .*tracks.parquet"):
        decode_track_earnings(con, dictionary)

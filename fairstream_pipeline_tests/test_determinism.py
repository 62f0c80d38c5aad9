"""Same inputs, same bytes: re-running a month, or re-splitting its files, changes nothing."""

import json
import random

import pyarrow.parquet as pq
import pytest

from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.sample import generate_month

MONTH = "2024-01"  # the first partition, so the whole chain runs from zero balances


@pytest.fixture
def sample_month(landing):
    # 30,000 rows: at 150 users the default (users x 60) is mostly the two bots' sessions, which
    # leaves paid segments without a counted stream and the month too much unallocated to close.
    return generate_month(landing.root, MONTH, users=150, seed=3, events=30_000)


# Which run computed a partition and when, and the version folder it went to: differ by design.
RUN_AUDIT = ("run_id", "computed_at", "written_by_run", "version")


def lake_bytes(lake: Lake) -> dict[str, bytes]:
    """Every published file of the lake, by asset, month and name (whatever its version folder);
    manifests without the keys that name the run and the version. The clean plays' play files are
    internal and unsorted: they stand as their sorted rows (the same content, in any order)."""
    files = {}
    for pointer in sorted((lake.root / "_published").glob("month=*.json")):
        month = pointer.stem.removeprefix("month=")
        for asset in sorted(lake.published(month)):
            folder = lake.partition_dir(asset, month)
            for path in lake.partition_files(asset, month):
                data = path.read_bytes()
                if asset == "clean_plays" and path.name == "plays.parquet":
                    data = repr(sorted(pq.read_table(path).to_pylist(), key=repr)).encode()
                elif path.name == "_manifest.json":
                    manifest = {k: v for k, v in json.loads(data).items() if k not in RUN_AUDIT}
                    data = json.dumps(manifest, sort_keys=True).encode()
                files[f"{asset}/month={month}/{path.relative_to(folder).as_posix()}"] = data
    return files


def test_rematerializing_a_month_gives_byte_identical_outputs(sample_month, materialize_month, tmp_path):
    lake = Lake(tmp_path / "warehouse")
    assert materialize_month(MONTH).success
    first = lake_bytes(lake)
    assert materialize_month(MONTH).success
    assert lake_bytes(lake) == first
    # 17 one-file tables (payment_details and professional_artists among them), clean_plays' 5 (files,
    # removed, users, tracks, artists) and its 31 days of one bucket
    assert len([name for name in first if name.endswith(".parquet")]) == 17 + 5 + 31


def test_shuffled_and_resplit_event_files_give_the_same_money(sample_month, landing, materialize_month, tmp_path):
    lake = Lake(tmp_path / "warehouse")
    assert materialize_month(MONTH).success
    before = lake_bytes(lake)

    rng = random.Random(42)
    for day_dir in sorted((landing.root / "listening_events").iterdir()):
        parts = sorted(day_dir.glob("*.parquet"))
        table = [row for part in parts for row in pq.read_table(part).to_pylist()]
        rng.shuffle(table)
        for part in parts:
            part.unlink()
        cut = len(table) // 3
        for index, rows in enumerate([table[:cut], table[cut : 2 * cut], table[2 * cut :]]):
            if rows:
                landing.events(
                    day_dir.name.removeprefix("date="),
                    [tuple(r.values()) for r in rows],
                    name=f"resplit-{index}.parquet",
                )

    assert materialize_month(MONTH).success
    after = lake_bytes(lake)
    for asset in ("user_streams", "flagged_users", "segment_pools", "track_earnings", "payee_earnings", "payee_statements"):
        name = f"{asset}/month={MONTH}/part-00000.parquet"
        assert after[name] == before[name], asset


def test_a_play_files_digest_is_its_content_in_any_order():
    """The play files are written unsorted: their digest (in the manifest's content hash) must not
    depend on the order of their rows, and must change when a row does."""
    import duckdb

    from fairstream_pipeline.lib.ingestion.clean_plays import play_digests

    con = duckdb.connect()
    rows = "(0, 1, 5, NULL, 30000, true), (0, 2, 5, NULL, 31000, false), (1, 3, NULL, 'tx9', 40000, false), (0, 1, 5, NULL, 30000, true)"
    columns = "bucket, user_index, track_index, uncatalogued_track_id, ms_played, active"
    con.execute(f"CREATE TABLE a AS SELECT * FROM (VALUES {rows}) v({columns})")
    con.execute("CREATE TABLE b AS SELECT * FROM a ORDER BY ms_played DESC")
    con.execute("CREATE TABLE c AS SELECT * REPLACE (CASE WHEN ms_played = 31000 THEN 31001 ELSE ms_played END AS ms_played) FROM a")
    first, reordered, changed = (play_digests(con, t, 3) for t in "abc")
    assert first == reordered
    assert first[0].startswith("3:") and first[1].startswith("1:") and first[2] == "0:0000000000000000"
    assert changed[0] != first[0] and changed[1] == first[1]
    # a repeated play counts: dropping one copy changes the digest
    con.execute("CREATE TABLE d AS SELECT DISTINCT * FROM a")
    assert play_digests(con, "d", 3)[0] != first[0]

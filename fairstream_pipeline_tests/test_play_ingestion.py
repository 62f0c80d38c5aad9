"""The listening events of a hand-made month through plan, days and merge (lib only, no Dagster):
the integer coding, the bucket files, and reading a bucket back by its own files or by another B."""

from collections import Counter

import duckdb
import pyarrow.parquet as pq
import pytest

from fairstream_pipeline.lib.ingestion import clean_plays
from fairstream_pipeline.lib.ingestion.accounting import account_for_event_rows
from fairstream_pipeline.lib.ingestion.clean_plays import attach_clean_plays, attach_coded_plays
from fairstream_pipeline.lib.ingestion.monthly_tables import BILLED_USERS, ingest_monthly_table
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.ingestion.landing_files import fingerprint
from fairstream_pipeline.lib.ingestion.landing_zone import LandingZone
from fairstream_pipeline.lib.ingestion.play_ingestion import ingest_plays
from fairstream_pipeline.lib.ingestion.user_buckets import user_bucket
from fairstream_pipeline_tests.landing_builders import Landing

MONTH = "2026-10"
USERS = [f"u{n:02d}" for n in range(1, 13)]


@pytest.fixture
def month(tmp_path) -> Lake:
    """12 users, catalog t1 t2 t9 (t9 never played), two uncatalogued tracks (zz, aa), two days,
    one exact duplicate, one unknown user, one invalid row; clean plays stored in 3 buckets."""
    landing = Landing(tmp_path / "landing")
    landing.catalog([("t2", "Two", "B"), ("t1", "One", "A"), ("t9", "Nine", "C")], [], [])
    landing.subscriptions(MONTH, [(u, "premium", "FR", 999) for u in USERS])
    landing.ad_revenue(MONTH, [("FR", 0)])
    rows = [(f"a{i:02d}", u, "t1" if i % 3 else "zz", "2026-10-01 10:00", 40_000 + i) for i, u in enumerate(USERS)]
    rows += [("dup", "u01", "t2", "2026-10-01 11:00", 31_000), ("dup", "u01", "t2", "2026-10-01 11:00", 31_000)]
    rows += [("who", "nobody", "t1", "2026-10-01 12:00", 50_000), ("bad", "u02", "t1", "2026-10-01 12:00", -1)]
    landing.events("2026-10-01", rows)
    landing.events("2026-10-20", [(f"b{i:02d}", u, "aa", "2026-10-20 08:00", 1_000 * i) for i, u in enumerate(USERS[:5])])
    landing.close_days(MONTH)
    lake, zone = Lake(tmp_path / "warehouse"), LandingZone(landing.root)
    con = duckdb.connect()
    with lake.write_partition("billed_users", MONTH) as out:
        ingest_monthly_table(con, zone, MONTH, out.file(), BILLED_USERS)
    with lake.write_partitions([("clean_plays", MONTH), ("play_quarantine", MONTH)]) as (clean, quarantine):
        result = ingest_plays(
            con, zone, MONTH, lake.parquet_glob("billed_users", MONTH), 3, tmp_path / "scratch",
            clean.staging_dir, quarantine.file(),
        )
        clean.manifest.update(rows=result.clean_plays, input_fingerprint=fingerprint(result.files))
        quarantine.manifest.update(rows=result.quarantined_total)
    assert (result.rows_read, result.clean_plays, result.duplicates_dropped) == (21, 18, 1)
    assert result.quarantined == {"invalid_row": 1, "outside_partition": 0, "conflicting_duplicate": 0, "unknown_user": 1}
    return lake


def expected_plays() -> Counter:
    plays = Counter((u, "t1" if i % 3 else "zz", 40_000 + i, "2026-10-01") for i, u in enumerate(USERS))
    plays[("u01", "t2", 31_000, "2026-10-01")] += 1  # one copy of the duplicate
    plays.update((u, "aa", 1_000 * i, "2026-10-20") for i, u in enumerate(USERS[:5]))
    return plays


def test_users_and_tracks_are_coded_by_rank_the_catalog_first(month):
    folder = month.partition_dir("clean_plays", MONTH)
    users = pq.read_table(folder / clean_plays.USERS).to_pylist()
    assert users == [{"user_index": i, "user_id": u, "bucket": user_bucket(u, 3)} for i, u in enumerate(USERS)]
    tracks = [tuple(r.values()) for r in pq.read_table(folder / clean_plays.TRACKS).to_pylist()]
    # (track_index, track_id, catalogued, artist_index, noise): the catalog names its artists A, B, C
    assert tracks == [
        (0, "t1", True, 0, False), (1, "t2", True, 1, False), (2, "t9", True, 2, False),
        (3, "aa", False, None, False), (4, "zz", False, None, False),
    ]
    artists = [tuple(r.values()) for r in pq.read_table(folder / clean_plays.ARTISTS).to_pylist()]
    assert artists == [(0, "name:A", None, "A"), (1, "name:B", None, "B"), (2, "name:C", None, "C")]
    # One file per bucket and day, empty or not; 18 plays in all, as the footers say.
    files = clean_plays.play_files(folder)
    assert [f.relative_to(folder).as_posix() for f in files] == [
        f"plays/bucket={b}/day={d}/plays.parquet" for b in range(3) for d in ("2026-10-01", "2026-10-20")
    ]
    assert clean_plays.clean_play_count(month, MONTH) == 18


def test_the_decoded_month_is_the_clean_plays(month):
    con = duckdb.connect()
    attach_clean_plays(con, month, MONTH)
    rows = con.execute("SELECT user_id, track_id, ms_played, day::VARCHAR FROM clean_plays").fetchall()
    assert Counter(rows) == expected_plays()


@pytest.mark.parametrize("buckets", [1, 2, 3])
def test_each_bucket_reads_its_users_plays_only_whatever_b(month, buckets):
    """B = 3 reads each bucket's own files; B = 1 and B = 2 read every file and keep their users'."""
    seen = Counter()
    for bucket in range(buckets):
        con = duckdb.connect()
        days = attach_coded_plays(con, month, MONTH, bucket, buckets)
        assert [d.isoformat() for d in days] == ["2026-10-01", "2026-10-20"]
        rows = con.execute(
            """SELECT u.user_id, t.track_id, p.ms_played, p.day::VARCHAR FROM clean_plays p
               JOIN user_dictionary u ON u.user_index = p.user_id
               JOIN track_dictionary t ON t.track_index = p.track_id"""
        ).fetchall()
        assert {user_bucket(r[0], buckets) for r in rows} <= {bucket}
        billed = [r[0] for r in con.execute("SELECT user_id FROM billed_users").fetchall()]
        assert sorted(billed) == sorted(USERS.index(u) for u in USERS if user_bucket(u, buckets) == bucket)
        seen.update(rows)
    assert seen == expected_plays()


def test_every_event_row_is_accounted_for(month, tmp_path):
    accounting = account_for_event_rows(LandingZone(tmp_path / "landing"), month, MONTH)
    assert (accounting.landing_rows, accounting.clean_plays, accounting.quarantined, accounting.duplicates_dropped) == (
        21, 18, 2, 1,
    )
    assert accounting.unaccounted == 0 and accounting.balanced


def test_files_are_grouped_in_order_up_to_the_row_limit(tmp_path):
    from fairstream_pipeline.lib.ingestion.landing_files import DataFile
    from fairstream_pipeline.lib.ingestion.plays import file_groups

    files = [(i, DataFile(tmp_path / f"f{i}", f"f{i}", rows, 0, 0, None)) for i, rows in enumerate([4, 3, 12, 1, 5, 5])]
    groups = file_groups(files, 10)
    assert [[i for i, _ in group] for group in groups] == [[0, 1], [2], [3, 4], [5]]
    assert file_groups([], 10) == []


def _ingest_in_groups(root, rows_per_pass: int) -> dict[str, bytes]:
    """Ingest the month landed under ``root`` coding ``rows_per_pass`` rows at a time; every
    output file's bytes by its path."""
    lake, zone = Lake(root / f"warehouse-{rows_per_pass}"), LandingZone(root / "landing")
    con = duckdb.connect()
    with lake.write_partition("billed_users", MONTH) as out:
        ingest_monthly_table(con, zone, MONTH, out.file(), BILLED_USERS)
    clean_dir, quarantine = root / f"clean-{rows_per_pass}", root / f"quarantine-{rows_per_pass}.parquet"
    clean_dir.mkdir()
    result = ingest_plays(
        con, zone, MONTH, lake.parquet_glob("billed_users", MONTH), 2, root / f"scratch-{rows_per_pass}",
        clean_dir, quarantine, rows_per_pass=rows_per_pass,
    )
    assert (result.rows_read, result.clean_plays, result.duplicates_dropped) == (14, 8, 2)
    assert result.quarantined == {"invalid_row": 1, "outside_partition": 0, "conflicting_duplicate": 2, "unknown_user": 1}
    files = {p.relative_to(clean_dir).as_posix(): p.read_bytes() for p in clean_dir.rglob("*") if p.is_file()}
    return {**files, "quarantine": quarantine.read_bytes()}


def test_a_day_coded_file_group_by_file_group_gives_the_same_bytes_as_one_pass(tmp_path):
    """Duplicates across files (exact and conflicting) are decided day-wide whatever the groups."""
    landing = Landing(tmp_path / "landing")
    landing.catalog([("t1", "One", "A"), ("t2", "Two", "B")], [], [])
    landing.subscriptions(MONTH, [(u, "premium", "FR", 999) for u in USERS[:4]])
    landing.ad_revenue(MONTH, [("FR", 0)])
    landing.events("2026-10-01", [
        ("e1", "u01", "t1", "2026-10-01 10:00", 40_000),
        ("e2", "u02", "t2", "2026-10-01 10:01", 41_000),
        ("x1", "u03", "t1", "2026-10-01 10:02", 42_000),  # conflicting twin in part-2
        ("e3", "u04", "zz", "2026-10-01 10:03", 43_000),
    ], name="part-0.parquet")
    landing.events("2026-10-01", [
        ("e1", "u01", "t1", "2026-10-01 10:00", 40_000),  # exact copy of part-0's e1
        ("e4", "nobody", "t1", "2026-10-01 10:04", 44_000),
        ("e5", "u02", "t1", "2026-10-01 10:05", -5),
    ], name="part-1.parquet")
    landing.events("2026-10-01", [
        ("x1", "u03", "t2", "2026-10-01 10:02", 42_000),
        ("e6", "u03", "t2", "2026-10-01 10:06", 46_000),
        ("e2", "u02", "t2", "2026-10-01 10:01", 41_000),  # exact copy of part-0's e2
    ], name="part-2.parquet")
    landing.events("2026-10-02", [
        ("f1", "u01", "t2", "2026-10-02 09:00", 30_000),
        ("f2", "u04", "t1", "2026-10-02 09:01", 31_000),
        ("f3", "u02", "zz", "2026-10-02 09:02", 32_000),
        ("f4", "u03", "t1", "2026-10-02 09:03", 33_000),
    ], name="part-0.parquet")
    landing.close_days(MONTH)
    one_pass = _ingest_in_groups(tmp_path, 10_000_000)
    assert len(one_pass) > 5
    assert _ingest_in_groups(tmp_path, 1) == one_pass  # every file a group of its own
    assert _ingest_in_groups(tmp_path, 7) == one_pass  # part-0 with part-1 (the copy of e1), then part-2

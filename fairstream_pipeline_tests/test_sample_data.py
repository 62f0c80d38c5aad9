"""Tests of the sample landing-zone generator (fairstream_pipeline.sample) and its CLI."""

from __future__ import annotations

import calendar
import hashlib
import json
import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fairstream_pipeline import cli
from fairstream_pipeline.lib.ingestion.landing_zone import LANDING_EVENTS, LANDING_TABLES, LANDING_TRACKS
from fairstream_pipeline.lib.payouts.rules import ACTIVE_SOURCES, PLAY_SOURCES
from fairstream_pipeline.sample import events as sample_events
from fairstream_pipeline.sample import generate_month
from fairstream_pipeline.sample import month_plan as sample_month_plan

MONTH = "2026-10"
SMALL = dict(users=2000, seed=7, events=120_000)

# The contract's schema of each dataset folder or catalog file (test_landing_contract pins the contract).
CONTRACT = {(t.name if t.partition else t.location): t.arrow_schema for t in LANDING_TABLES}


def tree_sha256(root: Path, under: str = "") -> str:
    """sha256 over (relative path, bytes) of every file, in sorted path order."""
    h = hashlib.sha256()
    files = sorted(p for p in (root / under).rglob("*") if p.is_file())
    assert files, f"no files under {root / under}"
    for p in files:
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def small_month(tmp_path_factory):
    root = tmp_path_factory.mktemp("landing")
    summary = generate_month(root, MONTH, **SMALL)
    return root, summary


@pytest.fixture(scope="module")
def db(small_month):
    """DuckDB with the small month's files, and the contract's quarantine cascade applied."""
    root, _ = small_month
    con = duckdb.connect()
    con.execute(
        f"""
        create table ev as
        select event_id, user_id, track_id, played_at, ms_played, source, filename,
               cast(regexp_extract(filename, 'date=([0-9-]+)', 1) as date) as folder_date
        from read_parquet('{root.as_posix()}/listening_events/date={MONTH}-*/*.parquet', filename=true)
        """
    )
    con.execute(f"create table subs as select * from read_parquet('{root.as_posix()}/subscriptions/month={MONTH}/*.parquet')")
    con.execute(f"create table tracks as select * from read_parquet('{root.as_posix()}/catalog/tracks.parquet')")
    con.execute(f"create table splits as select * from read_parquet('{root.as_posix()}/catalog/rights_splits.parquet')")
    con.execute(f"create table payees as select * from read_parquet('{root.as_posix()}/catalog/payees.parquet')")
    # 1 invalid_row
    con.execute(
        """create table invalid as select * from ev where event_id is null or user_id is null
           or track_id is null or played_at is null or ms_played is null
           or event_id = '' or user_id = '' or track_id = '' or ms_played < 0"""
    )
    con.execute("create table pass1 as select * from ev except all select * from invalid")
    # 2 outside_partition
    con.execute(
        "create table outside as select * from pass1 where cast(timezone('UTC', played_at) as date) <> folder_date"
    )
    con.execute("create table pass2 as select * from pass1 except all select * from outside")
    # 3 conflicting_duplicate
    con.execute(
        """create table conflicting as select * from pass2 where event_id in (
             select event_id from pass2 group by event_id
             having count(distinct (user_id, track_id, played_at, ms_played)) > 1)"""
    )
    con.execute("create table pass3 as select * from pass2 except all select * from conflicting")
    # 4 exact duplicates, 5 unknown_user
    con.execute(
        "create table dedup as select distinct event_id, user_id, track_id, played_at, ms_played from pass3"
    )
    con.execute("create table unknown as select * from dedup where user_id not in (select user_id from subs)")
    con.execute("create table clean as select * from dedup where user_id in (select user_id from subs)")
    yield con
    con.close()


def one(con, sql):
    return con.execute(sql).fetchone()[0]


# ---------------------------------------------------------------------------------------------
# Determinism and re-runs
# ---------------------------------------------------------------------------------------------


def test_same_arguments_same_bytes_and_other_seed_differs(tmp_path):
    args = dict(users=300, events=20_000, seed=3)
    a = generate_month(tmp_path / "a", MONTH, **args)
    b = generate_month(tmp_path / "b", MONTH, **args)
    c = generate_month(tmp_path / "c", MONTH, **{**args, "seed": 4})
    assert a == b
    assert tree_sha256(tmp_path / "a") == tree_sha256(tmp_path / "b")
    assert tree_sha256(tmp_path / "a") != tree_sha256(tmp_path / "c")
    assert tree_sha256(tmp_path / "a", "catalog") != tree_sha256(tmp_path / "c", "catalog")
    assert a.bot_user_ids != c.bot_user_ids or a.rows_written != c.rows_written


def test_rerun_replaces_the_month_and_removes_stale_parts(tmp_path):
    args = dict(users=300, events=20_000, seed=3)
    generate_month(tmp_path / "fresh", MONTH, **args)
    root = tmp_path / "rerun"
    generate_month(root, MONTH, **{**args, "events": 40_000})
    day = root / "listening_events" / f"date={MONTH}-05"
    (day / "part-00042.parquet").write_bytes(b"stale")
    (day / ".part-00000.parquet.tmp").write_bytes(b"crashed")
    (root / "subscriptions" / f"month={MONTH}" / "part-00007.parquet").write_bytes(b"stale")
    generate_month(root, MONTH, **args)
    assert not (day / "part-00042.parquet").exists()
    assert not (day / ".part-00000.parquet.tmp").exists()
    assert not (root / "subscriptions" / f"month={MONTH}" / "part-00007.parquet").exists()
    assert tree_sha256(root) == tree_sha256(tmp_path / "fresh")


def test_two_months_in_one_folder_share_an_identical_catalog(tmp_path):
    args = dict(users=300, events=15_000, seed=11)
    oct_summary = generate_month(tmp_path, "2026-10", **args)
    catalog_after_october = tree_sha256(tmp_path, "catalog")
    nov_summary = generate_month(tmp_path, "2026-11", **args)
    assert tree_sha256(tmp_path, "catalog") == catalog_after_october
    days = sorted(p.name for p in (tmp_path / "listening_events").iterdir())
    assert len(days) == 31 + 30
    assert days[0] == "date=2026-10-01" and days[-1] == "date=2026-11-30"
    assert oct_summary.days == 31 and nov_summary.days == 30
    oct_users = set(pq.read_table(tmp_path / "subscriptions/month=2026-10").column("user_id").to_pylist())
    nov_users = set(pq.read_table(tmp_path / "subscriptions/month=2026-11").column("user_id").to_pylist())
    assert len(oct_users) == oct_summary.users_billed and len(nov_users) == nov_summary.users_billed
    assert oct_users != nov_users  # churn is drawn per month
    assert len(oct_users & nov_users) > 0.9 * 300  # ... from one stable user base


# ---------------------------------------------------------------------------------------------
# Contract
# ---------------------------------------------------------------------------------------------


def test_every_file_matches_the_contract_schema(small_month):
    root, summary = small_month
    files = sorted(p for p in root.rglob("*.parquet"))
    checked = {key: 0 for key in CONTRACT}
    for path in files:
        rel = path.relative_to(root).as_posix()
        key = rel if rel.startswith("catalog/") else rel.split("/")[0]
        schema = pq.read_schema(path)
        expected = CONTRACT[key]
        assert schema.names == expected.names, rel
        assert [f.type for f in schema] == [f.type for f in expected], rel
        checked[key] += 1
    assert all(checked.values()), checked
    assert checked["listening_events"] == summary.event_files
    assert checked["subscriptions"] == 1 and checked["ad_revenue"] == 1
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not p.name.endswith(".parquet")) == sorted(
        f"listening_events/date={MONTH}-{d:02d}/_SUCCESS" for d in range(1, 32)
    )


def test_every_day_has_an_empty_success_marker_written_last(small_month):
    root, _ = small_month
    days = sorted((root / "listening_events").iterdir())
    assert [d.name for d in days] == [f"date={MONTH}-{d:02d}" for d in range(1, calendar.monthrange(2026, 10)[1] + 1)]
    for day in days:
        marker = day / "_SUCCESS"
        assert marker.is_file() and marker.stat().st_size == 0
        parts = sorted(day.glob("*.parquet"))
        assert [p.name for p in parts] == [f"part-{i:05d}.parquet" for i in range(len(parts))]
        assert marker.stat().st_mtime_ns >= max(p.stat().st_mtime_ns for p in parts)


def test_ids_and_event_ids_have_the_documented_shape(db):
    assert one(db, "select count(*) from ev where not regexp_full_match(event_id, 'e[0-9]{8}-[0-9]{9}')") == 0
    assert (
        one(db, "select count(*) from ev where substr(event_id, 2, 8) <> strftime(folder_date, '%Y%m%d')") == 0
    )
    assert one(db, "select count(*) from subs where not regexp_full_match(user_id, 'u[0-9]{7}')") == 0
    assert one(db, "select min(user_id) from subs") in ("u0000001", "u0000002", "u0000003")
    assert one(db, "select count(*) from tracks where not regexp_full_match(track_id, 't[0-9]{6}')") == 0
    assert one(db, "select count(*) from tracks") == 1000  # default max(200, 2000 // 2)
    assert (
        one(db, "select count(distinct track_id) from ev where track_id like 'tx%' and not regexp_full_match(track_id, 'tx[0-9]{5}')")
        == 0
    )
    kinds = {
        row[0]
        for row in db.execute("select regexp_extract(payee_id, '^([a-z]+)-[0-9]+$', 1) from payees").fetchall()
    }
    assert kinds == {"artist", "label", "publisher", "writer"}
    assert one(db, "select count(*) from payees where payee_id like 'artist-%'") == 1000 // 4


def test_subscriptions_and_ad_revenue_are_consistent(db, small_month):
    _, s = small_month
    assert one(db, "select count(*) from subs") == s.users_billed == s.users - s.churned_users
    assert one(db, "select count(distinct user_id) from subs") == s.users_billed
    assert 0.01 <= s.churned_users / s.users <= 0.03
    assert one(db, "select count(*) from subs where plan = 'free' and net_cents <> 0") == 0
    assert one(db, "select count(*) from subs where plan <> 'free' and net_cents <= 0") == 0
    assert one(db, "select count(*) from subs where plan <> 'free'") == s.paying_users
    assert 0.30 <= one(db, "select avg((plan = 'free')::int) from subs") <= 0.40
    assert {r[0] for r in db.execute("select distinct plan from subs").fetchall()} == {
        "free", "premium", "family", "student", "duo"
    }
    premium = dict(db.execute("select country, max(net_cents) from subs where plan = 'premium' group by 1").fetchall())
    assert premium["FR"] == 999 and premium["BR"] == 369 and premium["BR"] < min(v for k, v in premium.items() if k != "BR")
    root, _ = small_month
    ad = pq.read_table(root / f"ad_revenue/month={MONTH}").to_pylist()
    free = dict(db.execute("select country, count(*) from subs where plan = 'free' group by 1").fetchall())
    assert sorted(r["country"] for r in ad) == sorted(free) and len(ad) == 7
    for row in ad:
        assert 30 * free[row["country"]] <= row["net_cents"] <= 60 * free[row["country"]]


# ---------------------------------------------------------------------------------------------
# Realism
# ---------------------------------------------------------------------------------------------


def test_play_lengths(db, small_month):
    _, s = small_month
    short = one(db, "select avg((ms_played < 30000)::int) from ev where ms_played >= 0")
    assert 0.2 <= short <= 0.3
    assert round(short, 4) == s.short_play_share
    assert one(db, "select count(*) from ev where ms_played = 30000") > 100
    assert one(db, "select max(ms_played) from ev") == 360_000
    assert one(db, "select count(*) from ev where ms_played > 360000") == 0


def test_user_activity_is_heavy_tailed_and_paying_users_are_sometimes_silent(db, small_month):
    _, s = small_month
    top20 = one(
        db,
        """with c as (select user_id, count(*) n from ev where user_id <> '' group by 1),
                r as (select n, row_number() over (order by n desc) rk, count(*) over () users from c)
           select sum(n) filter (where rk <= ceil(0.2 * users)) / sum(n) from r""",
    )
    assert 0.7 <= top20 <= 0.9
    assert round(top20, 4) == s.top20_user_play_share
    silent = one(
        db,
        "select count(*) from subs where plan <> 'free' and user_id not in (select user_id from ev where user_id is not null)",
    )
    assert silent == s.silent_paying_users
    assert 0.03 <= silent / s.paying_users <= 0.07
    free_streaming = one(db, "select count(distinct user_id) from clean join subs using (user_id) where plan = 'free'")
    assert free_streaming > 0.9 * s.free_users


def test_events_spread_evenly_over_the_days_apart_from_bots(db, small_month):
    _, s = small_month
    bots = ", ".join(f"'{b}'" for b in s.bot_user_ids)
    per_day = [
        r[0]
        for r in db.execute(
            f"select count(*) from ev where user_id not in ({bots}) or user_id is null group by folder_date"
        ).fetchall()
    ]
    assert len(per_day) == 31
    mean = sum(per_day) / len(per_day)
    assert 0.9 * mean <= min(per_day) and max(per_day) <= 1.1 * mean
    assert min(per_day) < max(per_day)  # weekday variation
    hours = one(db, "select count(distinct hour(timezone('UTC', played_at))) from clean")
    assert hours == 24


def test_bots_exceed_1000_capped_streams_and_loopers_do_not(db, small_month):
    _, s = small_month
    assert len(s.bot_user_ids) == max(2, 2000 // 2500) == 2
    flagged = db.execute(
        """with c as (select user_id, cast(timezone('UTC', played_at) as date) d, track_id,
                              least(count(*), 10) capped
                      from clean where ms_played >= 30000 group by all)
           select user_id, d, sum(capped) from c group by all having sum(capped) > 1000"""
    ).fetchall()
    assert {r[0] for r in flagged} == set(s.bot_user_ids)
    assert 2 * len(s.bot_user_ids) <= len(flagged) <= 4 * len(s.bot_user_ids)
    assert one(db, f"select count(*) from clean where user_id in {tuple(s.bot_user_ids)}") > s.bot_plays
    loops = db.execute(
        """select user_id, max(n) from (select user_id, cast(timezone('UTC', played_at) as date) d, track_id, count(*) n
           from clean group by all) where n >= 50 group by 1 order by 1"""
    ).fetchall()
    assert [r[0] for r in loops] == sorted(s.looper_user_ids)
    assert all(50 <= r[1] < 200 for r in loops)


def test_uncataloged_plays(db, small_month):
    _, s = small_month
    uncat = one(db, "select count(*) from clean where track_id not in (select track_id from tracks)")
    assert uncat == s.uncataloged_track_plays > 0
    assert 0.005 <= uncat / s.expected_clean_plays <= 0.015
    assert one(db, "select count(*) from splits where track_id like 'tx%'") == 0
    assert one(db, "select count(distinct track_id) from clean where track_id not like 'tx%'") > 500


def test_catalog_splits_and_payees(db, small_month):
    _, s = small_month
    invalid = {
        r[0]
        for r in db.execute(
            """select track_id from splits group by 1
               having sum(share_ppm) <> 1000000 or min(share_ppm) <= 0 or count(distinct payee_id) <> count(*)"""
        ).fetchall()
    }
    assert invalid == set(s.broken_split_track_ids)
    assert len(invalid) == max(3, round(0.005 * 1000)) == 5
    kinds = db.execute(
        f"""select sum(share_ppm) <> 1000000, min(share_ppm) = 0, count(distinct payee_id) <> count(*)
            from splits where track_id in {tuple(invalid)} group by track_id"""
    ).fetchall()
    assert {(True, False, False), (False, True, False), (False, False, True)} <= set(kinds)
    without = {r[0] for r in db.execute("select track_id from tracks where track_id not in (select track_id from splits)").fetchall()}
    assert without == set(s.tracks_without_splits) and len(without) >= 2
    assert one(db, "select count(*) from splits where track_id not in (select track_id from tracks)") == 0
    assert one(db, "select count(*) from splits where payee_id not in (select payee_id from payees)") == 0
    shapes = {
        tuple(r[0])
        for r in db.execute(
            f"""select list(share_ppm order by share_ppm desc) from splits
                where track_id not in {tuple(invalid)} group by track_id"""
        ).fetchall()
    }
    assert all(sum(shape) == 1_000_000 and min(shape) > 0 for shape in shapes)
    assert (500_000, 300_000, 200_000) in shapes and (400_000, 280_000, 120_000, 100_000, 100_000) in shapes
    assert one(db, "select count(*) from tracks where artist_name like '% feat. %'") > 100
    assert one(db, "select count(*) from payees where email is null") == s.payees_without_email >= 1
    assert one(db, "select count(*) from payees") == s.payees
    assert one(db, "select count(*) from tracks where title is null or title = '' or artist_name is null") == 0


# ---------------------------------------------------------------------------------------------
# ACPS v1: play sources, artist ids and noise (docs/sample-data.md, "Play sources, artists and noise")
# ---------------------------------------------------------------------------------------------


def test_the_new_columns_are_written_with_the_contract_types(small_month):
    root, _ = small_month
    events = pq.read_schema(next((root / "listening_events").rglob("*.parquet")))
    tracks = pq.read_schema(root / "catalog" / "tracks.parquet")
    assert events.names[-1] == "source" and events.field("source").type == pa.string()
    assert events.field("source").type == LANDING_EVENTS.arrow_schema.field("source").type
    assert tracks.names[-2:] == ["artist_id", "content_type"]
    for name in ("artist_id", "content_type"):
        assert tracks.field(name).type == LANDING_TRACKS.arrow_schema.field(name).type == pa.string()
    # ``source`` is dictionary-encoded in every event file (six values: a few bytes per page)
    for path in (root / "listening_events").rglob("*.parquet"):
        meta = pq.ParquetFile(path).metadata
        index = meta.schema.names.index("source")
        for group in range(meta.num_row_groups):
            assert "RLE_DICTIONARY" in meta.row_group(group).column(index).encodings, path


def test_every_event_has_a_play_source_drawn_with_the_documented_shares(db):
    counts = dict(db.execute("select source, count(*) from ev group by 1").fetchall())
    total = sum(counts.values())
    assert None not in counts and set(counts) <= set(PLAY_SOURCES)
    assert set(counts) == set(sample_events.SOURCE_SHARES)
    for source, share in sample_events.SOURCE_SHARES.items():
        assert abs(counts[source] / total - share) < 0.005, source
    assert abs(sum(counts[s] for s in ACTIVE_SOURCES) / total - 0.25) < 0.005
    # exact for the seed
    assert counts == {
        "algorithmic": 36_243,
        "library": 30_058,
        "search": 17_869,
        "radio": 17_854,
        "editorial_playlist": 12_147,
        "own_playlist": 6_005,
    }
    # a re-sent copy and a conflicting twin repeat the source of their original
    assert one(db, "select count(*) from (select event_id from ev group by 1 having count(distinct source) > 1)") == 0
    # the source does not depend on who plays: bots, loopers and sleepers draw from the same shares
    active_share = db.execute(
        f"""select avg((source in {ACTIVE_SOURCES})::int) from ev
            where user_id in (select user_id from ev group by 1 order by count(*) desc limit 20)"""
    ).fetchone()[0]
    assert 0.22 <= active_share <= 0.28


def test_tracks_carry_their_primary_artist_id_and_a_content_type(db, small_month):
    _, s = small_month
    assert one(db, "select count(*) from tracks where artist_id is not null and not regexp_full_match(artist_id, 'A[0-9]{6}')") == 0
    # a handful of music tracks has no artist_id: the artist is their artist_name
    without = [r[0] for r in db.execute("select track_id from tracks where artist_id is null order by 1").fetchall()]
    assert without == list(s.tracks_without_artist_id) == ["t000522", "t000709", "t000989"]
    assert one(db, "select count(*) from tracks where artist_id is null and content_type <> 'music'") == 0
    # artist A000123 is the payee artist-00123: it is on the track's splits (every track with splits)
    assert (
        one(
            db,
            """select count(*) from tracks t where artist_id is not null
                 and track_id in (select track_id from splits)
                 and 'artist-' || lpad(substr(artist_id, 2)::int::varchar, 5, '0')
                     not in (select payee_id from splits s where s.track_id = t.track_id)""",
        )
        == 0
    )
    # one artist_id, one (main) artist name; a quarter of the catalog's size in artists, all with a track
    assert (
        one(
            db,
            """select count(*) from (select artist_id from tracks where artist_id is not null group by 1
                                     having count(distinct split_part(artist_name, ' feat. ', 1)) > 1)""",
        )
        == 0
    )
    assert one(db, "select count(distinct artist_id) from tracks") == 1000 // 4
    assert one(db, "select max(n) from (select count(*) n from tracks group by artist_id)") > 10  # prolific few
    # content_type: music, or noise for the tracks of a few noise acts
    kinds = dict(db.execute("select content_type, count(*) from tracks group by 1").fetchall())
    assert kinds == {"music": 990, "noise": 10} and kinds["noise"] == s.noise_tracks
    noise_artists = {
        r[0] for r in db.execute("select distinct artist_id from tracks where content_type = 'noise'").fetchall()
    }
    assert {"artist-" + a[1:].lstrip("0").rjust(5, "0") for a in noise_artists} == set(s.noise_act_ids)
    assert s.noise_act_ids == ("artist-00199", "artist-00222")
    assert one(db, f"select count(*) from tracks where content_type = 'music' and artist_id in {tuple(noise_artists)}") == 0
    assert one(db, f"select count(*) from tracks where artist_name like '%feat.%' and artist_id in {tuple(noise_artists)}") == 0
    assert one(db, "select count(*) from tracks where content_type = 'noise' and artist_name like '%feat.%'") == 0
    noise_words = ("Noise", "Rain", "Waves", "Thunderstorm", "Fan", "Cabin", "Stream", "Fire", "Machine", "Dryer", "Crickets", "Pines")
    titles = [r[0] for r in db.execute("select title from tracks where content_type = 'noise'").fetchall()]
    assert all(any(w in title for w in noise_words) for title in titles), titles


def test_about_2pct_of_plays_are_noise_mostly_by_a_few_heavy_sleepers(db, small_month):
    _, s = small_month
    noise = "(select track_id from tracks where content_type = 'noise')"
    noise_rows = one(db, f"select count(*) from ev where track_id in {noise}")
    assert noise_rows == s.noise_plays == 2_287
    assert 0.017 <= noise_rows / s.rows_written <= 0.02  # 1.90 %
    assert s.sleeper_plays == round(sample_month_plan.SLEEPER_NOISE_SHARE * 120_000) == 1_920
    assert len(s.sleeper_user_ids) == 47
    assert s.sleeper_user_ids[:3] == ("u0000079", "u0000092", "u0000120")
    users = one(db, "select count(distinct user_id) from ev where user_id <> ''")
    by_user = [
        r[0] for r in db.execute(f"select count(*) from ev where track_id in {noise} group by user_id order by 1 desc").fetchall()
    ]
    assert len(by_user) > 100  # a few organic listeners (and the bots) play noise now and then ...
    # ... but the sleepers, 2.4 % of the users, make 84 % of the noise plays (the top 1 % of users by
    # noise plays make 54 % of them)
    assert len(s.sleeper_user_ids) / users < 0.03
    sleepers = one(db, f"select count(*) from ev where track_id in {noise} and user_id in {s.sleeper_user_ids}")
    assert sleepers / noise_rows > 0.8
    assert 0.5 < sum(by_user[: users // 100]) / noise_rows < 0.6
    # sleepers are heavy users, though not the very heaviest: by all their plays, each is in the
    # heaviest third of the users (drawn from the 10-30 % band by activity). Their sleep plays
    # replace most of their own music, so 57-94 % of each sleeper's rows are noise.
    ranks = db.execute(
        f"""with c as (select user_id, count(*) n from ev where user_id <> '' group by 1),
                 r as (select user_id, row_number() over (order by n desc, user_id) rk, count(*) over () users from c)
            select user_id, rk <= users / 3 from r where user_id in {s.sleeper_user_ids} order by 1"""
    ).fetchall()
    assert ranks == [(u, True) for u in s.sleeper_user_ids]
    noise_share = db.execute(
        f"""select min(f), max(f) from (select avg((track_id in {noise})::int) f from ev
            where user_id in {s.sleeper_user_ids} group by user_id)"""
    ).fetchone()
    assert 0.5 < noise_share[0] and noise_share[1] < 1
    # their nights: 20:00 to 24:00 UTC, their playlist looped in full plays, never 50 plays of one track
    hours, min_ms, loops = db.execute(
        f"""select list(distinct hour(timezone('UTC', played_at)) order by 1), min(ms_played),
                   (select max(n) from (select count(*) n from ev where user_id in {s.sleeper_user_ids}
                                        and track_id in {noise} group by user_id, folder_date, track_id))
            from ev where user_id in {s.sleeper_user_ids} and track_id in {noise}"""
    ).fetchone()
    assert set(hours) <= {20, 21, 22, 23} and min_ms >= 95_000 and loops < 50


def test_the_new_columns_are_deterministic_for_a_seed(tmp_path):
    args = dict(users=300, events=20_000, seed=3)
    a = generate_month(tmp_path / "a", MONTH, **args)
    b = generate_month(tmp_path / "b", MONTH, **args)
    c = generate_month(tmp_path / "c", MONTH, **{**args, "seed": 4})

    def columns(root: Path) -> tuple:
        ev = pq.read_table(root / "listening_events", columns=["event_id", "source"]).sort_by("event_id")
        tr = pq.read_table(root / "catalog" / "tracks.parquet", columns=["artist_id", "content_type"])
        return ev.column("source").to_pylist(), tr.column("artist_id").to_pylist(), tr.column("content_type").to_pylist()

    assert columns(tmp_path / "a") == columns(tmp_path / "b") != columns(tmp_path / "c")
    assert (a.sleeper_user_ids, a.noise_plays, a.tracks_without_artist_id) == (
        b.sleeper_user_ids, b.noise_plays, b.tracks_without_artist_id
    )
    assert a.tracks_without_artist_id != c.tracks_without_artist_id


# ---------------------------------------------------------------------------------------------
# Taste follows listening intensity, so user-centric moves money (docs/sample-data.md)
# ---------------------------------------------------------------------------------------------


def test_heavy_listeners_concentrate_on_the_top_catalogue_and_light_ones_on_niche_favourites(db, small_month):
    """Organic listeners (bots, loopers and sleepers aside) ranked by plays: the top 20 % ("heavy") against
    the bottom half ("light"); the top catalogue is the month's 10 % most played catalog tracks."""
    _, s = small_month
    special = tuple(s.bot_user_ids + s.looper_user_ids + s.sleeper_user_ids)
    rows = db.execute(
        f"""with p as (select user_id, track_id from ev
                       where user_id not in {special} and user_id <> '' and track_id like 't0%'),
                top as (select track_id from p group by 1 order by count(*) desc, track_id limit 100),
                u as (select user_id, row_number() over (order by count(*) desc, user_id) rk,
                             count(*) over () users from p group by 1),
                g as (select user_id, case when rk <= ceil(0.2 * users) then 'heavy'
                                           when rk > floor(0.5 * users) then 'light' end grp from u)
            select grp, count(distinct user_id), count(*),
                   round(avg((track_id in (select track_id from top))::int), 4),
                   round(count(distinct (user_id, track_id)) / count(*), 4)
            from p join g using (user_id) where grp is not null group by 1 order by 1"""
    ).fetchall()
    (_, heavy_users, heavy_plays, heavy_top, heavy_distinct), (_, light_users, light_plays, light_top, _) = rows
    assert heavy_plays > 5 * light_plays and light_users > 2 * heavy_users
    # the same taste for everyone would give both groups ~71 % (the previous model: 70.5 / 71.0 %)
    assert heavy_top - light_top > 0.2
    assert (heavy_top, light_top) == (0.6847, 0.4022)
    # heavy listeners replay: under half of their plays are a new (user, track) pair
    assert heavy_distinct == 0.4899


def _oracle_comparison(root: Path, month: str):
    """UC, PR and ACPS for a generated month, by the independent oracle of the payout rules (the
    contract's cascade in DuckDB, then rules 1-8 and 11 in plain Python), summed up by
    ``compare_models`` exactly as the pipeline's metadata and ``fairstream summary`` do."""
    from fairstream_pipeline.lib.payouts.report import compare_models
    from fairstream_pipeline_tests.payout_oracle import compute_month

    con = duckdb.connect()
    glob = root.as_posix()
    con.execute(
        f"""create table ev as select event_id, user_id, track_id, played_at, ms_played,
                   coalesce(source in {ACTIVE_SOURCES}, false) as active,
                   cast(regexp_extract(filename, 'date=([0-9-]+)', 1) as date) as folder_date
            from read_parquet('{glob}/listening_events/date={month}-*/*.parquet', filename=true)"""
    )
    con.execute(f"create table subs as select * from read_parquet('{glob}/subscriptions/month={month}/*.parquet')")
    plays = con.execute(
        """select distinct event_id, user_id, track_id, cast(timezone('UTC', played_at) as date) as day, ms_played,
                  active
           from ev
           where event_id <> '' and user_id <> '' and track_id <> '' and ms_played >= 0
             and cast(timezone('UTC', played_at) as date) = folder_date
             and event_id not in (select event_id from ev group by 1
                                  having count(distinct (user_id, track_id, played_at, ms_played)) > 1)
             and user_id in (select user_id from subs)"""
    ).fetchall()
    tracks = {
        track: (artist, content_type == "noise")
        for track, artist, content_type in con.execute(
            f"""select track_id, coalesce(artist_id, artist_name), content_type
                from read_parquet('{glob}/catalog/tracks.parquet')"""
        ).fetchall()
    }
    month_payout = compute_month(
        [(user, track, day, ms, active) for _, user, track, day, ms, active in plays],
        con.execute("select user_id, plan, country, net_cents from subs").fetchall(),
        dict(con.execute(f"select country, net_cents from read_parquet('{glob}/ad_revenue/month={month}/*.parquet')").fetchall()),
        con.execute(f"select track_id, payee_id, share_ppm from read_parquet('{glob}/catalog/rights_splits.parquet')").fetchall(),
        tracks=tracks,
    )
    rows = [(c, t, p, uc, pr, acps) for (c, t, p), (uc, pr, acps) in month_payout.earnings.items()]
    earnings = pa.table(
        [list(column) for column in zip(*rows)],
        names=["country", "tier", "payee_id", "uc_cents", "pr_cents", "acps_cents"],
    )
    con.register("earnings_arrow", earnings)
    con.execute("create table payee_earnings as select * from earnings_arrow")
    con.execute(f"create table payee_directory as select payee_id, name from read_parquet('{glob}/catalog/payees.parquet')")
    return compare_models(con, names_view="payee_directory"), con, month_payout


# ``make demo``'s months by the oracle, as `fairstream summary` prints them (docs/sample-data.md, "What
# the demo shows"). ACPS: (uc, pr, acps) cents of the professional artists, the other artists and
# the noise acts.
DEMO_MONTHS = {
    "2026-09": dict(
        moved=2.15,
        top_1pct_cents=(1_097_031, 1_050_556, 2_163_543),
        top10_artists_change=-17.0,
        professionals=31,
        pro_cents=(294_002, 353_140, 482_936),
        other_cents=(526_744, 459_766, 344_853),
        noise_cents=(14_982, 22_292, 0),
    ),
    "2026-10": dict(
        moved=2.15,
        top_1pct_cents=(1_097_835, 1_051_259, 2_164_657),
        top10_artists_change=-18.0,
        professionals=31,
        pro_cents=(298_296, 354_438, 482_773),
        other_cents=(523_418, 461_750, 345_093),
        noise_cents=(16_114, 19_844, 0),
    ),
}


@pytest.fixture(scope="module", params=sorted(DEMO_MONTHS))
def demo_month(request, tmp_path_factory):
    """A month of ``make demo`` (users 5000, seed 7, default events and tracks), by the oracle."""
    month = request.param
    root = tmp_path_factory.mktemp(f"demo-{month}")
    summary = generate_month(root, month, users=5000, seed=7)
    assert summary.events_requested == 300_000
    c, con, month_payout = _oracle_comparison(root, month)
    yield summary, c, con, month_payout, DEMO_MONTHS[month]
    con.close()


def test_the_demo_month_moves_about_two_points_from_the_top_1pct_under_user_centric(demo_month):
    _, c, con, _, expected = demo_month
    assert c.uc_total_cents == c.pr_total_cents
    assert (c.payees, c.top_1pct_payees) == (1396, 14)
    # issue 12: at least 2 points (2.35 and 2.37 before the noise of ACPS v1; the sleepers' noise,
    # which pro-rata pays more than user-centric, costs about 0.1 of them: docs/sample-data.md)
    assert c.moved_share_points >= 2
    assert c.moved_share_points == expected["moved"]
    # the top 1 % by pro-rata (5 labels, 6 artists, 1 writer, 2 publishers; the same 14 payees in both
    # months) hold 50.71-50.72 % of the money under PR and 48.56 % under UC (as `fairstream summary`
    # prints them): they lose 4.2 % of theirs
    assert (c.pr_top_1pct_cents, c.pr_top_1pct_uc_cents, c.pr_total_cents) == expected["top_1pct_cents"]
    # the ten biggest artists by pro-rata lose 17-18 % (CNM/Deloitte 2021, France: the top 10 lose 17.2 %)
    uc, pr = con.execute(
        """select sum(uc), sum(pr) from (
               select sum(uc_cents) as uc, sum(pr_cents) as pr from payee_earnings
               where payee_id like 'artist-%' group by payee_id order by pr desc, payee_id limit 10)"""
    ).fetchone()
    assert round(100 * (uc - pr) / pr, 1) == expected["top10_artists_change"]


def test_the_demo_month_moves_money_to_professional_artists_and_away_from_noise_under_acps(demo_month):
    summary, c, con, month_payout, expected = demo_month
    assert c.acps_total_cents == c.uc_total_cents == c.pr_total_cents
    # a few dozen artists are professional under the defaults (>= 1000 counted music streams and
    # >= 500 listeners); most are not, and neither is a noise act (their listeners are the sleepers)
    professional = month_payout.professional
    pros = sorted(a for a, (_streams, _listeners, pro) in professional.items() if pro)
    assert (len(pros), len(professional)) == (expected["professionals"], 624)
    assert all(a.startswith("A") for a in pros)  # no track without artist_id is that big
    assert max(n for n, _, pro in professional.values() if not pro) < 1000
    noise_acts = tuple("A" + p.split("-")[1].rjust(6, "0") for p in summary.noise_act_ids)
    assert not set(noise_acts) & set(professional)  # noise: no counted *music* stream at all
    con.execute("create or replace temp table pros as select unnest(?) as artist_id", [pros])
    artist_payee = "'artist-' || lpad(substr(artist_id, 2)::int::varchar, 5, '0')"
    pro_cents, other_cents, noise_cents = con.execute(
        f"""select sum(uc_cents), sum(pr_cents), sum(acps_cents) from payee_earnings
            where payee_id in (select {artist_payee} from pros)
            union all
            select sum(uc_cents), sum(pr_cents), sum(acps_cents) from payee_earnings
            where payee_id like 'artist-%' and payee_id not in (select {artist_payee} from pros)
              and payee_id not in {summary.noise_act_ids}
            union all
            select sum(uc_cents), sum(pr_cents), sum(acps_cents) from payee_earnings
            where payee_id in {summary.noise_act_ids}"""
    ).fetchall()
    # (uc, pr, acps) cents: the professionals gain 62-64 % against UC, the other artists lose 34-35 %,
    # and the noise acts' 149.82 EUR under UC (222.92 under PR) in 2026-09, 161.14 (198.44) in
    # 2026-10, become nothing
    assert pro_cents == expected["pro_cents"]
    assert other_cents == expected["other_cents"]
    assert noise_cents == expected["noise_cents"]
    assert pro_cents[2] > 1.5 * pro_cents[0] and other_cents[2] < other_cents[0] and noise_cents[2] == 0


# ---------------------------------------------------------------------------------------------
# Anomalies: the summary's counts are what the contract's cascade finds in the files
# ---------------------------------------------------------------------------------------------


def test_anomaly_counts_match_an_independent_recount(db, small_month):
    root, s = small_month
    footer_rows = sum(
        pq.ParquetFile(p).metadata.num_rows for p in (root / "listening_events").rglob("*.parquet")
    )
    assert one(db, "select count(*) from ev") == footer_rows == s.rows_written
    assert one(db, "select count(*) from invalid") == s.invalid_rows == 6
    assert one(db, "select count(*) from outside") == s.outside_partition == 5
    assert one(db, "select count(*) from conflicting") == s.conflicting_duplicate_rows == 8
    assert one(db, "select count(*) from pass3") - one(db, "select count(*) from dedup") == s.exact_duplicates
    assert one(db, "select count(*) from unknown") == s.unknown_user_events == 7
    assert one(db, "select count(*) from clean") == s.expected_clean_plays
    assert (
        s.expected_clean_plays + s.invalid_rows + s.outside_partition + s.conflicting_duplicate_rows
        + s.exact_duplicates + s.unknown_user_events
        == s.rows_written
    )
    assert 0.001 <= s.exact_duplicates / s.rows_written <= 0.003
    # counted by event_id, events with more than one distinct field tuple (before any cascade)
    assert (
        one(db, """select count(*) from ev where event_id in (select event_id from ev group by 1
                   having count(distinct (user_id, track_id, played_at, ms_played)) > 1)""")
        == s.conflicting_duplicate_rows
    )
    # distinct events = rows minus the re-sent copies and twins
    assert one(db, "select count(distinct event_id) from ev") == s.rows_written - s.exact_duplicates - 4


def test_anomalies_are_placed_where_documented(db, small_month):
    _, s = small_month
    out = db.execute("select played_at, folder_date from outside").fetchall()
    for played_at, folder in out:
        assert (folder - played_at.date()).days == 1 and played_at.hour == 23 and played_at.minute == 59
    assert min(folder for _, folder in out).day > 1
    # every re-sent copy and conflicting twin sits in the last part file of its own day folder,
    # and its original in a main part file of the same folder
    in_last, elsewhere, ids = db.execute(
        """with last as (select folder_date, max(filename) f from ev group by 1),
                dup as (select event_id from ev group by 1 having count(*) > 1)
           select count(*) filter (where filename = f), count(*) filter (where filename <> f),
                  count(distinct event_id)
           from ev join last using (folder_date) where event_id in (select event_id from dup)"""
    ).fetchone()
    assert in_last == elsewhere == ids == s.exact_duplicates + s.conflicting_duplicate_rows // 2
    assert one(db, "select count(distinct folder_date) from ev where event_id in (select event_id from conflicting)") >= 1
    assert one(db, "select max(n) from (select count(distinct folder_date) n from ev group by event_id)") == 1
    unknown_users = {r[0] for r in db.execute("select distinct user_id from unknown").fetchall()}
    assert unknown_users and not unknown_users & set(s.bot_user_ids) and re.fullmatch(
        r"u\d{7}", min(unknown_users)
    )


def test_each_anomalous_row_is_anomalous_in_exactly_one_way(db):
    unknown_anywhere = one(
        db, "select count(*) from ev where user_id <> '' and user_id not in (select user_id from subs)"
    )
    assert unknown_anywhere == one(db, "select count(*) from unknown") == 7
    defects = db.execute(
        """select (event_id is null or event_id = '')::int + (user_id is null or user_id = '')::int
                  + (track_id is null or track_id = '')::int + (played_at is null)::int
                  + (ms_played is null or ms_played < 0)::int as n,
                  coalesce(cast(timezone('UTC', played_at) as date) = folder_date, true) as in_partition,
                  coalesce(user_id in (select user_id from subs) or user_id = '', true) as billed,
                  (select count(*) from ev e2 where e2.event_id = invalid.event_id) as copies
           from invalid"""
    ).fetchall()
    assert defects == [(1, True, True, 1)] * 6
    for table in ("outside", "conflicting"):
        assert one(db, f"select count(*) from {table} where user_id not in (select user_id from subs)") == 0
        assert one(db, f"select count(*) from {table} where track_id not in (select track_id from tracks)") == 0
    assert one(db, "select count(*) from ev where event_id in (select event_id from outside)") == 5
    assert one(db, "select max(n) from (select count(*) n from conflicting group by event_id)") == 2
    assert one(db, "select count(*) from ev where event_id in (select event_id from conflicting)") == 8
    # exact copies are copies of clean plays
    copied = db.execute(
        "select event_id from pass3 group by 1 having count(*) > 1 except select event_id from clean"
    ).fetchall()
    assert copied == []


def test_small_part_files_split_days_and_keep_counts(tmp_path, monkeypatch):
    monkeypatch.setattr(sample_events, "MAX_ROWS_PER_PART", 700)
    s = generate_month(tmp_path, MONTH, users=200, seed=5, events=40_000)
    day = tmp_path / "listening_events" / f"date={MONTH}-09"
    parts = sorted(day.glob("*.parquet"))
    assert len(parts) >= 2
    tables = [pq.read_table(p) for p in parts]
    seen_last = None
    for t in tables[:-1]:  # main parts: sorted by played_at, consecutive event ids
        assert t.num_rows <= 700 + 50
        times = t.column("played_at").to_pylist()
        ids = t.column("event_id").to_pylist()
        assert all(a is None or b is None or a <= b for a, b in zip(times, times[1:]))
        numbers = [int(i.split("-")[1]) for i in ids]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        if seen_last is not None:
            assert numbers[0] == seen_last + 1
        seen_last = numbers[-1]
    assert tables[0].column("event_id")[0].as_py() == f"e{MONTH.replace('-', '')}09-000000001"
    assert s.event_files == sum(len(list(d.glob("*.parquet"))) for d in (tmp_path / "listening_events").iterdir())
    assert s.event_files > 2 * 31
    assert s.rows_written == sum(pq.ParquetFile(p).metadata.num_rows for p in tmp_path.rglob("date=*/*.parquet"))


# ---------------------------------------------------------------------------------------------
# CLI and argument validation
# ---------------------------------------------------------------------------------------------


def test_cli_writes_a_month_and_prints_the_json_summary(tmp_path, capsys):
    out = tmp_path / "landing"
    code = cli.main(["sample", "--month", "2027-02", "--users", "100", "--seed", "1", "--out", str(out), "--events", "5000"])
    assert code == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["month"] == "2027-02" and summary["days"] == 28 and summary["users"] == 100
    assert summary["tracks_in_catalog"] == 200  # default max(200, 100 // 2)
    assert "wrote 2027-02" in captured.err
    assert len(list((out / "listening_events").glob("date=2027-02-*/_SUCCESS"))) == 28
    assert (out / "subscriptions/month=2027-02/part-00000.parquet").is_file()
    assert (out / "catalog/rights_splits.parquet").is_file()
    assert summary["rows_written"] == sum(pq.ParquetFile(p).metadata.num_rows for p in out.rglob("date=*/*.parquet"))
    again = generate_month(tmp_path / "api", "2027-02", users=100, seed=1, events=5000)
    assert again.to_dict() == summary


def test_cli_defaults(tmp_path, capsys):
    assert cli.main(["sample", "--month", "2026-02", "--users", "60", "--seed", "2", "--out", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["events_requested"] == 60 * 60 and summary["tracks_in_catalog"] == 200


@pytest.mark.parametrize(
    "bad",
    [
        ["--month", "2026-13"],
        ["--month", "2026-1"],
        ["--month", "oct-2026"],
        ["--users", "0"],
        ["--users", "-5"],
        ["--users", "many"],
        ["--events", "0"],
        ["--seed", "-1"],
        ["--tracks", "10"],
    ],
)
def test_cli_rejects_bad_arguments(tmp_path, capsys, bad):
    args = {"--month": "2026-10", "--users": "100", "--seed": "1", "--out": str(tmp_path)}
    extra = []
    if bad[0] in args:
        args[bad[0]] = bad[1]
    else:
        extra = bad
    argv = ["sample", *[x for kv in args.items() for x in kv], *extra]
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert bad[0].lstrip("-") in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_cli_requires_a_subcommand(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([])
    assert exc.value.code == 2


def test_generate_month_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="YYYY-MM"):
        generate_month(tmp_path, "2026-00", users=100, seed=1)
    with pytest.raises(ValueError, match="users"):
        generate_month(tmp_path, MONTH, users=10, seed=1)
    with pytest.raises(ValueError, match="tracks"):
        generate_month(tmp_path, MONTH, users=100, seed=1, tracks=5)
    assert not any(tmp_path.iterdir())

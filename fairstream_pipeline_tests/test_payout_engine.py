"""The DuckDB payout engine agrees with the independent pure-Python oracle, to the pico-cent."""

from __future__ import annotations

import dataclasses
import random
import tempfile
from datetime import datetime, time, timedelta, timezone

from pathlib import Path

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from fairstream_pipeline.lib.payouts import engine as payout_engine
from fairstream_pipeline.lib.payouts.rules import PayoutRules as EngineRules
from fairstream_pipeline.lib.lake.tables import scratch_view
from fairstream_pipeline.lib.payouts.shards import SHARD_TABLES, ShardStore, attach_shards
from fairstream_pipeline.lib.ingestion.user_buckets import bucket_sql, user_bucket
from fairstream_pipeline_tests import payout_oracle as oracle
from fairstream_pipeline_tests.strategies import DAY1, PAYEES, PROPERTY_SETTINGS, TRACKS, months


def insert(con: duckdb.DuckDBPyConnection, table: str, rows) -> None:
    """Insert the rows (tuples in the table's column order) at once, through Arrow: DuckDB's
    ``executemany`` runs one statement per row, which would be most of this file's run time."""
    rows = list(rows)
    if rows:
        con.register("new_rows", pa.table({f"c{i}": list(column) for i, column in enumerate(zip(*rows))}))
        con.execute(f"INSERT INTO {table} SELECT * FROM new_rows")
        con.unregister("new_rows")


def run_engine(
    month: dict,
    previous_closing: dict[str, int],
    adjustments=(),
    shuffle_seed: int | None = None,
    buckets: int | None = None,
    shard_dir: Path | None = None,
    standing: dict[str, str | None] | None = None,
) -> dict:
    """Load a month into DuckDB tables (optionally in a shuffled order), run every stage, read back.

    A month with ``tracks`` gets the view ``track_attributes`` and ``clean_plays.active`` (a play
    without its fifth field is not active); a month without gets neither, as before ACPS v1.

    With ``buckets``, rules 1-4 run once per user bucket on that bucket's users and plays only, each
    shard's tables go through Parquet files under ``shard_dir`` (as between the pipeline's steps),
    and the merge reads the union of the shards.
    """
    rng = random.Random(shuffle_seed)

    def ordered(rows):
        rows = list(rows)
        if shuffle_seed is not None:
            rng.shuffle(rows)
        return rows

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    acps_inputs = "tracks" in month
    con.execute(
        "CREATE TABLE clean_plays (event_id VARCHAR, user_id VARCHAR, track_id VARCHAR, "
        f"played_at TIMESTAMPTZ, ms_played BIGINT, day DATE{', active BOOLEAN' if acps_inputs else ''})"
    )
    plays = [
        (f"e{i}", user, track, datetime.combine(day, time(12), timezone.utc) + timedelta(seconds=i), ms, day)
        + ((bool(active and active[0]),) if acps_inputs else ())
        for i, (user, track, day, ms, *active) in enumerate(month["plays"])
    ]
    insert(con, "clean_plays", ordered(plays))
    if acps_inputs:
        con.execute("CREATE TABLE track_attribute_rows (track_id VARCHAR, artist_id VARCHAR, noise BOOLEAN)")
        insert(con, "track_attribute_rows", ordered((t, a, noise) for t, (a, noise) in month["tracks"].items()))
        con.execute("CREATE VIEW track_attributes AS SELECT * FROM track_attribute_rows")
    con.execute("CREATE TABLE billed_users (user_id VARCHAR, plan VARCHAR, tier VARCHAR, country VARCHAR, net_cents BIGINT)")
    insert(
        con, "billed_users",
        ordered((u, plan, "free" if plan == "free" else "paid", c, net) for u, plan, c, net in month["subscribers"]),
    )
    con.execute("CREATE TABLE ad_revenue (country VARCHAR, net_cents BIGINT)")
    insert(con, "ad_revenue", ordered(month["ad_revenue"].items()))
    con.execute("CREATE TABLE split_rows (track_id VARCHAR, payee_id VARCHAR, share_ppm BIGINT)")
    insert(con, "split_rows", ordered(month["split_rows"]))
    con.execute("CREATE TABLE catalog_tracks AS SELECT unnest(?::VARCHAR[]) AS track_id", [TRACKS])
    con.execute("CREATE TABLE previous_statements (payee_id VARCHAR, closing_balance_cents BIGINT)")
    insert(con, "previous_statements", previous_closing.items())
    con.execute("CREATE TABLE payee_adjustments (payee_id VARCHAR, source_month VARCHAR, cents BIGINT)")
    insert(con, "payee_adjustments", ordered(adjustments))

    rules = EngineRules(**dataclasses.asdict(month["rules"]))
    payout_engine.validate_splits(con)
    if buckets is None:
        payout_engine.count_and_allocate(con, rules)
    else:
        run_shards(con, rules, buckets, shard_dir)
    payout_engine.pay_payees(con)
    if standing is not None:
        con.execute("CREATE TABLE payment_standing (payee_id VARCHAR, hold_reason VARCHAR)")
        insert(con, "payment_standing", ordered(standing.items()))
    payout_engine.roll_statements(con, rules, payment_standing=standing is not None)

    def rows(sql):
        return con.execute(sql).fetchall()

    return {
        "user_streams": {u: s for u, s in rows("SELECT user_id, streams FROM user_streams WHERE streams > 0")},
        "flagged": {u: (d, n) for u, d, n in rows("SELECT * FROM flagged_users")},
        "segments": {
            (c, t): (users, streams, int(pool), target, int(residual), int(uc_unallocated), int(weight),
                     int(acps_unallocated))
            for c, t, users, streams, pool, target, residual, uc_unallocated, weight, acps_unallocated in rows(
                "SELECT country, tier, users, counted_streams, pool_pico, target_cents, residual_pico, "
                "uc_unallocated_pico, acps_weight, acps_unallocated_pico FROM segment_pools"
            )
        },
        "earnings": {
            (c, t, p): (uc, pr, acps)
            for c, t, p, uc, pr, acps in rows(
                "SELECT country, tier, payee_id, uc_cents, pr_cents, acps_cents FROM payee_earnings"
            )
        },
        "professional": {
            a: (streams, listeners, professional)
            for a, streams, listeners, professional in rows(
                "SELECT artist_id, streams, listeners, professional FROM professional_artists"
            )
        },
        "acps_weights": {
            (c, t, track): int(w)
            for c, t, track, w in rows("SELECT country, tier, track_id, acps_weight FROM track_earnings WHERE acps_weight <> 0")
        },
        "acps_track_pico": {
            (c, t, track): int(pico)
            for c, t, track, pico in rows("SELECT country, tier, track_id, acps_pico FROM track_earnings WHERE acps_pico <> 0")
        },
        "statements": {
            r[0]: tuple(r[1:])
            for r in rows(
                "SELECT payee_id, opening_balance_cents, earned_cents, pro_rata_cents, paid_cents, "
                "closing_balance_cents, adjustment_cents, hold_reason, acps_cents, payout_model FROM payee_statements"
            )
        },
        "files": {
            table: rows(f"SELECT * FROM {table} ORDER BY ALL")
            for table in ("user_streams", "flagged_users", "professional_artists", "segment_pools", "track_earnings",
                          "payee_earnings", "payee_statements")
        },
    }


def run_shards(con: duckdb.DuckDBPyConnection, rules: EngineRules, buckets: int, shard_dir: Path) -> None:
    """Rules 1-4 per bucket into the pipeline's shard folders (``lib.payouts.shards``), then the merge."""
    con.execute("ALTER TABLE clean_plays RENAME TO all_plays")
    con.execute("ALTER TABLE billed_users RENAME TO all_billed_users")
    store, folders = ShardStore(shard_dir, "M", "test"), []
    for bucket in range(buckets):
        in_bucket = f"{bucket_sql('user_id', buckets)} = {bucket}"
        con.execute(f"CREATE OR REPLACE TEMP VIEW clean_plays AS SELECT * FROM all_plays WHERE {in_bucket}")
        con.execute(f"CREATE OR REPLACE TEMP VIEW billed_users AS SELECT * FROM all_billed_users WHERE {in_bucket}")
        payout_engine.allocate_shard(con, rules)
        folders.append(store.write(con, bucket, buckets)[0])
        for table in SHARD_TABLES:
            con.execute(f"DROP TABLE {table}")
    assert attach_shards(con, folders) == buckets
    con.execute("CREATE OR REPLACE TEMP VIEW billed_users AS SELECT * FROM all_billed_users")
    payout_engine.price_segments(con, rules)


def run_oracle(month: dict, previous_closing: dict[str, int], adjustments=(), standing=None) -> dict:
    result = oracle.compute_month(
        month["plays"], month["subscribers"], month["ad_revenue"], month["split_rows"], month["rules"],
        month.get("tracks"),
    )
    per_payee: dict[str, int] = {}
    for payee, _, cents in adjustments:
        per_payee[payee] = per_payee.get(payee, 0) + cents
    statements = oracle.roll_statements(
        previous_closing, result, month["rules"].payout_threshold_cents, per_payee, standing,
        payout_model=month["rules"].payout_model,
    )
    return {"result": result, "statements": statements}


previous_balances = st.dictionaries(
    st.sampled_from([*PAYEES, "__suspense__"]), st.integers(-2_000, 2_000), max_size=4
)
# Adjustments for restated closed months: (payee, source month, non-zero cents), one per pair.
adjustment_rows = st.lists(
    st.tuples(
        st.sampled_from([*PAYEES, "__suspense__", "__unallocated__"]),
        st.sampled_from(["2023-10", "2023-11"]),
        st.integers(-3_000, 3_000).filter(bool),
    ),
    max_size=5,
    unique_by=lambda row: row[:2],
)


# Rule 10: None (no payment details in the landing zone), or who can be paid: a payee missing from
# the mapping has no details; None means payable, else the reason they are held.
standings = st.none() | st.dictionaries(
    st.sampled_from(PAYEES),
    st.sampled_from([None, "invalid_payment_details", "returned_payment"]),
    max_size=len(PAYEES),
)


def assert_engine_matches_oracle(month, previous_closing=None, adjustments=(), standing=None):
    previous_closing = previous_closing or {}
    engine = run_engine(month, previous_closing, adjustments, standing=standing)
    expected = run_oracle(month, previous_closing, adjustments, standing)
    result = expected["result"]

    user_totals: dict[str, int] = {}
    for (user, _), streams in result.counted.items():
        user_totals[user] = user_totals.get(user, 0) + streams
    assert engine["user_streams"] == user_totals
    assert engine["flagged"] == result.flagged
    assert set(engine["segments"]) == set(result.segments)
    for key, pool in result.segments.items():
        users, streams, pool_pico, target, residual, uc_unallocated, weight, acps_unallocated = engine["segments"][key]
        assert (users, streams, pool_pico, target) == (
            pool.users, pool.counted_streams, pool.pool_pico, pool.target_cents
        ), key
        if key[1] == "paid":
            assert residual == (pool.residual_pico if streams else pool.pool_pico), key
        elif streams == 0:
            assert uc_unallocated == pool.residual_pico, key
        segment_weight = sum(w for k, w in result.acps_weights.items() if k[:2] == key)
        assert (weight, acps_unallocated) == (segment_weight, 0 if segment_weight else pool.pool_pico), key
    assert engine["professional"] == result.professional
    assert engine["acps_weights"] == result.acps_weights
    assert engine["acps_track_pico"] == result.acps_track_pico
    assert engine["earnings"] == result.earnings
    model = month["rules"].payout_model
    assert engine["statements"] == {
        payee: (s.opening_balance_cents, s.earned_cents, s.pro_rata_cents, s.paid_cents, s.closing_balance_cents,
                s.adjustment_cents, s.hold_reason, s.acps_cents, model)
        for payee, s in expected["statements"].items()
    }
    return engine, result


@settings(PROPERTY_SETTINGS, max_examples=100)
@given(months(), previous_balances, adjustment_rows, standings)
def test_engine_matches_the_oracle(month, previous_closing, adjustments, standing):
    assert_engine_matches_oracle(month, previous_closing, adjustments, standing)


@settings(PROPERTY_SETTINGS, max_examples=20)
@given(months(), st.integers(0, 2**32))
def test_engine_output_ignores_the_order_of_its_input_rows(month, seed):
    assert run_engine(month, {}, shuffle_seed=seed)["files"] == run_engine(month, {})["files"]


def test_engine_needs_128_bit_money_and_keeps_every_pico_cent():
    # A segment whose pool is ~3e25 pico-cents: far beyond int64 (9.2e18), exact in HUGEINT.
    month = {
        "plays": [("big", "T0", DAY1, 60_000)] * 3 + [("big2", "T1", DAY1, 60_000)] * 7,
        "subscribers": [("big", "premium", "FR", 9_999_999_999_999), ("big2", "premium", "FR", 17_000_000_000_001)],
        "ad_revenue": {"FR": 12_345_678_901_234},
        "split_rows": [("T0", "P0", 333_333), ("T0", "P1", 666_667), ("T1", "P2", 1_000_000)],
        "rules": oracle.PayoutRules(royalty_share_ppm=999_999),
    }
    engine = run_engine(month, {})
    result = run_oracle(month, {})["result"]
    assert engine["segments"][("FR", "paid")][2] == result.segments[("FR", "paid")].pool_pico
    assert engine["segments"][("FR", "paid")][2] > 2**63
    assert engine["earnings"] == result.earnings
    for model in range(3):
        assert sum(row[model] for row in engine["earnings"].values()) == sum(
            s.target_cents for s in result.segments.values()
        )


def test_engine_computes_the_acps_worked_case_a1():
    # docs: ACPS v1, worked case A1 (computed by hand in test_payout_oracle.py).
    def listen(user, track, times, active=False):
        return [(user, track, DAY1, 60_000, active)] * times

    month = {
        "plays": listen("u1", "P", 3) + listen("u1", "Q", 2, True) + listen("u2", "P", 2, True)
        + listen("u2", "N", 5) + listen("u3", "P", 1) + listen("u3", "Q", 1),
        "subscribers": [(u, "premium", "FR", 1000) for u in ("u1", "u2", "u3")],
        "ad_revenue": {},
        "split_rows": [("P", "P", 1_000_000), ("Q", "Q", 1_000_000), ("N", "N", 1_000_000)],
        "rules": oracle.PayoutRules(
            royalty_share_ppm=1_000_000, acps_pro_min_streams=4, acps_pro_min_listeners=2, acps_user_stream_cap=10,
            payout_model="artist_centric",
        ),
        "tracks": {"P": ("P", False), "Q": ("Q", False), "N": ("N", True)},
    }
    engine, _ = assert_engine_matches_oracle(month)
    assert engine["professional"] == {"P": (6, 3, True), "Q": (3, 2, False)}
    assert engine["acps_weights"] == {("FR", "paid", "P"): 16_000_000, ("FR", "paid", "Q"): 5_000_000}
    assert engine["earnings"] == {
        ("FR", "paid", "N"): (714, 1071, 0),
        ("FR", "paid", "P"): (1386, 1286, 2286),
        ("FR", "paid", "Q"): (900, 643, 714),
    }
    assert {payee: row[1] for payee, row in engine["statements"].items()} == {"N": 0, "P": 2286, "Q": 714}


# -- shards: rules 1-4 per user bucket, added up in integers ----------------------------------------


@settings(PROPERTY_SETTINGS, max_examples=25)
@given(months(), st.sampled_from([1, 3, 16]), adjustment_rows)
def test_the_month_sharded_by_user_bucket_is_exactly_the_month_in_one_go(month, buckets, adjustments):
    with tempfile.TemporaryDirectory() as shards:
        sharded = run_engine(month, {}, adjustments, buckets=buckets, shard_dir=Path(shards))
    whole = run_engine(month, {}, adjustments)
    assert sharded["files"] == whole["files"]
    assert sharded["statements"] == whole["statements"]


def test_shards_keep_pico_cents_above_2_to_the_63_and_break_remainder_ties_like_the_whole_month(tmp_path):
    # Three paid users of one segment, one per bucket (of 3), each contributing 10,000,000,000,001
    # cents = ~1e25 pico-cents: each shard's direct share is beyond int64 on its own. They all play
    # T0, split 50/50 between P0 and P1: 30,000,000,000,003 cents, so each payee floors to
    # 15,000,000,000,001 with the same remainder of half a cent, and the one cent left goes to the
    # smaller payee_id (rule 8), sharded or not.
    users = ["big-a", "big-b", "big-d"]
    assert sorted(user_bucket(u, 3) for u in users) == [0, 1, 2]
    month = {
        "plays": [(u, "T0", DAY1, 60_000) for u in users],
        "subscribers": [(u, "premium", "FR", 10_000_000_000_001) for u in users],
        "ad_revenue": {},
        "split_rows": [("T0", "P0", 500_000), ("T0", "P1", 500_000)],
        "rules": oracle.PayoutRules(royalty_share_ppm=1_000_000),
    }
    sharded = run_engine(month, {}, buckets=3, shard_dir=tmp_path)
    assert sharded["files"] == run_engine(month, {})["files"]
    # (a shard file keeps a HUGEINT as two 64-bit halves: lib.lake.tables.scratch_view reads it back)
    files = f"read_parquet('{tmp_path}/_shards/month=M/run=test/bucket=*/track_shares.parquet')"
    shares = duckdb.sql(f"SELECT direct_pico__hi, direct_pico__lo FROM {files}").fetchall()
    assert all(hi >= 1 for hi, _ in shares)  # above 2^64: the high half holds something
    shares = duckdb.sql(f"SELECT {scratch_view(duckdb.default_connection(), files)} FROM {files}").fetchall()
    shares = [(row[4],) for row in shares]  # country, tier, track_id, streams, direct_pico, ...
    assert sorted(int(pico) for (pico,) in shares) == [10_000_000_000_001 * 10**12] * 3
    assert all(int(pico) > 2**63 for (pico,) in shares)
    assert sharded["earnings"] == {
        ("FR", "paid", "P0"): (15_000_000_000_002, 15_000_000_000_002, 15_000_000_000_002),
        ("FR", "paid", "P1"): (15_000_000_000_001, 15_000_000_000_001, 15_000_000_000_001),
    }


def test_shards_add_up_the_artists_reach_before_judging_who_is_professional(tmp_path):
    # big-a, big-b and big-d are in buckets 0, 1 and 2 of 3, pay 1000 each and play T0 (artist A0)
    # once; big-a also plays T1 (artist A1) once. Thresholds 3 streams / 3 listeners: A0 is
    # professional only over the whole month (each shard alone sees 1 stream and 1 listener).
    # ACPS: big-a (M 2): T0 2 * 1 * 2e6 / 2 = 2e6, T1 1e6; big-b, big-d: T0 2e6 each.
    # W = T0 6e6, T1 1e6: 3000 * 6/7 = 2571.43, 428.57 -> 2999, +1 T1 (.57): P0 2571, P1 429.
    # (Judged per shard, A0 would weigh 3e6 and pay 2250 / 750, which is pro-rata.)
    users = ["big-a", "big-b", "big-d"]
    assert sorted(user_bucket(u, 3) for u in users) == [0, 1, 2]
    month = {
        "plays": [(u, "T0", DAY1, 60_000, False) for u in users] + [("big-a", "T1", DAY1, 60_000, False)],
        "subscribers": [(u, "premium", "FR", 1000) for u in users],
        "ad_revenue": {},
        "split_rows": [("T0", "P0", 1_000_000), ("T1", "P1", 1_000_000)],
        "rules": oracle.PayoutRules(royalty_share_ppm=1_000_000, acps_pro_min_streams=3, acps_pro_min_listeners=3),
        "tracks": {"T0": ("A0", False), "T1": ("A1", False)},
    }
    sharded = run_engine(month, {}, buckets=3, shard_dir=tmp_path)
    whole, _ = assert_engine_matches_oracle(month)
    assert sharded["files"] == whole["files"]
    assert sharded["professional"] == {"A0": (3, 3, True), "A1": (1, 1, False)}
    assert sharded["earnings"] == {("FR", "paid", "P0"): (2500, 2250, 2571), ("FR", "paid", "P1"): (500, 750, 429)}

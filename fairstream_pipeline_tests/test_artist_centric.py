"""ACPS v1, the artist-centric model (docs/payout-rules.md, rule 11), through the real CLI.

One January holds worked case A1 and six hand-computed cases, each in its own country (a segment of
its own) with its own users and artists, so that they do not touch each other: the professional
thresholds are platform-wide, but every artist is played in one case only. February repeats the
same plays under ``acps_cap_mode: normalise`` with ``payout_model: artist_centric``. Scaled rules
for both: royalty share 100%, a professional artist needs 4 counted music streams and 2 listeners,
C = 10, both boosts 2, at most 10 plays per (user, track, day).
"""

import json
import subprocess
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from fairstream_pipeline.lib.ingestion import clean_plays
from fairstream_pipeline.lib.ingestion.landing_zone import LandingZone, LandingZoneError
from fairstream_pipeline.lib.ingestion.monthly_tables import BILLED_USERS, ingest_monthly_table
from fairstream_pipeline.lib.ingestion.play_ingestion import ingest_plays
from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline_tests.landing_builders import Landing
from fairstream_pipeline_tests.payout_cases import MonthCase, Plays
from fairstream_pipeline_tests.test_cli_end_to_end import embedded_home, materialize, project_env

pytestmark = pytest.mark.e2e

JAN, FEB = "2024-01", "2024-02"
SCALED = {
    "royalty_share_ppm": 1_000_000,
    "acps_pro_min_streams": 4,
    "acps_pro_min_listeners": 2,
    "acps_user_stream_cap": 10,
    "max_held_share_ppm": 1_000_000,  # PT's pool goes to __unallocated__ under ACPS on purpose
}
S = "search"  # an active play


def config(**rules) -> str:
    return json.dumps({"resources": {"payout_rules": {"config": {**SCALED, **rules}}}})


def cases() -> MonthCase:
    """A1 (FR) and the cases B (DE), C (IT), D (ES), E (BE, free), F (NL), G (PT)."""
    users = [(u, "premium", "FR", 1000) for u in ("u1", "u2", "u3")]
    plays = [  # A1: P is professional (6 streams, 3 listeners), Q is not (2 listeners, 3 streams), N is noise
        Plays("u1", "P", 3), Plays("u1", "Q", 2, source=S),
        Plays("u2", "P", 2, source=S), Plays("u2", "N", 5),
        Plays("u3", "P", 1), Plays("u3", "Q", 1),
    ]
    # B, the cap binds: d1 plays R 20 times over two days (M = 20 > C), d2 plays S 5 times.
    users += [("d1", "premium", "DE", 1000), ("d2", "premium", "DE", 1000)]
    plays += [Plays("d1", "R", 10, day=1), Plays("d1", "R", 10, day=2), Plays("d2", "S", 5)]
    # C, the thresholds: T has exactly 4 streams and 2 listeners (professional), V 4 streams but one
    # listener, W 2 listeners but 3 streams.
    users += [("i1", "premium", "IT", 1000), ("i2", "premium", "IT", 1000), ("i3", "premium", "IT", 1000)]
    plays += [Plays("i1", "T", 2), Plays("i1", "V", 4), Plays("i2", "T", 2), Plays("i2", "W", 2), Plays("i3", "W", 1)]
    # D, a noise-only user: e1 funds the pool but has no music stream.
    users += [("e1", "premium", "ES", 1000), ("e2", "premium", "ES", 1000)]
    plays += [Plays("e1", "N2", 5), Plays("e2", "X2", 1)]
    # E, a free segment: 500 cents of ad revenue; F1 is professional (4 streams, 2 listeners).
    users += [("b1", "free", "BE", 0), ("b2", "free", "BE", 0)]
    plays += [Plays("b1", "F1", 3), Plays("b2", "F1", 1, source=S), Plays("b2", "F2", 1)]
    # F, active plays over the daily cap: 12 plays of G by n1 in a day, 11 active: 10 count, all active.
    users += [("n1", "premium", "NL", 1000), ("n2", "premium", "NL", 1000)]
    plays += [Plays("n1", "G", 11, source=S), Plays("n1", "G", 1), Plays("n1", "H", 2), Plays("n2", "H", 3)]
    # G, only noise is played: ΣW = 0, the pool is unallocated under ACPS.
    users += [("p1", "premium", "PT", 1000)]
    plays += [Plays("p1", "N3", 2)]
    tracks = ["P", "Q", "N", "R", "S", "T", "V", "W", "N2", "X2", "F1", "F2", "G", "H", "N3"]
    return MonthCase(
        users, plays, ad_revenue=[("BE", 500)], noise={"N", "N2", "N3"}, artists={t: f"artist-{t}" for t in tracks}
    )


def earnings(lake: Lake, month: str) -> dict[tuple[str, str], tuple[int, int, int]]:
    """(country, payee) -> (uc, pr, acps) cents"""
    rows = duckdb.sql(
        f"SELECT country, payee_id, uc_cents, pr_cents, acps_cents FROM {read_parquet(lake.parquet_glob('payee_earnings', month))}"
    ).fetchall()
    return {(c, p): (uc, pr, acps) for c, p, uc, pr, acps in rows}


def statements(lake: Lake, month: str) -> dict[str, tuple]:
    """payee -> (earned, pro_rata, acps, payout_model)"""
    rows = duckdb.sql(
        f"""SELECT payee_id, earned_cents, pro_rata_cents, acps_cents, payout_model
            FROM {read_parquet(lake.parquet_glob('payee_statements', month))}"""
    ).fetchall()
    return {payee: tuple(rest) for payee, *rest in rows}


@pytest.fixture(scope="module")
def two_months(tmp_path_factory):
    root = tmp_path_factory.mktemp("acps")
    landing = Landing(root / "landing")
    for month in (JAN, FEB):
        cases().write(landing, month)
    env = project_env(landing.root, root / "warehouse", embedded_home(root / "home"))
    env["FAIRSTREAM_FIRST_MONTH"] = JAN
    january = materialize(env, JAN, "*", "--config-json", config())
    february = materialize(env, FEB, "*", "--config-json", config(acps_cap_mode="normalise", payout_model="artist_centric"))
    return env, Lake(root / "warehouse"), january, february


def test_a1_and_the_cases_under_cap(two_months):
    _, lake, january, _ = two_months
    assert january.returncode == 0, january.stderr[-4000:]
    money = earnings(lake, JAN)
    # A1, as docs/payout-rules.md works it: weights P 16·10^6, Q 5·10^6; 3000 × 16/21 = 2285.7.
    assert {p: money[("FR", p)] for p in ("P", "Q", "N")} == {
        "P": (1386, 1286, 2286), "Q": (900, 643, 714), "N": (714, 1071, 0)
    }
    # B: K = min(20, 10) for d1: w(R) = 20·10·10^6/20 = 10^7, w(S) = 5·10^6; 2000 × 10/15 = 1333.3.
    assert money[("DE", "R")] == (1000, 1600, 1333) and money[("DE", "S")] == (1000, 400, 667)
    # C: T professional (exactly 4 and 2): W_T = 4+4, W_V = 4, W_W = 2+1 (10^6); 3000 × 8/15 = 1600 exactly.
    assert [money[("IT", p)][2] for p in ("T", "V", "W")] == [1600, 800, 600]
    # D: e1 has no music stream; X2 takes the whole pool under ACPS, N2 nothing.
    assert money[("ES", "X2")] == (1000, 333, 2000) and money[("ES", "N2")] == (1000, 1667, 0)
    # E (free): F1 professional, W_F1 = 6 + 2·(2·1) = 10, W_F2 = 1; 500 × 10/11 = 454.5, the cent to F1.
    assert money[("BE", "F1")] == (400, 400, 455) and money[("BE", "F2")] == (100, 100, 45)
    # F: a(n1, G) = min(11, 10) = 10, M = 12, K = 10: w(G) = floor(20·10·10^6/12) = 16,666,666,
    # H professional (5 streams, 2 listeners): 3,333,333 + 6,000,000; 2000 × 16,666,666/25,999,999 = 1282.05.
    assert money[("NL", "G")][2] == 1282 and money[("NL", "H")][2] == 718
    # G: only noise in PT: the ACPS pool is unallocated.
    assert money[("PT", "N3")] == (1000, 1000, 0) and money[("PT", "__unallocated__")] == (0, 0, 1000)
    # Statements pay user-centric and show the other two beside it.
    jan = statements(lake, JAN)
    assert jan["P"] == (1386, 1286, 2286, "user_centric") and jan["N"] == (714, 1071, 0, "user_centric")
    assert {s[3] for s in jan.values()} == {"user_centric"}


def test_professional_artists_lists_streams_and_listeners_against_the_thresholds(two_months):
    _, lake, _, _ = two_months
    rows = duckdb.sql(
        f"""SELECT artist_id, artist_name, counted_streams, listeners, pro_min_streams, pro_min_listeners, professional
            FROM {read_parquet(lake.parquet_glob('professional_artists', JAN))} ORDER BY artist_id"""
    ).fetchall()
    verdicts = {r[0]: (r[2], r[3], r[6]) for r in rows}
    assert verdicts == {
        "artist-P": (6, 3, True), "artist-Q": (3, 2, False),
        "artist-R": (20, 1, False), "artist-S": (5, 1, False),
        "artist-T": (4, 2, True), "artist-V": (4, 1, False), "artist-W": (3, 2, False),
        "artist-X2": (1, 1, False), "artist-F1": (4, 2, True), "artist-F2": (1, 1, False),
        "artist-G": (10, 1, False), "artist-H": (5, 2, True),
    }  # noise tracks (N, N2, N3) count for nobody
    assert {(r[4], r[5]) for r in rows} == {(4, 2)}
    assert rows[0][1] == "Artist F1"


def test_normalise_and_artist_centric_pay_the_acps_cents(two_months):
    _, lake, _, february = two_months
    assert february.returncode == 0, february.stderr[-4000:]
    money = earnings(lake, FEB)
    # normalise, K = C = 10 for everyone. A1: P 12+40+10, Q 8+5 (10^6): 3000 × 62/75 = 2480 exactly.
    assert money[("FR", "P")][2] == 2480 and money[("FR", "Q")][2] == 520
    # B: both users count as 10 streams: 1000 each, as user-centric.
    assert money[("DE", "R")][2] == 1000 and money[("DE", "S")][2] == 1000
    # C: T 6,666,666 + 10^7, V 6,666,666, W 5·10^6 + 10^7; 1304.3 / 521.7 / 1173.9, two cents by remainder.
    assert [money[("IT", p)][2] for p in ("T", "V", "W")] == [1304, 522, 1174]
    # E: F1 20 + 20, F2 5 (10^6): 444.4 and 55.6, the cent to F2.
    assert money[("BE", "F1")][2] == 444 and money[("BE", "F2")][2] == 56
    # F: H 3,333,333 + 20,000,000: 2000 × 16,666,666/39,999,999 = 833.3 and 1166.7.
    assert money[("NL", "G")][2] == 833 and money[("NL", "H")][2] == 1167
    feb = statements(lake, FEB)
    # Earned is ACPS now; the user-centric figure stays in payee_earnings, pro-rata beside it.
    assert feb["P"][:2] == (2480, 1286) and feb["P"][2:] == (2480, "artist_centric")
    assert feb["N"][0] == 0 and feb["X2"][0] == 2000 and feb["__unallocated__"][0] == 1000
    assert {s[3] for s in feb.values()} == {"artist_centric"}


def test_a_closed_month_is_restated_under_the_model_it_was_closed_with(two_months):
    env, lake, january, _ = two_months
    assert lake.exists("period_close", JAN)
    before = statements(lake, JAN)
    again = materialize(env, JAN, "*", "--config-json", config(payout_model="artist_centric"))
    assert again.returncode == 0, again.stderr[-4000:]
    assert "is closed: it is restated under the rules it was closed with" in again.stderr
    assert statements(lake, JAN) == before
    assert lake.manifest("payee_earnings", JAN)["rules"]["payout_model"] == "user_centric"


def test_sources_and_the_catalog_attributes_are_ingested_and_unknown_values_counted(tmp_path):
    landing = Landing(tmp_path / "landing")
    landing.catalog(
        [("t1", "One", "A", "a1", "music"), ("t2", "Two", "A", "a1", "noise"), ("t3", "Three", "B", None, "jingle")],
        [], [],
    )
    landing.subscriptions(JAN, [("u1", "premium", "FR", 999)])
    landing.ad_revenue(JAN, [])
    landing.events("2024-01-01", [
        ("e1", "u1", "t1", "2024-01-01 10:00", 60_000, "search"),
        ("e2", "u1", "t1", "2024-01-01 10:05", 60_000, "editorial_playlist"),
        ("e3", "u1", "t2", "2024-01-01 10:10", 60_000, "radio"),
        ("e4", "u1", "t3", "2024-01-01 10:15", 60_000, None),
        ("e5", "u1", "t3", "2024-01-01 10:20", 60_000, "tiktok"),
        ("e6", "u1", "t3", "2024-01-01 10:25", 60_000, "tiktok"),
    ])
    landing.events("2024-01-02", [("e7", "u1", "t1", "2024-01-02 10:00", 60_000)], name="old-collector.parquet")
    landing.close_days(JAN)
    lake, zone, con = Lake(tmp_path / "warehouse"), LandingZone(landing.root), duckdb.connect()
    with lake.write_partition("billed_users", JAN) as out:
        ingest_monthly_table(con, zone, JAN, out.file(), BILLED_USERS)
    with lake.write_partitions([("clean_plays", JAN), ("play_quarantine", JAN)]) as (clean, quarantine):
        result = ingest_plays(con, zone, JAN, lake.parquet_glob("billed_users", JAN), 1, tmp_path / "s",
                              clean.staging_dir, quarantine.file())
        clean.manifest.update(rows=result.clean_plays)
        quarantine.manifest.update(rows=0)
    # A file without the source column is accepted: its plays are not active.
    assert (result.rows_read, result.clean_plays, result.active_plays) == (7, 7, 2)
    assert result.unknown_sources == {"tiktok": 2}
    folder = lake.partition_dir("clean_plays", JAN)
    tracks = [tuple(r.values()) for r in pq.read_table(folder / clean_plays.TRACKS).to_pylist()]
    # t3 has no artist_id: its artist_name identifies it; 'jingle' counts as music and is counted.
    assert tracks == [(0, "t1", True, 0, False), (1, "t2", True, 0, True), (2, "t3", True, 1, False)]
    assert clean_plays.dictionary_record(folder)["unknown_content_types"] == {"jingle": 1}


def test_an_optional_column_of_the_wrong_type_is_a_contract_error(tmp_path):
    import pyarrow as pa

    landing = Landing(tmp_path / "landing")
    landing.event_table("2024-01-01", pa.table({
        "event_id": ["e1"], "user_id": ["u1"], "track_id": ["t1"],
        "played_at": pa.array([0], pa.timestamp("us", tz="UTC")), "ms_played": [60_000], "source": [3],
    }))
    landing.close_days(JAN)
    with pytest.raises(LandingZoneError, match=r"listening_events/date=2024-01-01/part-0.parquet: optional column "
                                               r"'source' has type int64, expected string"):
        LandingZone(landing.root).event_files(JAN)

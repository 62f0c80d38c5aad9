"""Tests of the pure-Python payout oracle: the worked cases of rules v1 and ACPS v1 (rule 11), then properties."""

from __future__ import annotations

import ast
import dataclasses
import math
import datetime as dt
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairstream_pipeline_tests import payout_oracle
from fairstream_pipeline_tests.payout_oracle import (
    PICO_PER_CENT,
    PPM,
    SPECIAL_PAYEES,
    SUSPENSE,
    UNALLOCATED,
    MonthPayout,
    PayoutRules,
    SegmentPool,
    Statement,
    closing_balances,
    compute_month,
    payee_totals,
    roll_statements,
)

from fairstream_pipeline_tests.strategies import (  # noqa: E402
    DAY1,
    DAY2,
    DAYS,
    PROPERTY_SETTINGS,
    TRACKS,
    months,
    split_table,
)

FULL = 1_000_000  # royalty_share_ppm of the worked cases
NO_CAPS = dict(max_daily_plays_per_track=10**6, max_daily_streams_per_user=10**9)


def listen(user, track, times, day=DAY1, ms=60_000, active=False):
    """``times`` plays; an active one is a 5-tuple, a passive one the 4-tuple of rules v1."""
    return [(user, track, day, ms, True) if active else (user, track, day, ms)] * times


def premium_fr(**net_cents):
    return [(user, "premium", "FR", net) for user, net in net_cents.items()]


def self_splits(*tracks):
    """Each track pays 100% to a payee of the same name."""
    return [(t, t, PPM) for t in tracks]


# --------------------------------------------------------------------------------------------
# Worked cases
# --------------------------------------------------------------------------------------------


def test_c1_one_play_is_worth_a_full_subscription_user_centrically():
    plays = listen("A", "X", 1) + listen("B", "Y", 999)
    month = compute_month(
        plays, premium_fr(A=1000, B=1000), {}, self_splits("X", "Y"), PayoutRules(royalty_share_ppm=FULL, **NO_CAPS)
    )
    # ACPS: no artist, no active play, C = 1000 > M_u: w(u,t) = s(u,t) * 10^6, so ACPS = PR.
    assert payee_totals(month) == {"X": (1000, 2, 2), "Y": (1000, 1998, 1998)}
    assert month.segments == {
        ("FR", "paid"): SegmentPool(
            users=2, counted_streams=1000, pool_pico=2000 * PICO_PER_CENT, target_cents=2000, residual_pico=0
        )
    }


def test_c2_three_way_remainder_tie_goes_to_the_smallest_payee_id():
    plays = listen("U1", "X", 100) + listen("U2", "Z", 50) + listen("U3", "X", 50) + listen("U3", "Y", 50)
    plays += listen("U3", "Z", 50)
    rules = PayoutRules(royalty_share_ppm=FULL, max_daily_plays_per_track=1000)
    month = compute_month(plays, premium_fr(U1=1000, U2=1000, U3=1000), {}, self_splits("X", "Y", "Z"), rules)
    assert payee_totals(month) == {"X": (1334, 1500, 1500), "Y": (333, 500, 500), "Z": (1333, 1000, 1000)}
    # The tie really is a tie: X, Y and Z share the same remainder.
    remainders = {key[2]: v % PICO_PER_CENT for key, v in month.uc_pico.items()}
    assert remainders == {"X": 333_333_333_333, "Y": 333_333_333_333, "Z": 333_333_333_333}


@pytest.mark.parametrize(
    "policy, expected",
    [
        ("pro_rata", {"X": (1750, 2250, 2250), "Y": (1250, 750, 750)}),
        ("retain", {"X": (1000, 2250, 2250), "Y": (1000, 750, 750), UNALLOCATED: (1000, 0, 0)}),
    ],
)
def test_c3_silent_user_residual_policy(policy, expected):
    plays = listen("U1", "X", 3) + listen("U2", "Y", 1)
    rules = PayoutRules(royalty_share_ppm=FULL, residual_policy=policy)
    month = compute_month(plays, premium_fr(U1=1000, U2=1000, U3=1000), {}, self_splits("X", "Y"), rules)
    assert payee_totals(month) == expected
    assert month.segments[("FR", "paid")].residual_pico == 1000 * PICO_PER_CENT


def test_c4_daily_track_cap_and_minimum_play_length():
    plays = listen("U", "T1", 12, day=DAY1)
    plays += listen("U", "T1", 1, day=DAY2, ms=29_999) + listen("U", "T1", 1, day=DAY2, ms=30_000)
    plays += listen("U", "T2", 3, ms=10_000) + listen("V", "T2", 2)
    splits = [("T1", "A", PPM), ("T2", "B", PPM)]
    month = compute_month(plays, premium_fr(U=1000, V=1000), {}, splits, PayoutRules(royalty_share_ppm=FULL))
    assert month.counted == {("U", "T1"): 11, ("V", "T2"): 2}
    assert month.flagged == {}
    assert payee_totals(month) == {"A": (1000, 1692, 1692), "B": (1000, 308, 308)}


def test_c5_five_way_split():
    splits = [("T", "LABEL", 400_000), ("T", "MAIN", 280_000), ("T", "FEAT", 120_000)]
    splits += [("T", "W1", 100_000), ("T", "W2", 100_000)]
    month = compute_month(listen("U", "T", 1), premium_fr(U=1001), {}, splits, PayoutRules(royalty_share_ppm=FULL))
    uc = {payee: uc for payee, (uc, _pr, _acps) in payee_totals(month).items()}
    assert uc == {"LABEL": 401, "MAIN": 280, "FEAT": 120, "W1": 100, "W2": 100}
    assert payee_totals(month)["LABEL"] == (401, 401, 401)


def test_c6_largest_remainders_get_the_missing_cents():
    tracks = "ABCDEFG"
    plays = [play for n, t in enumerate(tracks, start=1) for play in listen("U", t, n)]
    month = compute_month(plays, premium_fr(U=10_000), {}, self_splits(*tracks), PayoutRules(royalty_share_ppm=FULL))
    expected = {"A": 357, "B": 714, "C": 1071, "D": 1429, "E": 1786, "F": 2143, "G": 2500}
    assert payee_totals(month) == {t: (cents, cents, cents) for t, cents in expected.items()}


def test_c7_threshold_and_carry_over():
    def earn(**cents):
        return {("FR", "paid", payee): (c, c, 0) for payee, c in cents.items()}

    m1 = roll_statements({}, earn(P=640, Q=1200, R=999), threshold=1000)
    m2 = roll_statements(closing_balances(m1), earn(P=290, R=1), threshold=1000)
    m3 = roll_statements(closing_balances(m2), earn(P=75), threshold=1000)
    assert m1 == {
        "P": Statement(0, 640, 640, 0, 640),
        "Q": Statement(0, 1200, 1200, 1200, 0),
        "R": Statement(0, 999, 999, 0, 999),
    }
    assert m2 == {"P": Statement(640, 290, 290, 0, 930), "R": Statement(999, 1, 1, 1000, 0)}
    assert m3 == {"P": Statement(930, 75, 75, 1005, 0)}
    assert [m["P"].paid_cents for m in (m1, m2, m3)] == [0, 0, 1005]
    assert [m["P"].closing_balance_cents for m in (m1, m2, m3)] == [640, 930, 0]


def test_c13_paid_and_free_segments_are_separate_pools():
    subscribers = premium_fr(UP=3000) + [("UF", "free", "FR", 0)]
    plays = listen("UP", "X", 2) + listen("UP", "Y", 1) + listen("UF", "X", 1) + listen("UF", "Y", 9)
    month = compute_month(plays, subscribers, {"FR": 100}, self_splits("X", "Y"), PayoutRules(royalty_share_ppm=FULL))
    assert month.earnings == {
        ("FR", "paid", "X"): (2000, 2000, 2000),
        ("FR", "paid", "Y"): (1000, 1000, 1000),
        ("FR", "free", "X"): (10, 10, 10),
        ("FR", "free", "Y"): (90, 90, 90),
    }
    assert payee_totals(month) == {"X": (2010, 2010, 2010), "Y": (1090, 1090, 1090)}


def test_c12_default_royalty_share_and_sub_cent_amounts():
    plays = listen("A", "X", 3) + listen("B", "Y", 1)
    month = compute_month(plays, premium_fr(A=999, B=999, C=999), {}, self_splits("X", "Y"), PayoutRules())
    segment = month.segments[("FR", "paid")]
    assert segment.pool_pico == 2_097_900_000_000_000
    assert segment.target_cents == 2097
    assert segment.residual_pico == 699_300_000_000_000
    assert payee_totals(month) == {"X": (1223, 1573, 1573), "Y": (874, 524, 524)}
    assert month.uc_pico == {("FR", "paid", "X"): 1_223_775_000_000_000, ("FR", "paid", "Y"): 874_125_000_000_000}


# --------------------------------------------------------------------------------------------
# Further hand-made cases
# --------------------------------------------------------------------------------------------


def test_identical_users_can_still_differ_by_a_cent_between_uc_and_pr():
    """Why the PR == UC property below needs exact divisions: per-user truncation breaks ties.

    Two users, each 2 cents and 3 streams. X gets floor(2e12/3) twice (1 pico short of PR's
    floor(4e12/3)), so the remainder tie that PR breaks in X's favour goes to Y under UC.
    """
    plays = listen("u1", "X", 1) + listen("u1", "Y", 2) + listen("u2", "X", 1) + listen("u2", "Z", 2)
    month = compute_month(plays, premium_fr(u1=2, u2=2), {}, self_splits("X", "Y", "Z"), PayoutRules(royalty_share_ppm=FULL))
    assert month.uc_pico[("FR", "paid", "X")] == 1_333_333_333_332
    assert month.pr_pico[("FR", "paid", "X")] == 1_333_333_333_333
    assert payee_totals(month) == {"X": (1, 2, 2), "Y": (2, 1, 1), "Z": (1, 1, 1)}


def test_flagged_user_counts_nothing_and_their_money_is_residual():
    plays = listen("bot", "X", 3, day=DAY1) + listen("bot", "Y", 3, day=DAY1)  # 6 on day 1
    plays += listen("bot", "X", 3, day=DAY2) + listen("bot", "Z", 3, day=DAY2)  # 6 on day 2: a tie
    plays += listen("bot", "Q", 9, day=DAY2, ms=1)  # not qualified, so not part of the day's count
    plays += listen("fan", "X", 1)
    rules = PayoutRules(royalty_share_ppm=FULL, max_daily_streams_per_user=5)
    month = compute_month(plays, premium_fr(bot=500, fan=100), {}, self_splits("X", "Y", "Z"), rules)
    assert month.flagged == {"bot": (DAY1, 6)}
    assert month.counted == {("fan", "X"): 1}
    assert month.segments[("FR", "paid")].residual_pico == 500 * PICO_PER_CENT
    assert payee_totals(month) == {"X": (600, 600, 600)}


def test_daily_user_limit_is_on_capped_streams_and_is_strict():
    plays = listen("u", "X", 50) + listen("u", "Y", 2)  # capped to 10 + 2 = 12 on one day
    at_limit = compute_month(plays, premium_fr(u=100), {}, [], PayoutRules(max_daily_streams_per_user=12))
    over = compute_month(plays, premium_fr(u=100), {}, [], PayoutRules(max_daily_streams_per_user=11))
    assert at_limit.flagged == {} and at_limit.counted == {("u", "X"): 10, ("u", "Y"): 2}
    assert over.flagged == {"u": (DAY1, 12)} and over.counted == {}


@pytest.mark.parametrize(
    "rows",
    [
        [],  # no split rows
        [("T", "a", 500_000)],  # sums to less than 10^6
        [("T", "a", 600_000), ("T", "b", 500_000)],  # sums to more
        [("T", "a", 500_000), ("T", "a", 500_000)],  # duplicate payee
        [("T", "a", PPM), ("T", "b", 0)],  # a zero share
        [("T", "a", 1_100_000), ("T", "b", -100_000)],  # a negative share
    ],
)
def test_invalid_splits_pay_suspense(rows):
    month = compute_month(listen("u", "T", 1), premium_fr(u=7), {}, rows + self_splits("other"), PayoutRules(royalty_share_ppm=FULL))
    assert payee_totals(month) == {SUSPENSE: (7, 7, 7)}


def test_segments_that_exist_and_their_pools():
    subscribers = [("p1", "family", "DE", 500), ("f1", "free", "DE", 0), ("f2", "free", "SE", 0)]
    month = compute_month([], subscribers, {"FR": 300, "SE": 0}, [], PayoutRules(royalty_share_ppm=FULL))
    assert month.segments == {
        ("DE", "paid"): SegmentPool(1, 0, 500 * PICO_PER_CENT, 500, 500 * PICO_PER_CENT),
        ("DE", "free"): SegmentPool(1, 0, 0, 0, 0),
        ("FR", "free"): SegmentPool(0, 0, 300 * PICO_PER_CENT, 300, 300 * PICO_PER_CENT),
        ("SE", "free"): SegmentPool(1, 0, 0, 0, 0),
    }
    assert month.earnings == {
        ("DE", "paid", UNALLOCATED): (500, 500, 500),
        ("FR", "free", UNALLOCATED): (300, 300, 300),
    }


def test_free_streams_without_ad_revenue_earn_nothing():
    month = compute_month(listen("f", "X", 4), [("f", "free", "FR", 0)], {}, self_splits("X"), PayoutRules())
    assert month.counted == {("f", "X"): 4}
    assert month.segments == {("FR", "free"): SegmentPool(1, 4, 0, 0, 0)}
    assert month.earnings == {} and month.uc_pico == {} and month.pr_pico == {} and month.acps_pico == {}


def test_remainder_ties_break_on_utf8_bytes_not_on_collation_or_utf16():
    # U+FFFF < U+10000 in UTF-8 (and code points), the reverse in UTF-16; "B" < "a" in bytes.
    for first, second in [("\uffff", "\U00010000"), ("B", "a"), ("Z", "é")]:
        splits = [("T", second, PPM // 2), ("T", first, PPM // 2)]
        month = compute_month(listen("u", "T", 1), premium_fr(u=1), {}, splits, PayoutRules(royalty_share_ppm=FULL))
        assert payee_totals(month) == {first: (1, 1, 1)}, (first, second)


def test_special_payees_accumulate_and_never_pay():
    earned = {
        ("FR", "paid", SUSPENSE): (5000, 0, 0),
        ("FR", "free", UNALLOCATED): (0, 7, 0),
        ("FR", "paid", "p"): (0, 3, 0),
    }
    statements = roll_statements({SUSPENSE: 100, "gone": 0}, earned, threshold=0)
    assert statements == {
        SUSPENSE: Statement(100, 5000, 0, 0, 5100),
        UNALLOCATED: Statement(0, 0, 7, 0, 0),
        "p": Statement(0, 0, 3, 0, 0),
    }


def test_roll_statements_accepts_a_month_payout():
    month = compute_month(listen("u", "X", 1), premium_fr(u=1500), {}, self_splits("X"), PayoutRules(royalty_share_ppm=FULL))
    assert roll_statements({"X": 1}, month, threshold=2000) == {"X": Statement(1, 1500, 1500, 0, 1501, acps_cents=1500)}


def test_bad_inputs_fail_loudly():
    with pytest.raises(TypeError):
        compute_month([("u", "X", DAY1, 60_000.0)], premium_fr(u=1), {}, [])
    with pytest.raises(TypeError):
        compute_month([("u", "X", dt.datetime(2026, 10, 1, 12), 60_000)], premium_fr(u=1), {}, [])
    with pytest.raises(ValueError):
        compute_month(listen("stranger", "X", 1), premium_fr(u=1), {}, [])
    with pytest.raises(ValueError):
        compute_month([], premium_fr(u=1) + premium_fr(u=2), {}, [])
    with pytest.raises(ValueError):
        compute_month([], premium_fr(u=1), {}, [("X", SUSPENSE, PPM)])
    with pytest.raises(ValueError):
        PayoutRules(residual_policy="keep")
    with pytest.raises(TypeError):
        PayoutRules(royalty_share_ppm=0.7)
    # ACPS v1's inputs and parameters
    with pytest.raises(TypeError):
        compute_month([("u", "X", DAY1, 60_000, 1)], premium_fr(u=1), {}, [])  # active must be a bool
    with pytest.raises(ValueError):
        compute_month([("u", "X", DAY1, 60_000, True, "x")], premium_fr(u=1), {}, [])
    with pytest.raises(TypeError):
        compute_month([], premium_fr(u=1), {}, [], PayoutRules(), tracks={"X": ("A", "no")})
    with pytest.raises(TypeError):
        compute_month([], premium_fr(u=1), {}, [], PayoutRules(), tracks={"X": (7, False)})
    for bad in (dict(payout_model="artist"), dict(acps_cap_mode="clip"), dict(acps_pro_boost=0),
                dict(acps_active_boost=0), dict(acps_user_stream_cap=0), dict(acps_pro_min_listeners=-1)):
        with pytest.raises(ValueError):
            PayoutRules(**bad)
    with pytest.raises(ValueError):
        roll_statements({}, {("FR", "paid", "p"): (1, 1)}, threshold=0)  # (uc, pr) without ACPS cents
    with pytest.raises(ValueError):
        roll_statements({}, {}, threshold=0, payout_model="artist")


def test_oracle_source_is_integer_only_and_standard_library_only():
    tree = ast.parse(Path(payout_oracle.__file__).read_text())
    floats = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, (float, complex))]
    true_divisions = [n.lineno for n in ast.walk(tree) if isinstance(n, (ast.BinOp, ast.AugAssign)) and isinstance(n.op, ast.Div)]
    float_names = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id in {"float", "round", "Decimal"}]
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert (floats, true_divisions, float_names) == ([], [], [])
    assert imported <= {"__future__", "collections", "dataclasses", "datetime", "typing"}


# --------------------------------------------------------------------------------------------
# ACPS v1 (rule 11): worked cases, each computed by hand in its comment
# --------------------------------------------------------------------------------------------
# Unless a case says otherwise: royalty_share_ppm 1,000,000 (a paying user's cents are the pool's
# cents), all users premium in FR, plays of 60 s on DAY1, each track pays 100% to a payee of its
# own name, and the ACPS parameters are the defaults (thresholds 1000 streams / 500 listeners, so
# nobody is professional; boosts 2 and 2; C = 1000 under ``cap``).


def acps_rules(**overrides):
    return PayoutRules(royalty_share_ppm=FULL, **overrides)


def a1_month():
    """Worked case A1 of the ACPS spec."""
    plays = listen("u1", "P", 3) + listen("u1", "Q", 2, active=True)
    plays += listen("u2", "P", 2, active=True) + listen("u2", "N", 5)
    plays += listen("u3", "P", 1) + listen("u3", "Q", 1)
    rules = acps_rules(acps_pro_min_streams=4, acps_pro_min_listeners=2, acps_user_stream_cap=10)
    tracks = {"P": ("P", False), "Q": ("Q", False), "N": ("N", True)}
    return compute_month(plays, premium_fr(u1=1000, u2=1000, u3=1000), {}, self_splits("P", "Q", "N"), rules, tracks)


def test_a1_the_worked_case_of_the_acps_spec():
    # P: 6 counted music streams (3 + 2 + 1), 3 listeners >= (4, 2): professional. Q: 3 streams,
    # 2 listeners: 3 < 4, not professional. N is noise: counted nowhere, not even as an artist.
    # M_u (music only): u1 5, u2 2 (N's 5 streams left out), u3 2; C = 10 never binds, K = M_u.
    #   u1: P b = 2 * 3 = 6 -> 6 * 5e6 / 5 = 6e6;     Q b = 1 * (0 + 2 * 2) = 4 -> 4e6
    #   u2: P b = 2 * (0 + 2 * 2) = 8 -> 8 * 2e6 / 2 = 8e6
    #   u3: P b = 2 * 1 = 2 -> 2e6;                   Q b = 1 -> 1e6
    # W_P = 16e6, W_Q = 5e6, W = 21e6; pool 3000 cents: P 3000 * 16/21 = 2285.71, Q 714.29
    # -> floors 2285 + 714 = 2999, the last cent to P (the larger remainder): P 2286, Q 714, N 0.
    # Pro-rata (streams P 6, Q 3, N 5 of 14): 1285.71, 642.86, 1071.43 -> 1285 + 642 + 1071 = 2998,
    #   +1 P (.71), +1 Q (.86): P 1286, Q 643, N 1071.
    # User-centric: u1 -> P 600, Q 400; u2 -> P 1000 * 2/7 = 285.71, N 714.29; u3 -> P 500, Q 500:
    #   P 1385.71, Q 900, N 714.29 -> 1385 + 900 + 714 = 2999, +1 P: P 1386, Q 900, N 714.
    month = a1_month()
    assert month.professional == {"P": (6, 3, True), "Q": (3, 2, False)}
    assert month.active == {("u1", "Q"): 2, ("u2", "P"): 2}
    assert month.acps_weights == {("FR", "paid", "P"): 16 * 10**6, ("FR", "paid", "Q"): 5 * 10**6}
    assert month.earnings == {
        ("FR", "paid", "N"): (714, 1071, 0),
        ("FR", "paid", "P"): (1386, 1286, 2286),
        ("FR", "paid", "Q"): (900, 643, 714),
    }
    assert month.acps_pico == {
        ("FR", "paid", "P"): 3000 * PICO_PER_CENT * 16 // 21,
        ("FR", "paid", "Q"): 3000 * PICO_PER_CENT * 5 // 21,
    }


@pytest.mark.parametrize(
    "model, expected",
    [
        # earned = the model's cents; pro_rata_cents and acps_cents are the month's own figures.
        # Threshold 1000: whoever earns at least 1000 is paid, the rest carries over.
        ("user_centric", {
            "N": Statement(0, 714, 1071, 0, 714, acps_cents=0),
            "P": Statement(0, 1386, 1286, 1386, 0, acps_cents=2286),
            "Q": Statement(0, 900, 643, 0, 900, acps_cents=714),
        }),
        ("pro_rata", {
            "N": Statement(0, 1071, 1071, 1071, 0, acps_cents=0),
            "P": Statement(0, 1286, 1286, 1286, 0, acps_cents=2286),
            "Q": Statement(0, 643, 643, 0, 643, acps_cents=714),
        }),
        ("artist_centric", {  # N earns nothing, but its pro-rata figure keeps its statement row
            "N": Statement(0, 0, 1071, 0, 0, acps_cents=0),
            "P": Statement(0, 2286, 1286, 2286, 0, acps_cents=2286),
            "Q": Statement(0, 714, 643, 0, 714, acps_cents=714),
        }),
    ],
)
def test_a1_statements_earn_the_payout_models_cents(model, expected):
    assert roll_statements({}, a1_month(), threshold=1000, payout_model=model) == expected


@pytest.mark.parametrize(
    "cap, mode, expected",
    [
        # u1 plays X x8 and Y x2 (M = 10), u2 plays Z x2 (M = 2); both pay 1000 (pool 2000).
        # C = 1000 does not bind (K = M_u): w = s * 10^6, W = X 8e6, Y 2e6, Z 2e6 of 12e6
        #   -> 1333.33, 333.33, 333.33 -> 1999, the tie of remainders goes to X: 1334, 333, 333 (= PR).
        (1000, "cap", {"X": 1334, "Y": 333, "Z": 333}),
        # C = 4 binds for u1 only (K = min(10, 4) = 4): X 8 * 4e6 / 10 = 3.2e6, Y 0.8e6; u2 K = 2:
        #   Z 2e6. W = 6e6: X 1066.67, Y 266.67, Z 666.67 -> 1998, a three-way tie of remainders
        #   (666666666666 pico each), the 2 cents go to X and Y: X 1067, Y 267, Z 666.
        (4, "cap", {"X": 1067, "Y": 267, "Z": 666}),
        # normalise, C = 4: K = 4 for everyone: u1 X 3.2e6, Y 0.8e6; u2 Z 2 * 4e6 / 2 = 4e6.
        #   W = 8e6: X 800, Y 200, Z 1000 exactly (each user weighs C: here, user-centric).
        (4, "normalise", {"X": 800, "Y": 200, "Z": 1000}),
        # C = 1 binds for both: u1 X 0.8e6, Y 0.2e6; u2 Z 1e6: X 800, Y 200, Z 1000.
        (1, "cap", {"X": 800, "Y": 200, "Z": 1000}),
    ],
)
def test_acps_user_stream_cap_and_normalise(cap, mode, expected):
    plays = listen("u1", "X", 8) + listen("u1", "Y", 2) + listen("u2", "Z", 2)
    rules = acps_rules(acps_user_stream_cap=cap, acps_cap_mode=mode)
    month = compute_month(plays, premium_fr(u1=1000, u2=1000), {}, self_splits("X", "Y", "Z"), rules)
    assert {payee: acps for payee, (_uc, _pr, acps) in payee_totals(month).items()} == expected
    # UC: u1 -> X 800, Y 200; u2 -> Z 1000. PR (X 8, Y 2, Z 2 of 12): as ACPS without the cap.
    assert {payee: (uc, pr) for payee, (uc, pr, _acps) in payee_totals(month).items()} == {
        "X": (800, 1334), "Y": (200, 333), "Z": (1000, 333)
    }


@pytest.mark.parametrize(
    "min_streams, min_listeners, ar_professional, expected",
    [
        # Artist AR owns X and Y: 2 + 1 = 3 streams by u1 and u2 (2 listeners), exactly at (3, 2).
        # BE (Z): 2 streams by 2 listeners, below 3 streams. CE (W): 3 streams by 1 listener, below
        # 2 listeners. Each user pays 1000 (pool 3000); boosts 2, C = 1000.
        #   u1 X x2 (M 2): X b = 2 * 2 = 4 -> 4 * 2e6 / 2 = 4e6
        #   u2 Y x1, Z x1 (M 2): Y b = 2 * 1 -> 2e6; Z 1e6
        #   u3 Z x1, W x3 (M 4): Z 1 * 4e6 / 4 = 1e6; W 3e6
        # W = X 4e6, Y 2e6, Z 2e6, W 3e6 of 11e6: 1090.91, 545.45, 545.45, 818.18 -> 2998;
        #   +1 X (.91), +1 to the Y/Z tie (.45 each): Y, the smaller id: X 1091, Y 546, Z 545, W 818.
        (3, 2, True, {"W": 818, "X": 1091, "Y": 546, "Z": 545}),
        # One stream short (4 needed) or one listener short (3 needed): nobody is professional;
        # w = s * 10^6: X 2e6, Y 1e6, Z 2e6, W 3e6 of 8e6: X 750, Y 375, Z 750, W 1125.
        (4, 2, False, {"W": 1125, "X": 750, "Y": 375, "Z": 750}),
        (3, 3, False, {"W": 1125, "X": 750, "Y": 375, "Z": 750}),
    ],
)
def test_acps_professional_thresholds_are_inclusive(min_streams, min_listeners, ar_professional, expected):
    plays = listen("u1", "X", 2) + listen("u2", "Y", 1) + listen("u2", "Z", 1)
    plays += listen("u3", "Z", 1) + listen("u3", "W", 3)
    tracks = {"X": ("AR", False), "Y": ("AR", False), "Z": ("BE", False), "W": ("CE", False)}
    rules = acps_rules(acps_pro_min_streams=min_streams, acps_pro_min_listeners=min_listeners)
    month = compute_month(
        plays, premium_fr(u1=1000, u2=1000, u3=1000), {}, self_splits("W", "X", "Y", "Z"), rules, tracks
    )
    assert month.professional == {"AR": (3, 2, ar_professional), "BE": (2, 2, False), "CE": (3, 1, False)}
    assert {payee: acps for payee, (_uc, _pr, acps) in payee_totals(month).items()} == expected


def test_acps_a_noise_only_user_funds_the_pool_and_weighs_nothing():
    # u1 pays 1000 and plays only noise N x5 (its artist NA is noise too), u2 pays 1000 and plays X
    # once, u3 pays 500 and plays nothing. Pool 2500. Thresholds 1 / 1: XA is professional; NA has
    # no music stream and is nobody's artist.
    # ACPS: M_u1 = 0, so u1 weighs nothing (like u3) but funds the pool; u2: X 2 * 1 * 1e6 / 1 =
    #   2e6 = W: X gets the whole 2500.
    # UC: u1 -> N 1000, u2 -> X 1000, u3 silent: R = 500 by streams (N 5, X 1 of 6): N 416.67,
    #   X 83.33 -> N 1416.67, X 1083.33 -> 2499, +1 N: N 1417, X 1083.
    # PR: N 2500 * 5/6 = 2083.33, X 416.67 -> 2499, +1 X: N 2083, X 417.
    plays = listen("u1", "N", 5) + listen("u2", "X", 1)
    tracks = {"N": ("NA", True), "X": ("XA", False)}
    rules = acps_rules(acps_pro_min_streams=1, acps_pro_min_listeners=1)
    month = compute_month(plays, premium_fr(u1=1000, u2=1000, u3=500), {}, self_splits("N", "X"), rules, tracks)
    assert month.professional == {"XA": (1, 1, True)}
    assert month.acps_weights == {("FR", "paid", "X"): 2 * 10**6}
    assert payee_totals(month) == {"N": (1417, 2083, 0), "X": (1083, 417, 2500)}


def test_acps_free_segment_shares_the_ad_revenue_by_weight():
    # FR ad revenue 100 cents; free f1 plays X x3 (M 3), free f2 plays X and Y once (M 2); C = 1
    # binds: K = 1. f1: X 3 * 1e6 / 3 = 1e6; f2: X 1 * 1e6 / 2 = 0.5e6, Y 0.5e6.
    # W = X 1.5e6, Y 0.5e6: X 75, Y 25. UC = PR on a free segment (X 4, Y 1 of 5): X 80, Y 20.
    # The paid segment (p1 pays 500, plays Y once) is its own pool: Y 500 under every model.
    subscribers = [("f1", "free", "FR", 0), ("f2", "free", "FR", 0), ("p1", "premium", "FR", 500)]
    plays = listen("f1", "X", 3) + listen("f2", "X", 1) + listen("f2", "Y", 1) + listen("p1", "Y", 1)
    month = compute_month(plays, subscribers, {"FR": 100}, self_splits("X", "Y"), acps_rules(acps_user_stream_cap=1))
    assert month.acps_weights == {
        ("FR", "free", "X"): 1_500_000, ("FR", "free", "Y"): 500_000, ("FR", "paid", "Y"): 1_000_000
    }
    assert month.earnings == {
        ("FR", "free", "X"): (80, 80, 75),
        ("FR", "free", "Y"): (20, 20, 25),
        ("FR", "paid", "Y"): (500, 500, 500),
    }


def test_acps_active_plays_count_first_within_the_daily_cap():
    # max_daily_plays_per_track = 3. u1 pays 1200.
    # DAY1: X 2 passive then 3 active (5 qualified, 3 of them active), plus 1 active play of 10 s
    #   (not qualified, so not counted and not active): capped to 3, a = min(3, 3) = 3.
    # DAY2: X 2 active + 2 passive: capped to 3, a = min(2, 3) = 2.
    # So n(X) = 6 with a = 5; Y once passive: n 1, a 0. M = 7 = K.
    # b(X) = (6 - 5) + 2 * 5 = 11 -> 11 * 7e6 / 7 = 11e6; b(Y) = 1 -> 1e6: X 1100, Y 100 exactly.
    # UC = PR for a single user (X 6, Y 1 of 7): 1028.57, 171.43 -> 1199, +1 X: X 1029, Y 171.
    plays = listen("u1", "X", 2) + listen("u1", "X", 3, active=True) + listen("u1", "X", 1, ms=10_000, active=True)
    plays += listen("u1", "X", 2, day=DAY2, active=True) + listen("u1", "X", 2, day=DAY2)
    plays += listen("u1", "Y", 1)
    rules = acps_rules(max_daily_plays_per_track=3)
    month = compute_month(plays, premium_fr(u1=1200), {}, self_splits("X", "Y"), rules)
    assert month.counted == {("u1", "X"): 6, ("u1", "Y"): 1}
    assert month.active == {("u1", "X"): 5}
    assert month.acps_weights == {("FR", "paid", "X"): 11 * 10**6, ("FR", "paid", "Y"): 10**6}
    assert payee_totals(month) == {"X": (1029, 1029, 1100), "Y": (171, 171, 100)}
    # With the active boost at 1 the active plays weigh like the others: ACPS = PR.
    plain = compute_month(plays, premium_fr(u1=1200), {}, self_splits("X", "Y"), acps_rules(
        max_daily_plays_per_track=3, acps_active_boost=1))
    assert payee_totals(plain) == {"X": (1029, 1029, 1029), "Y": (171, 171, 171)}


def test_acps_a_segment_without_weight_sends_its_pool_to_unallocated():
    # FR paid: u1 pays 700 and plays only noise N x2: W = 0, so ACPS sends all 700 to
    # __unallocated__, while UC and PR pay N 700. DE free has ad revenue 50 and no listener:
    # every model sends it to __unallocated__.
    month = compute_month(
        listen("u1", "N", 2), premium_fr(u1=700), {"DE": 50}, self_splits("N"), acps_rules(), {"N": (None, True)}
    )
    assert month.acps_weights == {}
    assert month.earnings == {
        ("DE", "free", UNALLOCATED): (50, 50, 50),
        ("FR", "paid", "N"): (700, 700, 0),
        ("FR", "paid", UNALLOCATED): (0, 0, 700),
    }
    # A payee with ACPS cents only still gets a statement row (never paid: a special payee).
    assert roll_statements({}, month, threshold=0) == {
        "N": Statement(0, 700, 700, 700, 0, acps_cents=0),
        UNALLOCATED: Statement(0, 50, 50, 0, 50, acps_cents=750),
    }


def test_acps_flagged_users_and_tracks_without_artist_or_splits():
    # bot (flagged: 6 > 5 streams on DAY1) plays X x6: counts nothing, is nobody's listener (XA
    # would need 2), and its 1000 funds the pool. fan plays X x2 (active) and T (no artist, no
    # splits: __suspense__) once; M = 3 = K.
    # XA: 2 streams, 1 listener < 2: not professional. X b = 0 + 2 * 2 = 4 -> 4 * 3e6 / 3 = 4e6;
    # T 1e6. Pool 2000: X 1600, __suspense__ 400. PR (X 2, T 1 of 3): X 1333.33, T 666.67 -> 1999,
    # +1 suspense: X 1333, __suspense__ 667. UC: fan -> X 666.67, T 333.33; bot's 1000 is residual
    # by streams: X 666.67, T 333.33: X 1333.33, suspense 666.67 -> X 1333, __suspense__ 667.
    plays = listen("bot", "X", 6) + listen("fan", "X", 2, active=True) + listen("fan", "T", 1)
    rules = acps_rules(max_daily_streams_per_user=5, acps_pro_min_streams=1, acps_pro_min_listeners=2)
    month = compute_month(plays, premium_fr(bot=1000, fan=1000), {}, self_splits("X"), rules, {"X": ("XA", False)})
    assert month.flagged == {"bot": (DAY1, 6)}
    assert month.professional == {"XA": (2, 1, False)}
    assert payee_totals(month) == {"X": (1333, 1333, 1600), SUSPENSE: (667, 667, 400)}


# --------------------------------------------------------------------------------------------
# Hypothesis: random small months
# --------------------------------------------------------------------------------------------

def walk_ints(value):
    if isinstance(value, bool):
        raise AssertionError("a bool where an amount was expected")
    if isinstance(value, int):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from walk_ints(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from walk_ints(v)
    elif isinstance(value, SegmentPool):
        yield from walk_ints(list(vars(value).values()))
    elif not isinstance(value, dt.date):
        raise AssertionError(f"unexpected {type(value).__name__} in a result")


@PROPERTY_SETTINGS
@given(months())
def test_every_segment_reconciles_exactly(month_input):
    """Each model's cents (UC, PR and ACPS) sum to each segment's target."""
    month = compute_month(**month_input)
    sums = [defaultdict(int) for _model in range(3)]
    for (country, tier, _payee), row in month.earnings.items():
        assert (country, tier) in month.segments
        for model, cents in enumerate(row):
            sums[model][(country, tier)] += cents
    for key, segment in month.segments.items():
        assert segment.target_cents == segment.pool_pico // PICO_PER_CENT
        for model in range(3):
            assert sums[model][key] == segment.target_cents, (key, model)
        for pico in (month.uc_pico, month.pr_pico, month.acps_pico):
            held = sum(v for k, v in pico.items() if k[:2] == key)
            assert 0 <= segment.pool_pico - held < PICO_PER_CENT
    totals = payee_totals(month)
    for model in range(3):
        assert sum(row[model] for row in totals.values()) == sum(s.target_cents for s in month.segments.values())


@PROPERTY_SETTINGS
@given(months())
def test_no_negative_amount_anywhere(month_input):
    month = compute_month(**month_input)
    fields = [month.counted, month.flagged, month.segments, month.earnings, month.uc_pico, month.pr_pico,
              month.acps_pico, month.active, month.acps_weights, month.acps_track_pico,
              [(streams, listeners) for streams, listeners, _pro in month.professional.values()]]
    values = list(walk_ints(fields))
    assert all(v >= 0 for v in values)
    assert all(v > 0 for v in month.counted.values())
    assert all(v > 0 for v in [*month.uc_pico.values(), *month.pr_pico.values(), *month.acps_pico.values()])
    assert all(v > 0 for v in [*month.active.values(), *month.acps_weights.values(), *month.acps_track_pico.values()])
    assert all(row != (0, 0, 0) for row in month.earnings.values())


@PROPERTY_SETTINGS
@given(months(), st.randoms(use_true_random=False))
def test_result_ignores_the_order_of_plays_and_split_rows(month_input, rnd):
    expected = compute_month(**month_input)
    shuffled = dict(month_input, plays=list(month_input["plays"]), split_rows=list(month_input["split_rows"]))
    rnd.shuffle(shuffled["plays"])
    rnd.shuffle(shuffled["split_rows"])
    assert compute_month(**shuffled) == expected


@PROPERTY_SETTINGS
@given(months())
def test_cents_stay_within_one_of_the_exact_share(month_input):
    month = compute_month(**month_input)
    for index, pico in ((0, month.uc_pico), (1, month.pr_pico), (2, month.acps_pico)):
        for key in pico.keys() | {k for k, row in month.earnings.items() if row[index]}:
            exact = Fraction(pico.get(key, 0), PICO_PER_CENT)
            cents = month.earnings.get(key, (0, 0, 0))[index]
            assert math.floor(exact) <= cents <= math.floor(exact) + 1, (key, exact, cents)


def check_acps_streams_and_verdicts(month, month_input):
    """Noise weighs nothing; professional verdicts count music streams and distinct listeners over
    every segment; active counted streams are among the counted ones."""
    rules, tracks = month_input["rules"], month_input["tracks"]
    for (_country, _tier, track) in month.acps_weights:
        assert not tracks.get(track, (None, False))[1]
    for artist, (streams, listeners, professional) in month.professional.items():
        music = [t for t, (a, noise) in tracks.items() if a == artist and not noise]
        assert streams == sum(s for (_u, t), s in month.counted.items() if t in music) > 0
        assert listeners == len({u for (u, t) in month.counted if t in music})
        assert professional == (streams >= rules.acps_pro_min_streams and listeners >= rules.acps_pro_min_listeners)
    for (user, track), a in month.active.items():
        assert 0 < a <= month.counted[(user, track)]


@PROPERTY_SETTINGS
@given(months())
def test_streams_flags_free_segments_and_acps_verdicts(month_input):
    month = compute_month(**month_input)
    check_acps_streams_and_verdicts(month, month_input)
    rules = month_input["rules"]
    flagged_users = set(month.flagged)
    assert not any(user in flagged_users for user, _ in month.counted)
    for user, (day, n) in month.flagged.items():
        assert day in DAYS and rules.max_daily_streams_per_user < n <= rules.max_daily_plays_per_track * len(TRACKS)
    for (user, _track), s in month.counted.items():
        assert s <= rules.max_daily_plays_per_track * len(DAYS)
    tier_of = {u: ("free" if plan == "free" else "paid", country) for u, plan, country, _ in month_input["subscribers"]}
    for (country, tier), segment in month.segments.items():
        members = [u for u, (t, c) in tier_of.items() if (c, t) == (country, tier)]
        assert segment.users == len(members)
        assert segment.counted_streams == sum(s for (u, _), s in month.counted.items() if u in members)
        if segment.counted_streams == 0:
            assert segment.residual_pico == segment.pool_pico
        if tier == "free":  # user-centric and pro-rata are the same formula for free tiers
            for key in month.uc_pico.keys() | month.pr_pico.keys():
                if key[:2] == (country, tier):
                    assert month.uc_pico.get(key) == month.pr_pico.get(key)
                    uc_cents, pr_cents, _acps_cents = month.earnings.get(key, (0, 0, 0))
                    assert uc_cents == pr_cents


@st.composite
def identical_listener_months(draw, exact):
    """A FR paid segment whose users all pay the same and all have the same S_u, plus noise.

    ``exact`` makes net_cents a multiple of S, so every c_u * s(u,t) / S_u is a whole number.
    """
    n_users = draw(st.integers(1, 5))
    s = draw(st.integers(1, 8))
    net = s * draw(st.integers(0, 300)) if exact else draw(st.integers(0, 2500))
    plays, subscribers = [], []
    for i in range(n_users):
        subscribers.append((f"u{i}", draw(st.sampled_from(["premium", "family"])), "FR", net))
        for track in draw(st.lists(st.sampled_from(TRACKS), min_size=s, max_size=s)):
            plays.append((f"u{i}", track, draw(st.sampled_from(DAYS)), 60_000))
    # Noise outside the segment: free users in FR and paid users in DE.
    for i in range(draw(st.integers(0, 3))):
        plan, country, net_noise = draw(st.sampled_from([("free", "FR", 0), ("premium", "DE", 999)]))
        subscribers.append((f"n{i}", plan, country, net_noise))
        plays += [(f"n{i}", t, DAY1, 60_000) for t in draw(st.lists(st.sampled_from(TRACKS), max_size=4))]
    rules = PayoutRules(
        royalty_share_ppm=draw(st.integers(0, PPM)),
        max_daily_plays_per_track=100,
        max_daily_streams_per_user=100,
        residual_policy=draw(st.sampled_from(["pro_rata", "retain"])),
    )
    month_input = dict(plays=plays, subscribers=subscribers, ad_revenue={"FR": 50}, split_rows=draw(split_table()), rules=rules)
    return month_input, n_users, s


def segment_rows(mapping, key=("FR", "paid")):
    return {k[2]: v for k, v in mapping.items() if k[:2] == key}


@PROPERTY_SETTINGS
@given(identical_listener_months(exact=True))
def test_pr_equals_uc_when_users_are_identical_and_divisions_exact(case):
    month_input, n_users, s = case
    month = compute_month(**month_input)
    assert all(sum(v for (u, _), v in month.counted.items() if u == f"u{i}") == s for i in range(n_users))
    assert segment_rows(month.uc_pico) == segment_rows(month.pr_pico)
    assert all(uc == pr for uc, pr, _acps in segment_rows(month.earnings).values())
    assert month.segments[("FR", "paid")].residual_pico == 0


@PROPERTY_SETTINGS
@given(identical_listener_months(exact=False))
def test_pr_and_uc_differ_only_by_truncation_when_users_are_identical(case):
    month_input, n_users, s = case
    month = compute_month(**month_input)
    uc, pr = segment_rows(month.uc_pico), segment_rows(month.pr_pico)
    # Per track, UC truncates once per listener, PR once: UC <= PR, short by at most n_users - 1.
    for payee in uc.keys() | pr.keys():
        assert 0 <= pr.get(payee, 0) - uc.get(payee, 0) <= (n_users - 1) * len(TRACKS)
    net = month_input["subscribers"][0][3]
    if net * month_input["rules"].royalty_share_ppm * PPM % s == 0:
        assert uc == pr


# --------------------------------------------------------------------------------------------
# Hypothesis: ACPS v1 against the other models and itself
# --------------------------------------------------------------------------------------------


def max_music_streams_per_user(month: MonthPayout, tracks) -> int:
    per_user: dict[str, int] = defaultdict(int)
    for (user, track), s in month.counted.items():
        if not tracks.get(track, (None, False))[1]:
            per_user[user] += s
    return max(per_user.values(), default=0)


def acps_cents(month: MonthPayout) -> dict:
    return {key: row[2] for key, row in month.earnings.items() if row[2]}


@PROPERTY_SETTINGS
@given(months())
def test_acps_is_pro_rata_with_boosts_of_1_no_noise_and_a_cap_that_does_not_bind(month_input):
    # K = M_u, so w(u,t) = s(u,t) * 10^6 exactly, W_t = 10^6 * streams_t and W = 10^6 * S_seg:
    # floor(pool * W_t / W) is pro-rata's floor(pool * streams_t / S_seg), pico-cent for pico-cent.
    rules = dataclasses.replace(
        month_input["rules"], acps_pro_boost=1, acps_active_boost=1, acps_user_stream_cap=1000, acps_cap_mode="cap"
    )
    tracks = {track: (artist, False) for track, (artist, _noise) in month_input["tracks"].items()}
    month = compute_month(**dict(month_input, rules=rules, tracks=tracks))
    assert max_music_streams_per_user(month, tracks) <= 1000  # the cap does not bind
    assert month.acps_pico == month.pr_pico
    assert all(acps == pr for _uc, pr, acps in month.earnings.values())


@PROPERTY_SETTINGS
@given(months(), st.sampled_from(["every artist", "no artist"]), st.integers(2, 5))
def test_acps_pro_boost_changes_nothing_when_every_artist_or_none_is_professional(month_input, who, boost):
    # With the cap not binding w(u,t) = b(u,t) * 10^6 exactly: when every music track with a
    # stream is boosted (every track has an artist, and the thresholds are 0) or none is, W_t and
    # W scale together and floor(pool * W_t / W) does not move.
    rules = dataclasses.replace(month_input["rules"], acps_user_stream_cap=1000, acps_cap_mode="cap")
    tracks = dict(month_input["tracks"])
    if who == "every artist":
        tracks = {track: (tracks.get(track, (None, False))[0] or "A0", tracks.get(track, (None, False))[1])
                  for track in TRACKS}
        rules = dataclasses.replace(rules, acps_pro_min_streams=0, acps_pro_min_listeners=0)
    else:
        rules = dataclasses.replace(rules, acps_pro_min_streams=10**6)
    plain = compute_month(**dict(month_input, rules=dataclasses.replace(rules, acps_pro_boost=1), tracks=tracks))
    boosted = compute_month(**dict(month_input, rules=dataclasses.replace(rules, acps_pro_boost=boost), tracks=tracks))
    assert max_music_streams_per_user(plain, tracks) <= 1000
    assert all(pro == (who == "every artist") for _s, _l, pro in boosted.professional.values())
    assert boosted.acps_pico == plain.acps_pico
    assert boosted.earnings == plain.earnings
    factor = boost if who == "every artist" else 1
    assert boosted.acps_weights == {key: factor * w for key, w in plain.acps_weights.items()}


@PROPERTY_SETTINGS
@given(months(), st.integers(2, 5), st.booleans())
def test_acps_active_boost_changes_nothing_without_active_plays(month_input, boost, as_five_tuples):
    # a(u,t) = 0 everywhere, so b(u,t) does not involve the active boost, whatever the cap mode and C.
    plays = [(*play[:4], False) if as_five_tuples else play[:4] for play in month_input["plays"]]
    rules = month_input["rules"]
    one = compute_month(**dict(month_input, plays=plays, rules=dataclasses.replace(rules, acps_active_boost=1)))
    other = compute_month(**dict(month_input, plays=plays, rules=dataclasses.replace(rules, acps_active_boost=boost)))
    assert one.active == {}
    assert one == other



# --------------------------------------------------------------------------------------------
# Hypothesis: statements over several months
# --------------------------------------------------------------------------------------------

earnings_strategy = st.dictionaries(
    st.tuples(st.sampled_from(["FR", "DE"]), st.sampled_from(["paid", "free"]), st.sampled_from(["p", "q", "r", *SPECIAL_PAYEES])),
    st.tuples(st.integers(0, 1500), st.integers(0, 1500), st.integers(0, 1500)),
    max_size=8,
)
MODELS = ["user_centric", "pro_rata", "artist_centric"]  # in the order of an earnings row


@PROPERTY_SETTINGS
@given(
    st.dictionaries(st.sampled_from(["p", "q", "s", *SPECIAL_PAYEES]), st.integers(0, 2000), max_size=4),
    st.lists(earnings_strategy, min_size=1, max_size=4),
    st.integers(0, 2500),
    st.sampled_from(MODELS),
)
def test_statement_invariants_over_months(previous, months_of_earnings, threshold, model):
    for earnings in months_of_earnings:
        statements = roll_statements(previous, earnings, threshold, payout_model=model)
        totals = defaultdict(lambda: [0, 0, 0])
        for (_c, _t, payee), row in earnings.items():
            for i, cents in enumerate(row):
                totals[payee][i] += cents
        # A row for a non-zero opening, earned (the model's cents), pro-rata or ACPS amount.
        expected_rows = {p for p, v in previous.items() if v} | {
            p for p, v in totals.items() if (v[MODELS.index(model)], v[1], v[2]) != (0, 0, 0)
        }
        assert set(statements) == expected_rows
        for payee, s in statements.items():
            assert s.opening_balance_cents == previous.get(payee, 0)
            row = totals.get(payee, [0, 0, 0])
            assert [s.earned_cents, s.pro_rata_cents, s.acps_cents] == [row[MODELS.index(model)], row[1], row[2]]
            assert s.opening_balance_cents + s.earned_cents - s.paid_cents == s.closing_balance_cents
            assert s.paid_cents == 0 or s.paid_cents >= threshold
            assert min(s.paid_cents, s.closing_balance_cents) == 0 or payee in SPECIAL_PAYEES
            if payee in SPECIAL_PAYEES:
                assert s.paid_cents == 0
            elif s.paid_cents == 0:
                assert s.opening_balance_cents + s.earned_cents < threshold or s.closing_balance_cents == 0
        previous = closing_balances(statements)


@settings(max_examples=60, deadline=None)
@given(st.lists(months(), min_size=2, max_size=3))
def test_statements_from_computed_months_conserve_money(month_inputs):
    previous: dict[str, int] = {}
    threshold = month_inputs[0]["rules"].payout_threshold_cents
    model = month_inputs[0]["rules"].payout_model
    for month_input in month_inputs:
        month: MonthPayout = compute_month(**month_input)
        statements = roll_statements(previous, month, threshold, payout_model=model)
        opening = sum(previous.values())
        earned = sum(s.target_cents for s in month.segments.values())
        assert sum(s.earned_cents for s in statements.values()) == earned
        assert sum(s.pro_rata_cents for s in statements.values()) == earned
        assert sum(s.acps_cents for s in statements.values()) == earned
        assert opening + earned == sum(s.paid_cents + s.closing_balance_cents for s in statements.values())
        assert all(statements[p].paid_cents == 0 for p in SPECIAL_PAYEES if p in statements)
        previous = closing_balances(statements)

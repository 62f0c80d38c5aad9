"""The public worked cases of docs/payout-rules.md, run through the real assets with dg.materialize."""

from datetime import date

import pytest

from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline_tests.payout_cases import MonthCase, Plays, read_money

MONTH = "2024-01"  # the first partition: statements open from zero balances
NO_CAPS = {"max_daily_plays_per_track": 100_000, "max_daily_streams_per_user": 1_000_000}
FULL_SHARE = {"royalty_share_ppm": 1_000_000}
HOLD_ANY = {"max_held_share_ppm": 1_000_000}  # cases that hold money on purpose must still close


@pytest.fixture
def run_case(landing, materialize_month, tmp_path):
    """Write a case, materialize every asset and check, and return the month's money."""

    def run(case: MonthCase, rules: dict | None = None, month: str = MONTH):
        case.write(landing, month)
        config = {**FULL_SHARE, **(rules or {})}
        result = materialize_month(month, run_config={"resources": {"payout_rules": {"config": config}}})
        assert result.success
        failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
        # Tiny months have no email-less payees and no quarantine; only the m-o-m check may warn.
        assert set(failed) <= {"counted_streams_month_over_month", "suspense_share"}, failed
        return read_money(Lake(tmp_path / "warehouse"), month)

    return run


def premium(*users: tuple[str, int], country: str = "FR") -> list[tuple[str, str, str, int]]:
    return [(u, "premium", country, cents) for u, cents in users]


def test_c1_one_play_pays_as_much_as_999(run_case):
    money = run_case(
        MonthCase(premium(("A", 1000), ("B", 1000)), [Plays("A", "X", 1), Plays("B", "Y", 999)]),
        NO_CAPS,
    )
    assert money.uc == {"X": 1000, "Y": 1000}
    assert money.pr == {"X": 2, "Y": 1998}


def test_c2_three_way_tie_goes_to_the_smallest_payee_id(run_case):
    money = run_case(
        MonthCase(
            premium(("U1", 1000), ("U2", 1000), ("U3", 1000)),
            [
                Plays("U1", "X", 100),
                Plays("U2", "Z", 50),
                Plays("U3", "X", 50),
                Plays("U3", "Y", 50),
                Plays("U3", "Z", 50),
            ],
        ),
        {"max_daily_plays_per_track": 1_000},
    )
    assert money.uc == {"X": 1334, "Y": 333, "Z": 1333}
    assert money.pr == {"X": 1500, "Y": 500, "Z": 1000}


C3 = MonthCase(
    premium(("U1", 1000), ("U2", 1000), ("U3", 1000)), [Plays("U1", "X", 3), Plays("U2", "Y", 1)]
)


def test_c3_silent_user_residual_pro_rata(run_case):
    money = run_case(C3, {"residual_policy": "pro_rata"})
    assert money.uc == {"X": 1750, "Y": 1250}
    assert money.pr == {"X": 2250, "Y": 750}
    assert money.segments[("FR", "paid")] == (3, 4, 3000, 1000 * 10**12)


def test_c3_silent_user_residual_retained(run_case):
    money = run_case(C3, {"residual_policy": "retain", **HOLD_ANY})
    assert money.uc == {"X": 1000, "Y": 1000, "__unallocated__": 1000}
    assert money.pr == {"X": 2250, "Y": 750}
    # __unallocated__ is never paid; it accumulates.
    assert money.statements["__unallocated__"] == (0, 1000, 0, 0, 1000)


def test_c4_minimum_length_and_daily_cap(run_case):
    money = run_case(
        MonthCase(
            premium(("U", 1000), ("V", 1000)),
            [
                Plays("U", "T1", 12, day=1),
                Plays("U", "T1", 1, day=2, ms=29_999),
                Plays("U", "T1", 1, day=2, ms=30_000),
                Plays("U", "T2", 3, ms=10_000),
                Plays("V", "T2", 2),
            ],
            splits={"T1": [("A", 1_000_000)], "T2": [("B", 1_000_000)]},
        )
    )
    assert money.uc == {"A": 1000, "B": 1000}
    assert money.pr == {"A": 1692, "B": 308}


def test_c5_splits_round_once_per_payee(run_case):
    money = run_case(
        MonthCase(
            premium(("U", 1001)),
            [Plays("U", "T", 1)],
            splits={
                "T": [("LABEL", 400_000), ("MAIN", 280_000), ("FEAT", 120_000), ("W1", 100_000), ("W2", 100_000)]
            },
        )
    )
    assert money.uc == {"LABEL": 401, "MAIN": 280, "FEAT": 120, "W1": 100, "W2": 100}


def test_c6_largest_remainders_get_the_missing_cents(run_case):
    money = run_case(
        MonthCase(premium(("U", 10_000)), [Plays("U", t, n) for n, t in enumerate("ABCDEFG", start=1)])
    )
    assert money.uc == {"A": 357, "B": 714, "C": 1071, "D": 1429, "E": 1786, "F": 2143, "G": 2500}


def test_c7_threshold_and_carry_over_across_three_months(landing, materialize_month, tmp_path):
    lake = Lake(tmp_path / "warehouse")
    months = {  # the first partition is 2024-01, which starts from zero balances
        "2024-01": [("uP", "P", 640), ("uQ", "Q", 1200), ("uR", "R", 999)],
        "2024-02": [("uP", "P", 290), ("uR", "R", 1)],
        "2024-03": [("uP", "P", 75)],
    }
    statements = {}
    for month, earners in months.items():
        MonthCase(premium(*[(u, c) for u, _, c in earners]), [Plays(u, t, 1) for u, t, _ in earners]).write(
            landing, month
        )
        config = {**FULL_SHARE, "payout_threshold_cents": 1000}
        result = materialize_month(month, run_config={"resources": {"payout_rules": {"config": config}}})
        assert result.success
        statements[month] = {
            payee: (opening, earned, paid, closing)
            for payee, (opening, earned, _, paid, closing) in read_money(lake, month).statements.items()
        }
    # (opening, earned, paid, closing)
    assert statements["2024-01"] == {"P": (0, 640, 0, 640), "Q": (0, 1200, 1200, 0), "R": (0, 999, 0, 999)}
    assert statements["2024-02"] == {"P": (640, 290, 0, 930), "R": (999, 1, 1000, 0)}
    assert statements["2024-03"] == {"P": (930, 75, 1005, 0)}


def test_c13_free_tier_pool_adds_to_the_paid_one(run_case):
    money = run_case(
        MonthCase(
            [("UP", "premium", "FR", 3000), ("UF", "free", "FR", 0)],
            [Plays("UP", "X", 2), Plays("UP", "Y", 1), Plays("UF", "X", 1), Plays("UF", "Y", 9)],
            ad_revenue=[("FR", 100)],
        )
    )
    assert money.uc == {"X": 2010, "Y": 1090}
    assert money.by_segment == {
        ("FR", "free", "X"): (10, 10),
        ("FR", "free", "Y"): (90, 90),
        ("FR", "paid", "X"): (2000, 2000),
        ("FR", "paid", "Y"): (1000, 1000),
    }


def test_c12_royalty_share_truncates_once_per_segment(run_case):
    money = run_case(
        MonthCase(premium(("A", 999), ("B", 999), ("C", 999)), [Plays("A", "X", 3), Plays("B", "Y", 1)]),
        {"royalty_share_ppm": 700_000},
    )
    assert money.segments[("FR", "paid")][2] == 2097
    assert money.uc == {"X": 1223, "Y": 874}
    assert money.pr == {"X": 1573, "Y": 524}


# Beyond the public cases ----------------------------------------------------------------------

def test_flagged_user_counts_nothing_and_their_money_follows_the_residual_policy(run_case):
    money = run_case(
        MonthCase(
            premium(("BOT", 1000), ("U", 1000)),
            [Plays("BOT", "X", 3, day=4), Plays("BOT", "Y", 3, day=4), Plays("BOT", "X", 2, day=5), Plays("U", "Z", 1)],
        ),
        {"max_daily_streams_per_user": 5},
    )
    assert money.flagged == {"BOT": (date(2024, 1, 4), 6)}
    assert money.uc == {"Z": 2000}  # U's own 1000, plus BOT's 1000 redistributed by streams
    assert money.pr == {"Z": 2000}


def test_tracks_without_valid_splits_pay_suspense(run_case):
    money = run_case(
        MonthCase(
            premium(("U", 1000)),
            [Plays("U", "GOOD", 1), Plays("U", "SUM_WRONG", 1), Plays("U", "DUPLICATE", 1), Plays("U", "ZERO", 1),
             Plays("U", "UNCATALOGED", 1)],
            splits={
                "GOOD": [("G", 1_000_000)],
                "SUM_WRONG": [("G", 600_000), ("H", 300_000)],
                "DUPLICATE": [("G", 500_000), ("G", 500_000)],
                "ZERO": [("G", 1_000_000), ("H", 0)],
            },
        ),
        HOLD_ANY,
    )
    # UNCATALOGED is not in tracks.parquet at all: its plays were kept, its money is suspended.
    assert money.uc == {"G": 200, "__suspense__": 800}
    assert money.statements["__suspense__"] == (0, 800, 800, 0, 800)


def test_free_segment_without_streams_and_ad_revenue_without_users_go_unallocated(run_case):
    money = run_case(
        MonthCase(
            [("U", "premium", "FR", 1000), ("F", "free", "DE", 0)],
            [Plays("U", "X", 1)],
            ad_revenue=[("DE", 300), ("SE", 50)],
        ),
        HOLD_ANY,
    )
    assert money.by_segment == {
        ("DE", "free", "__unallocated__"): (300, 300),
        ("FR", "paid", "X"): (1000, 1000),
        ("SE", "free", "__unallocated__"): (50, 50),
    }

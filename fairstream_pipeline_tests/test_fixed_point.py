"""lib.payouts.fixed_point: the 64-bit fast path gives exactly Python's integer floor division,
on both sides of 2^63 and up to the 128-bit values of the payout rules."""

from __future__ import annotations

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from fairstream_pipeline.lib.payouts.fixed_point import (
    BIGINT_MAX,
    floor_div,
    quotient_and_remainder,
    scaled_floor_div,
)
from fairstream_pipeline_tests.strategies import PROPERTY_SETTINGS

HUGEINT_MAX = 2**127 - 1
# Dividends of every size that matters: small, near 2^63 on both sides, and up to 128 bits.
dividends = st.one_of(
    st.integers(0, 10**6),
    st.integers(BIGINT_MAX - 1000, BIGINT_MAX + 1000),
    st.integers(0, BIGINT_MAX),
    st.integers(BIGINT_MAX + 1, 10**30),
)
divisors = st.one_of(st.integers(1, 10), st.integers(1, 10**12), st.integers(1, BIGINT_MAX))


def sql_value(sql: str, **values: int):
    """Evaluate ``sql`` with each name bound to a HUGEINT (or BIGINT for names ending in _b)."""
    columns = ", ".join(
        f"{value}::{'BIGINT' if name.endswith('_b') else 'HUGEINT'} AS {name}" for name, value in values.items()
    )
    return duckdb.sql(f"SELECT {sql} FROM (SELECT {columns})").fetchall()[0]


@settings(PROPERTY_SETTINGS, max_examples=300)
@given(dividends, divisors)
def test_floor_div_is_integer_floor_division(x, d):
    (result,) = sql_value(floor_div("x", "d_b"), x=x, d_b=d)
    assert result == x // d


@settings(PROPERTY_SETTINGS, max_examples=300)
@given(dividends, st.integers(1, 10**12), st.integers(0, 10**6))
def test_scaled_floor_div_is_floor_of_the_product_over_the_divisor(amount, divisor, multiplier):
    q, r, result = _scaled(amount, divisor, multiplier)
    assert (q, r) == divmod(amount, divisor)
    assert result == amount * multiplier // divisor


def _scaled(amount: int, divisor: int, multiplier: int):
    """``amount``'s quotient and remainder by ``divisor``, and floor(amount * multiplier / divisor), in DuckDB."""
    return duckdb.sql(
        f"""SELECT a_q, a_r, {scaled_floor_div('a', 'm', 'd')}
            FROM (SELECT *, {quotient_and_remainder('amount', 'd', 'a')}
                  FROM (SELECT {amount}::HUGEINT AS amount, {divisor}::BIGINT AS d, {multiplier}::BIGINT AS m))"""
    ).fetchall()[0]


def test_worked_cases_on_both_sides_of_2_to_the_63():
    # 2^63 - 1 divides in 64 bits, 2^63 in 128 bits; both give the exact quotient.
    assert sql_value(floor_div("x", "d_b"), x=BIGINT_MAX, d_b=10**12) == (9_223_372,)
    assert sql_value(floor_div("x", "d_b"), x=BIGINT_MAX + 1, d_b=10**12) == (9_223_372,)
    assert sql_value(floor_div("x", "d_b"), x=HUGEINT_MAX, d_b=1) == (HUGEINT_MAX,)
    # A track's 30,000,000,000,003 cents (3.0e25 pico-cents) split 333,333 ppm:
    # floor(3.0000000000003e25 * 333333 / 10^6) = 9,999,990,000,000,999,999,000,000 pico-cents.
    amount = 30_000_000_000_003 * 10**12
    assert _scaled(amount, 10**6, 333_333)[2] == 9_999_990_000_000_999_999_000_000
    assert _scaled(amount, 10**6, 333_333)[2] == amount * 333_333 // 10**6

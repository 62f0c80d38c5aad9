"""Exact integer division of pico-cents in DuckDB SQL, fast when the numbers fit in 64 bits.

DuckDB divides a ``HUGEINT`` bit by bit: at 200M plays the splits' ``(amount * share_ppm) // 10^6``
over 33M rows took 10 s, the same division on ``BIGINT`` a tenth of that. Almost every amount of
a (segment, track) or a (segment, payee) fits in 64 bits (2-3 of 10.7M tracks did not, at 200M
plays), so :func:`floor_div` divides in 64 bits when the dividend fits and in 128 bits only when
it does not: the same integer either way. DuckDB evaluates a ``CASE`` branch only for the rows
that take it.

:func:`scaled_floor_div` is ``floor(a * m / d)`` without the 128-bit product's division:
with ``a = q * d + r`` and ``0 <= r < d``, ``floor(a * m / d) = q * m + floor(r * m / d)``, and
``r * m < d * m`` is small. :func:`product_floor_div` computes such a product once per row,
in 64 bits when both factors are small enough for it to fit. All need non-negative operands and
a positive divisor, which every amount of the payout rules is (``docs/payout-rules.md``); the
tests hold them to plain ``//``.
"""

from __future__ import annotations

import math

BIGINT_MAX = 2**63 - 1
#: The largest factor whose square fits in 64 bits: two factors at most this multiply in BIGINT.
FACTOR_MAX = math.isqrt(BIGINT_MAX)  # 3,037,000,499


def floor_div(dividend: str, divisor: str | int) -> str:
    """SQL for ``dividend // divisor`` as a ``HUGEINT`` (both non-negative integer expressions,
    the divisor a ``BIGINT`` > 0). ``dividend`` appears three times: pass a column (a product
    goes through :func:`product_floor_div`)."""
    return (
        f"(CASE WHEN ({dividend}) <= {BIGINT_MAX} "
        f"THEN (({dividend})::BIGINT // ({divisor}))::HUGEINT "
        f"ELSE ({dividend})::HUGEINT // ({divisor}) END)"
    )


def product_floor_div(left: str, right: str, divisor: str | int) -> str:
    """SQL for ``(left * right) // divisor`` as a ``HUGEINT`` (non-negative integer expressions, the
    divisor a ``BIGINT`` > 0), the product computed once per row: in 64 bits when both factors are
    at most :data:`FACTOR_MAX` (their product then fits), else in 128 bits. The same integer either
    way."""
    return (
        f"(CASE WHEN ({left}) <= {FACTOR_MAX} AND ({right}) <= {FACTOR_MAX} "
        f"THEN ((({left})::BIGINT * ({right})::BIGINT) // ({divisor}))::HUGEINT "
        f"ELSE ((({left})::HUGEINT * ({right})) // ({divisor})) END)"
    )


def quotient_and_remainder(amount: str, divisor: str | int, name: str) -> str:
    """Two select-list columns for :func:`scaled_floor_div`: ``{name}_q = amount // divisor``
    (``HUGEINT``) and ``{name}_r = amount % divisor`` (``BIGINT``)."""
    quotient = floor_div(amount, divisor)
    return (
        f"{quotient} AS {name}_q, "
        f"(({amount})::HUGEINT - {quotient} * ({divisor}))::BIGINT AS {name}_r"
    )


def scaled_floor_div(name: str, multiplier: str, divisor: str | int) -> str:
    """SQL for ``floor(amount * multiplier / divisor)`` from the columns ``{name}_q`` and
    ``{name}_r`` of :func:`quotient_and_remainder` (same ``divisor``); ``multiplier`` a
    non-negative ``BIGINT``."""
    return f"({name}_q * ({multiplier}) + {product_floor_div(f'{name}_r', multiplier, divisor)})"

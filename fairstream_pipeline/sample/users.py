"""The user base: every user's country, plan and listening activity, the same every month."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fairstream_pipeline.sample.draws import STREAM_USERS, rng

COUNTRIES = ("FR", "DE", "ES", "IT", "NL", "SE", "BR")
COUNTRY_WEIGHTS = (0.30, 0.22, 0.14, 0.12, 0.08, 0.06, 0.08)
PLANS = ("free", "premium", "family", "student", "duo")
PLAN_WEIGHTS = (0.35, 0.38, 0.12, 0.10, 0.05)
#: Monthly net price in cents, VAT excluded, by country then plan (order of PLANS).
NET_PRICE_CENTS = {
    "FR": (0, 999, 1499, 499, 1249),
    "DE": (0, 924, 1511, 504, 1175),
    "ES": (0, 908, 1487, 495, 1156),
    "IT": (0, 901, 1474, 491, 1146),
    "NL": (0, 908, 1487, 495, 1156),
    "SE": (0, 959, 1519, 519, 1199),
    "BR": (0, 369, 619, 199, 499),
}
# A user at activity quantile x (0 = the heaviest) listens with weight (x + OFFSET) ** -EXPONENT.
USER_ACTIVITY_EXPONENT = 1.5
USER_ACTIVITY_OFFSET = 0.03


@dataclass
class UserBase:
    n: int
    country_idx: np.ndarray
    plan_idx: np.ndarray
    activity_key: np.ndarray
    fan_key: np.ndarray  # in [0, 1): where the user's favourite niche tracks are

    @classmethod
    def build(cls, seed: int, n: int) -> UserBase:
        """The ``n`` users of ``seed`` (stream ``(seed, users)`` only)."""
        draw = rng(seed, STREAM_USERS)
        country = draw.choice(len(COUNTRIES), size=n, p=np.array(COUNTRY_WEIGHTS)).astype(np.int8)
        plan = draw.choice(len(PLANS), size=n, p=np.array(PLAN_WEIGHTS)).astype(np.int8)
        key = draw.random(n)
        fan_key = draw.random(n)
        return cls(n, country, plan, key, fan_key)


def activity_quantile(u: np.ndarray) -> np.ndarray:
    """Inverse CDF of the weight ``(x + OFFSET) ** -EXPONENT`` on [0, 1): the activity quantile
    ``x`` of the user making a play (0 = the heaviest listener)."""
    c = 1.0 - USER_ACTIVITY_EXPONENT
    x0 = USER_ACTIVITY_OFFSET
    a, b = x0**c, (1.0 + x0) ** c
    return (a - u * (a - b)) ** (1.0 / c) - x0


def quantile_position(x: np.ndarray, n: int) -> np.ndarray:
    """An activity quantile scaled to the activity ranks 0 .. n-1."""
    return np.minimum((x * n).astype(np.int64), n - 1).clip(0)


def activity_rank_share(n: int) -> np.ndarray:
    """The share of plays that :func:`activity_quantile` and :func:`quantile_position` give each of
    the activity ranks 0 .. n-1 (the weight's CDF ``(a - (x + OFFSET) ** c) / (a - b)`` between
    ``r / n`` and ``(r + 1) / n``; it sums to 1)."""
    c = 1.0 - USER_ACTIVITY_EXPONENT
    x0 = USER_ACTIVITY_OFFSET
    a, b = x0**c, (1.0 + x0) ** c
    cdf = (a - (np.arange(n + 1) / max(n, 1) + x0) ** c) / (a - b)
    return np.diff(cdf)

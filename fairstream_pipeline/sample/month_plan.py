"""A month's plan: who is billed, silent, a bot or a looper, which anomalies fall on which day,
and how many organic plays each day gets (its intensity). ``docs/sample-data.md`` has the rates."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fairstream_pipeline.lib.ingestion.landing_zone import (
    LANDING_AD_REVENUE,
    LANDING_SUBSCRIPTIONS,
)
from fairstream_pipeline.lib.months import days_of_month, parse_month
from fairstream_pipeline.sample import draws
from fairstream_pipeline.sample.catalog import Catalog
from fairstream_pipeline.sample.users import COUNTRIES, NET_PRICE_CENTS, PLANS, UserBase

CHURN_RATE = 0.02
SILENT_PAYING_RATE = 0.05
SHORT_PLAY_RATE = 0.25  # of all plays; the organic rate is raised to keep it with bots and loopers
WEEKDAY_FACTORS = (0.97, 0.97, 0.98, 1.00, 1.04, 1.06, 0.98)  # Monday .. Sunday
AD_CENTS_PER_FREE_USER = (30, 60)  # inclusive range, drawn per country and month

BOT_USERS_PER = 2500  # bots = max(2, users // 2500)
BOT_DAYS = (2, 4)
BOT_PLAYS_PER_DAY = (1500, 4000)
BOT_DISTINCT_TRACKS = (200, 500)
LOOPERS = 2
LOOPER_DAYS = (4, 10)
LOOPER_PLAYS_PER_DAY = (50, 90)

INVALID_KINDS = (
    "null_track_id",
    "negative_ms_played",
    "null_track_id",
    "negative_ms_played",
    "null_played_at",
    "empty_user_id",
)
OUTSIDE_PARTITION_EVENTS = 5
CONFLICTING_EVENTS = 4
UNKNOWN_USER_EVENTS = 7


def _largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """``total`` split in proportion to ``weights``, in integers that sum to ``total``."""
    raw = total * weights / weights.sum()
    out = np.floor(raw).astype(np.int64)
    short = total - int(out.sum())
    if short:
        order = np.argsort(-(raw - out), kind="stable")
        out[order[:short]] += 1
    return out


@dataclass
class MonthPlan:
    """Who is billed, silent, a bot or a looper, each day's special rows and organic volume."""

    dates: list[dt.date]
    billed: np.ndarray
    active_by_rank: np.ndarray
    fan_first_rank: np.ndarray  # per base user: the first of their favourite niche ranks
    ordinary: np.ndarray
    bots: np.ndarray
    loopers: np.ndarray
    looper_tracks: np.ndarray
    user_ids: pa.Array  # base users, then extra unknown ids, then ""
    empty_user_index: int
    bot_sessions: list[list[tuple[int, int, int]]]  # per day: (user, plays, distinct tracks)
    looper_sessions: list[list[tuple[int, int, int]]]  # per day: (user, track, plays)
    invalid_by_day: list[list[str]]
    outside_by_day: np.ndarray
    conflict_by_day: np.ndarray
    unknown_by_day: list[np.ndarray]
    organic_by_day: np.ndarray
    p_short_organic: float
    ad_cents_per_free_user: np.ndarray

    @classmethod
    def build(cls, seed: int, month: str, base: UserBase, cat: Catalog, events: int) -> MonthPlan:
        """The plan of ``month`` (stream ``(seed, year, month)``) for about ``events`` main rows."""
        first = parse_month(month)
        rng = draws.rng(seed, draws.STREAM_MONTH, first.year, first.month)
        dates = days_of_month(month)
        n_days = len(dates)
        N = base.n
        billed = rng.random(N) >= CHURN_RATE
        paying = billed & (base.plan_idx != 0)
        silent = paying & (rng.random(N) < SILENT_PAYING_RATE)
        active_idx = np.flatnonzero(billed & ~silent)
        active_by_rank = active_idx[np.argsort(base.activity_key[active_idx], kind="stable")]
        n_bots = max(2, N // BOT_USERS_PER)
        if len(active_idx) < n_bots + LOOPERS + 5:
            raise ValueError(f"too few active users ({len(active_idx)}) for {n_bots} bots")
        special = rng.choice(active_idx, n_bots + LOOPERS, replace=False)
        bots, loopers = np.sort(special[:n_bots]), np.sort(special[n_bots:])
        heavy_half = active_by_rank[: max(1, len(active_by_rank) // 2)]
        ordinary = heavy_half[~np.isin(heavy_half, special)]
        if len(ordinary) == 0:
            ordinary = active_idx[~np.isin(active_idx, special)]

        churned = np.flatnonzero(~billed)
        n_extra = max(0, UNKNOWN_USER_EVENTS - len(churned))
        unknown_pool = np.concatenate([churned, np.arange(N, N + n_extra)])
        unknown_users = rng.choice(unknown_pool, UNKNOWN_USER_EVENTS, replace=len(unknown_pool) < UNKNOWN_USER_EVENTS)
        width = max(7, len(str(N + n_extra)))
        user_ids = pa.concat_arrays([draws.ids("u", 1, N + n_extra, width), pa.array([""])])

        bot_sessions: list[list[tuple[int, int, int]]] = [[] for _ in dates]
        bot_rows = 0
        for b in bots:
            k_days = int(rng.integers(BOT_DAYS[0], BOT_DAYS[1] + 1))
            for d in np.sort(rng.choice(n_days, k_days, replace=False)):
                plays = int(rng.integers(BOT_PLAYS_PER_DAY[0], BOT_PLAYS_PER_DAY[1] + 1))
                distinct = int(rng.integers(BOT_DISTINCT_TRACKS[0], BOT_DISTINCT_TRACKS[1] + 1))
                bot_sessions[d].append((int(b), plays, min(distinct, cat.n_tracks)))
                bot_rows += plays
        looper_sessions: list[list[tuple[int, int, int]]] = [[] for _ in dates]
        looper_rows = 0
        looper_tracks = cat.rank_to_track[rng.integers(0, min(100, cat.n_tracks), LOOPERS)]
        for lu, lt in zip(loopers, looper_tracks):
            k_days = int(rng.integers(LOOPER_DAYS[0], LOOPER_DAYS[1] + 1))
            for d in np.sort(rng.choice(n_days, k_days, replace=False)):
                plays = int(rng.integers(LOOPER_PLAYS_PER_DAY[0], LOOPER_PLAYS_PER_DAY[1] + 1))
                looper_sessions[d].append((int(lu), int(lt), plays))
                looper_rows += plays

        invalid_by_day: list[list[str]] = [[] for _ in dates]
        for kind, d in zip(INVALID_KINDS, rng.integers(0, n_days, len(INVALID_KINDS))):
            invalid_by_day[d].append(kind)
        outside_by_day = np.bincount(rng.integers(1, n_days, OUTSIDE_PARTITION_EVENTS), minlength=n_days)
        conflict_by_day = np.bincount(rng.integers(0, n_days, CONFLICTING_EVENTS), minlength=n_days)
        unknown_days = rng.integers(0, n_days, UNKNOWN_USER_EVENTS)
        unknown_by_day = [unknown_users[unknown_days == d] for d in range(n_days)]

        special_main_rows = (
            bot_rows + looper_rows + len(INVALID_KINDS) + OUTSIDE_PARTITION_EVENTS
            + CONFLICTING_EVENTS + UNKNOWN_USER_EVENTS
        )
        organic = max(0, events - special_main_rows)
        factors = np.array([WEEKDAY_FACTORS[d.weekday()] for d in dates])
        organic_by_day = _largest_remainder(organic, factors)
        if organic:
            p_short = min(0.6, SHORT_PLAY_RATE * (organic + bot_rows + looper_rows) / organic)
        else:
            p_short = SHORT_PLAY_RATE
        ad_rates = rng.integers(AD_CENTS_PER_FREE_USER[0], AD_CENTS_PER_FREE_USER[1] + 1, len(COUNTRIES))
        return cls(
            dates=dates,
            billed=billed,
            active_by_rank=active_by_rank,
            fan_first_rank=cat.fan_first_rank(base.fan_key),
            ordinary=ordinary,
            bots=bots,
            loopers=loopers,
            looper_tracks=looper_tracks,
            user_ids=user_ids,
            empty_user_index=len(user_ids) - 1,
            bot_sessions=bot_sessions,
            looper_sessions=looper_sessions,
            invalid_by_day=invalid_by_day,
            outside_by_day=outside_by_day,
            conflict_by_day=conflict_by_day,
            unknown_by_day=unknown_by_day,
            organic_by_day=organic_by_day,
            p_short_organic=p_short,
            ad_cents_per_free_user=ad_rates,
        )

    def subscriptions_table(self, base: UserBase) -> pa.Table:
        """The month's ``subscriptions``: one row per billed user."""
        idx = np.flatnonzero(self.billed)
        prices = np.array([NET_PRICE_CENTS[c] for c in COUNTRIES], dtype=np.int64)
        return pa.table(
            [
                self.user_ids.take(pa.array(idx)),
                draws.words(PLANS, base.plan_idx[idx]),
                draws.words(COUNTRIES, base.country_idx[idx]),
                pa.array(prices[base.country_idx[idx], base.plan_idx[idx]], pa.int64()),
            ],
            schema=LANDING_SUBSCRIPTIONS.arrow_schema,
        )

    def ad_revenue_table(self, base: UserBase) -> pa.Table:
        """The month's ``ad_revenue``: each country's free users times its drawn rate."""
        free = self.billed & (base.plan_idx == 0)
        per_country = np.bincount(base.country_idx[free], minlength=len(COUNTRIES))
        order = [i for i in np.argsort(np.array(COUNTRIES)) if per_country[i] > 0]
        return pa.table(
            [
                pa.array([COUNTRIES[i] for i in order], pa.string()),
                pa.array([int(per_country[i] * self.ad_cents_per_free_user[i]) for i in order], pa.int64()),
            ],
            schema=LANDING_AD_REVENUE.arrow_schema,
        )

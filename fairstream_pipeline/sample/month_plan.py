"""A month's plan: who is billed, silent, a bot, a looper or a sleep-sound listener, which anomalies
fall on which day, and how many organic plays each day gets (its intensity). ``docs/sample-data.md``
has the rates."""

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
from fairstream_pipeline.sample.users import COUNTRIES, NET_PRICE_CENTS, PLANS, UserBase, activity_rank_share

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
# Sleep-sound listeners (ACPS v1, stream STREAM_SLEEPERS; docs/sample-data.md, "Sleepers"): users
# for whom falling asleep to a playlist of noise tracks is most of their listening, which makes them
# heavy users but not the very heaviest: they are drawn from SLEEPER_ACTIVITY_BAND of the active
# users by activity (bots and loopers aside). Their sleep plays are SLEEPER_NOISE_SHARE of the
# requested events (bots and organic plays add a little noise too, ~1.8 % in all). They are part of
# the sleeper's own listening: a sleeper's sleep plays are SLEEPER_OWN_SHARE of the plays their
# activity gives them, in sessions of about SLEEPER_NIGHT_PLAYS (at most one a night), and replace
# that share of their organic plays, in proportion to their taste (events.py), so a sleeper's row
# count stays that of their activity. Candidates are drawn in a random order until their sleep
# plays reach the month's total.
SLEEPER_NOISE_SHARE = 0.016
SLEEPER_ACTIVITY_BAND = (0.10, 0.30)  # candidates: activity ranks from the heaviest 10 % to 30 % of active users
SLEEPER_OWN_SHARE = (0.7, 0.95)  # the share of a sleeper's plays that are sleep plays, per sleeper
SLEEPER_NIGHT_PLAYS = (4, 12)  # a sleeper's mean plays in a night's session (10-30 minutes), per sleeper
SLEEPER_NIGHT_WEIGHT = (0.5, 1.5)  # a night's plays are proportional to this, drawn per night
SLEEPER_PLAYLIST = (4, 8)  # noise tracks in a sleeper's playlist (inclusive range)
SLEEPER_MAX_REPLACED = 0.95  # at most this share of a sleeper's organic plays is replaced

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


def _sleepers(
    seed: int, first: dt.date, total: int, candidates: np.ndarray, expected: np.ndarray, cat: Catalog, n_days: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The month's sleep-sound listeners (from ``candidates``, the active users of
    SLEEPER_ACTIVITY_BAND without bots and loopers, whose organic plays are about ``expected``),
    their plays per night (exactly ``total`` in all) and their playlists, from stream
    STREAM_SLEEPERS only.

    Candidates are taken in a random order, each with a capacity of SLEEPER_OWN_SHARE of their
    expected plays (at least one session of SLEEPER_NIGHT_PLAYS, at most one every night), until the
    capacities reach ``total``; each sleeper listens on ``capacity / SLEEPER_NIGHT_PLAYS`` random
    nights, and the total is split over the sleepers' nights in proportion to the capacities."""
    rng = draws.rng(seed, draws.STREAM_SLEEPERS, first.year, first.month)
    m = len(candidates) if total and len(cat.noise_tracks) else 0
    order = rng.permutation(m)
    own = rng.uniform(SLEEPER_OWN_SHARE[0], SLEEPER_OWN_SHARE[1], m)
    per_night = rng.uniform(SLEEPER_NIGHT_PLAYS[0], SLEEPER_NIGHT_PLAYS[1], m)
    capacity = np.clip(own * expected[order], per_night, per_night * n_days)  # one session to one a night
    n = min(m, int(np.searchsorted(np.cumsum(capacity), total)) + 1) if m else 0
    by_user = np.argsort(candidates[order[:n]], kind="stable")  # the sleepers in ascending user order
    sleepers = candidates[order[:n]][by_user]
    capacity, per_night = capacity[:n][by_user], per_night[:n][by_user]
    k = np.clip(np.rint(capacity / per_night), 1, n_days).astype(np.int64)  # nights each sleeper listens
    keys = rng.random((n, n_days))
    nights = keys <= np.sort(keys, axis=1)[np.arange(n), k - 1][:, None]  # k random nights each
    weights = np.where(nights, rng.uniform(SLEEPER_NIGHT_WEIGHT[0], SLEEPER_NIGHT_WEIGHT[1], (n, n_days)), 0.0)
    weights *= (capacity / weights.sum(axis=1))[:, None]
    plays = _largest_remainder(total, weights.ravel()).reshape(n, n_days) if n else np.zeros((0, n_days), np.int64)
    playlist = np.stack(
        [rng.integers(0, len(cat.noise_tracks), n), rng.integers(SLEEPER_PLAYLIST[0], SLEEPER_PLAYLIST[1] + 1, n)],
        axis=1,
    )
    listens = plays.sum(axis=1) > 0  # a sleeper whose share rounded to nothing is no sleeper
    return sleepers[listens], plays[listens], playlist[listens]


@dataclass(frozen=True)
class _Listeners:
    """Who is billed, and among the active (billed, not silent) users, by activity rank, the bots,
    the loopers and the ordinary heavy listeners the injected rows are given to."""

    billed: np.ndarray
    active_by_rank: np.ndarray
    special: np.ndarray  # the bots and the loopers, as drawn
    bots: np.ndarray
    loopers: np.ndarray
    ordinary: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, base: UserBase) -> _Listeners:
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
        return cls(billed, active_by_rank, special, bots, loopers, ordinary)


def _unknown_users(rng: np.random.Generator, n: int, billed: np.ndarray) -> tuple[np.ndarray, pa.Array]:
    """The users of the unknown-user events (churned users, else extra ids), and every user id:
    the base's, the extra ones, then ""."""
    churned = np.flatnonzero(~billed)
    n_extra = max(0, UNKNOWN_USER_EVENTS - len(churned))
    unknown_pool = np.concatenate([churned, np.arange(n, n + n_extra)])
    unknown_users = rng.choice(unknown_pool, UNKNOWN_USER_EVENTS, replace=len(unknown_pool) < UNKNOWN_USER_EVENTS)
    width = max(7, len(str(n + n_extra)))
    return unknown_users, pa.concat_arrays([draws.ids("u", 1, n + n_extra, width), pa.array([""])])


def _bot_sessions(rng: np.random.Generator, bots: np.ndarray, n_days: int, n_tracks: int) -> tuple[list, int]:
    """Per day, each bot's session (user, plays, distinct tracks); and the bots' rows."""
    sessions: list[list[tuple[int, int, int]]] = [[] for _ in range(n_days)]
    rows = 0
    for b in bots:
        k_days = int(rng.integers(BOT_DAYS[0], BOT_DAYS[1] + 1))
        for d in np.sort(rng.choice(n_days, k_days, replace=False)):
            plays = int(rng.integers(BOT_PLAYS_PER_DAY[0], BOT_PLAYS_PER_DAY[1] + 1))
            distinct = int(rng.integers(BOT_DISTINCT_TRACKS[0], BOT_DISTINCT_TRACKS[1] + 1))
            sessions[d].append((int(b), plays, min(distinct, n_tracks)))
            rows += plays
    return sessions, rows


def _looper_sessions(
    rng: np.random.Generator, loopers: np.ndarray, n_days: int, cat: Catalog
) -> tuple[np.ndarray, list, int]:
    """Each looper's track (among the 100 most popular), per day each looper's session (user,
    track, plays); and the loopers' rows."""
    sessions: list[list[tuple[int, int, int]]] = [[] for _ in range(n_days)]
    rows = 0
    looper_tracks = cat.rank_to_track[rng.integers(0, min(100, cat.n_tracks), LOOPERS)]
    for lu, lt in zip(loopers, looper_tracks):
        k_days = int(rng.integers(LOOPER_DAYS[0], LOOPER_DAYS[1] + 1))
        for d in np.sort(rng.choice(n_days, k_days, replace=False)):
            plays = int(rng.integers(LOOPER_PLAYS_PER_DAY[0], LOOPER_PLAYS_PER_DAY[1] + 1))
            sessions[d].append((int(lu), int(lt), plays))
            rows += plays
    return looper_tracks, sessions, rows


@dataclass(frozen=True)
class _Anomalies:
    """The days the injected anomalies fall on."""

    invalid_by_day: list[list[str]]
    outside_by_day: np.ndarray
    conflict_by_day: np.ndarray
    unknown_by_day: list[np.ndarray]

    @classmethod
    def draw(cls, rng: np.random.Generator, n_days: int, unknown_users: np.ndarray) -> _Anomalies:
        invalid_by_day: list[list[str]] = [[] for _ in range(n_days)]
        for kind, d in zip(INVALID_KINDS, rng.integers(0, n_days, len(INVALID_KINDS))):
            invalid_by_day[d].append(kind)
        outside_by_day = np.bincount(rng.integers(1, n_days, OUTSIDE_PARTITION_EVENTS), minlength=n_days)
        conflict_by_day = np.bincount(rng.integers(0, n_days, CONFLICTING_EVENTS), minlength=n_days)
        unknown_days = rng.integers(0, n_days, UNKNOWN_USER_EVENTS)
        unknown_by_day = [unknown_users[unknown_days == d] for d in range(n_days)]
        return cls(invalid_by_day, outside_by_day, conflict_by_day, unknown_by_day)


@dataclass(frozen=True)
class _Volumes:
    """The sleepers and their nights, the share of their organic plays they give up, each day's
    organic plays and the organic short-play rate."""

    sleepers: np.ndarray
    sleeper_nights: np.ndarray
    sleeper_playlist: np.ndarray
    sleeper_rows: int
    sleeper_replace: np.ndarray
    organic_by_day: np.ndarray
    p_short_organic: float


def _volumes(
    seed: int, first: dt.date, dates: list[dt.date], events: int, who: _Listeners, cat: Catalog, session_rows: int
) -> _Volumes:
    """Sleepers and organic volumes for about ``events`` main rows, of which ``session_rows`` are
    the bots' and the loopers'. Sleepers: their sleep plays are special rows, and replace part of
    their own organic plays (events.py draws a new listener for that share of the organic plays
    that fall on them)."""
    active_by_rank, n_days = who.active_by_rank, len(dates)
    other_rows = (
        session_rows + len(INVALID_KINDS) + OUTSIDE_PARTITION_EVENTS + CONFLICTING_EVENTS + UNKNOWN_USER_EVENTS
    )
    lo = round(SLEEPER_ACTIVITY_BAND[0] * len(active_by_rank))
    top = round(SLEEPER_ACTIVITY_BAND[1] * len(active_by_rank))
    top = min(len(active_by_rank), max(lo + len(who.special) + 5, top))
    heavy_ranks = lo + np.flatnonzero(~np.isin(active_by_rank[lo:top], who.special))
    sleep_total = round(SLEEPER_NOISE_SHARE * events) if len(cat.noise_tracks) else 0
    organic = max(0, events - other_rows - sleep_total)
    rank_share = activity_rank_share(len(active_by_rank))
    expected = organic * rank_share[heavy_ranks]
    sleepers, sleeper_nights, sleeper_playlist = _sleepers(
        seed, first, sleep_total, active_by_rank[heavy_ranks], expected, cat, n_days
    )
    sleeper_rows = int(sleeper_nights.sum())
    sleeper_replace = np.zeros(top + 1, dtype=np.float32)  # the last entry stands for every later rank
    if len(sleepers) and organic:
        ranks = heavy_ranks[np.isin(active_by_rank[heavy_ranks], sleepers)]
        plays = sleeper_nights.sum(axis=1)[np.searchsorted(sleepers, active_by_rank[ranks])]
        sleeper_replace[ranks] = np.minimum(SLEEPER_MAX_REPLACED, plays / (organic * rank_share[ranks]))
    organic = max(0, events - other_rows - sleeper_rows)
    factors = np.array([WEEKDAY_FACTORS[d.weekday()] for d in dates])
    organic_by_day = _largest_remainder(organic, factors)
    if organic:
        p_short = min(0.6, SHORT_PLAY_RATE * (organic + session_rows + sleeper_rows) / organic)
    else:
        p_short = SHORT_PLAY_RATE
    return _Volumes(sleepers, sleeper_nights, sleeper_playlist, sleeper_rows, sleeper_replace, organic_by_day, p_short)


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
    sleepers: np.ndarray  # base user indices, ascending
    sleeper_nights: np.ndarray  # (sleepers, days): noise plays of each sleeper on each day
    sleeper_playlist: np.ndarray  # (sleepers, 2): first position in cat.noise_tracks, playlist length
    sleeper_rows: int
    # per activity rank 0 .. the last candidate's, then 0 for every later rank: the probability that an
    # organic play falling on that rank goes to another listener (0 except for the sleepers)
    sleeper_replace: np.ndarray
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
        who = _Listeners.draw(rng, base)
        unknown_users, user_ids = _unknown_users(rng, base.n, who.billed)
        bot_sessions, bot_rows = _bot_sessions(rng, who.bots, len(dates), cat.n_tracks)
        looper_tracks, looper_sessions, looper_rows = _looper_sessions(rng, who.loopers, len(dates), cat)
        anomalies = _Anomalies.draw(rng, len(dates), unknown_users)
        volumes = _volumes(seed, first, dates, events, who, cat, bot_rows + looper_rows)
        ad_rates = rng.integers(AD_CENTS_PER_FREE_USER[0], AD_CENTS_PER_FREE_USER[1] + 1, len(COUNTRIES))
        return cls(
            dates=dates,
            billed=who.billed,
            active_by_rank=who.active_by_rank,
            fan_first_rank=cat.fan_first_rank(base.fan_key),
            ordinary=who.ordinary,
            bots=who.bots,
            loopers=who.loopers,
            looper_tracks=looper_tracks,
            user_ids=user_ids,
            empty_user_index=len(user_ids) - 1,
            bot_sessions=bot_sessions,
            looper_sessions=looper_sessions,
            ad_cents_per_free_user=ad_rates,
            **vars(anomalies),  # their fields are the plan's
            **vars(volumes),
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

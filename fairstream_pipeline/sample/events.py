"""A day's listening events: organic plays by listening intensity and taste, bots, loopers,
sleep-sound listeners, injected anomalies and re-sent copies, each with its play source, as Arrow
tables of the contract's schema."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fairstream_pipeline.lib.ingestion.landing_zone import LANDING_EVENTS
from fairstream_pipeline.lib.payouts.rules import PLAY_SOURCES
from fairstream_pipeline.sample import draws
from fairstream_pipeline.sample.catalog import Catalog
from fairstream_pipeline.sample.month_plan import MonthPlan
from fairstream_pipeline.sample.users import activity_quantile, quantile_position

UNCATALOGED_PLAY_RATE = 0.01
EXACT_30S_RATE = 0.005
FULL_PLAY_RATE = 0.55
EXACT_DUPLICATE_RATE = 0.002
BOT_MS_PLAYED = (30_000, 40_000)
MAX_ROWS_PER_PART = 2_000_000  # a day of more rows is cut into time windows, one file each
DAY_US = 86_400 * 1_000_000
HOUR_US = 3_600_000_000
SLEEP_START_UTC_HOURS = (20, 23)  # a sleep session starts between 20:00 and 23:00 UTC

# ACPS v1: each row's ``source``, drawn per row (stream STREAM_SOURCE, per part file) with these
# shares; search and editorial_playlist are the active ones (lib/payouts/rules.py ACTIVE_SOURCES).
SOURCE_SHARES = {
    "search": 0.15,
    "editorial_playlist": 0.10,
    "algorithmic": 0.30,
    "library": 0.25,
    "radio": 0.15,
    "own_playlist": 0.05,
}
_SOURCES = pa.array(list(SOURCE_SHARES), pa.string())
# a uniform permille -> its source (the shares are whole permilles): one uint16 draw and a lookup per row
_SOURCE_OF_PERMILLE = np.repeat(
    np.arange(len(SOURCE_SHARES), dtype=np.int8), [round(1000 * share) for share in SOURCE_SHARES.values()]
)
assert set(SOURCE_SHARES) <= set(PLAY_SOURCES) and len(_SOURCE_OF_PERMILLE) == 1000

# kinds of event rows
ORGANIC, BOT, LOOPER, INVALID, OUTSIDE, CONFLICT, UNKNOWN, SLEEPER = range(8)
N_KINDS = 8

_EVENT_SCHEMA = LANDING_EVENTS.arrow_schema
_PLAYED_AT_TYPE = _EVENT_SCHEMA.field("played_at").type


@dataclass
class Rows:
    """Column arrays of event rows before they become strings. Index -1 means null."""

    user: np.ndarray
    track: np.ndarray
    t: np.ndarray  # microseconds since the epoch
    ms: np.ndarray
    kind: np.ndarray  # int8, one of ORGANIC ..
    t_null: np.ndarray  # bool
    twin_ms: np.ndarray  # ms_played of the conflicting twin (only for CONFLICT rows)

    @classmethod
    def empty(cls) -> Rows:
        i = np.empty(0, np.int64)
        return cls(i, i, i, i, np.empty(0, np.int8), np.empty(0, bool), i)

    @classmethod
    def make(cls, user, track, t, ms, kind, t_null=None, twin_ms=None) -> Rows:
        n = len(t)
        return cls(
            np.asarray(user, np.int64),
            np.asarray(track, np.int64),
            np.asarray(t, np.int64),
            np.asarray(ms, np.int64),
            np.full(n, kind, np.int8),
            np.zeros(n, bool) if t_null is None else t_null,
            np.zeros(n, np.int64) if twin_ms is None else np.asarray(twin_ms, np.int64),
        )

    @classmethod
    def concat(cls, parts: list[Rows]) -> Rows:
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))

    def take(self, idx: np.ndarray) -> Rows:
        return Rows(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))

    def __len__(self) -> int:
        return len(self.t)


def _ms_played(rng: np.random.Generator, durations: np.ndarray, p_short: float) -> np.ndarray:
    n = len(durations)
    k = rng.random(n)
    v = rng.random(n)
    short = 500 + (v * 29_500).astype(np.int64)
    partial = 30_001 + (v * (durations - 30_001)).astype(np.int64)
    p30 = p_short + EXACT_30S_RATE
    p_partial = p30 + (1.0 - p30) * (1.0 - FULL_PLAY_RATE)
    return np.where(
        k < p_short,
        short,
        np.where(k < p30, 30_000, np.where(k < p_partial, partial, durations)),
    )


def _valid_long_ms(rng: np.random.Generator, durations: np.ndarray) -> np.ndarray:
    return 30_001 + (rng.random(len(durations)) * (durations - 30_001)).astype(np.int64)


def _sleep_rows(seed: int, day_index: int, day_start: int, plan: MonthPlan, cat: Catalog) -> Rows:
    """The day's sleep sessions (stream STREAM_SLEEP_NIGHT): each sleeper with plays tonight plays
    their playlist of noise tracks in a loop, back to back and in full, from a start between 20:00
    and 23:00 UTC (moved earlier when the session would pass midnight)."""
    plays = plan.sleeper_nights[:, day_index]
    on = np.flatnonzero(plays > 0)
    if len(on) == 0:
        return Rows.empty()
    date = plan.dates[day_index]
    rng = draws.rng(seed, draws.STREAM_SLEEP_NIGHT, date.year, date.month, date.day)
    plays = plays[on]
    first, length = plan.sleeper_playlist[on, 0], plan.sleeper_playlist[on, 1]
    tonight = rng.integers(0, length)  # where in the playlist tonight starts
    lo, hi = SLEEP_START_UTC_HOURS
    start = rng.integers(lo * HOUR_US, hi * HOUR_US, len(on))
    session = np.repeat(np.arange(len(on)), plays)
    ends = np.cumsum(plays)
    i = np.arange(len(session)) - np.repeat(ends - plays, plays)  # position within the session
    noise = cat.noise_tracks
    track = noise[(first[session] + (tonight[session] + i) % length[session]) % len(noise)]
    ms = cat.durations_ms[track]
    elapsed = np.cumsum(ms)
    session_ms = elapsed[ends - 1] - np.concatenate([[0], elapsed[ends[:-1] - 1]])
    offset = elapsed - ms - np.repeat(elapsed[ends - 1] - session_ms, plays)  # ms since the session's start
    start = np.clip(np.minimum(start, DAY_US - 1 - session_ms * 1_000), 0, None)
    t = day_start + (start[session] + offset * 1_000) % DAY_US
    return Rows.make(plan.sleepers[on][session], track, t, ms, SLEEPER)


def _day_specials(rng, day_index, day_start, plan: MonthPlan, cat: Catalog) -> Rows:
    parts: list[Rows] = []
    for user, plays, distinct in plan.bot_sessions[day_index]:
        chosen = rng.choice(cat.n_tracks, distinct, replace=False)
        track = chosen[np.arange(plays) % distinct]  # even spread: min(plays, 10 * distinct) survive the cap
        t = day_start + rng.integers(0, DAY_US, plays)
        ms = rng.integers(BOT_MS_PLAYED[0], BOT_MS_PLAYED[1] + 1, plays)
        parts.append(Rows.make(np.full(plays, user), track, t, ms, BOT))
    for user, track, plays in plan.looper_sessions[day_index]:
        start = day_start + int(rng.integers(0, DAY_US - 4 * 3_600_000_000))
        t = start + rng.integers(0, 4 * 3_600_000_000, plays)
        parts.append(
            Rows.make(np.full(plays, user), np.full(plays, track), t, np.full(plays, cat.durations_ms[track]), LOOPER)
        )

    def ordinary_rows(n: int, kind: int, users: np.ndarray | None = None) -> Rows:
        u = rng.choice(plan.ordinary, n) if users is None else users
        track = cat.sample_catalog_tracks(rng, n)
        t = day_start + rng.integers(0, DAY_US, n)
        return Rows.make(u, track, t, _valid_long_ms(rng, cat.durations_ms[track]), kind)

    invalid = plan.invalid_by_day[day_index]
    if invalid:
        rows = ordinary_rows(len(invalid), INVALID)
        for i, what in enumerate(invalid):
            if what == "null_track_id":
                rows.track[i] = -1
            elif what == "negative_ms_played":
                rows.ms[i] = -int(rng.integers(1, 300_000))
            elif what == "null_played_at":
                rows.t_null[i] = True
            elif what == "empty_user_id":
                rows.user[i] = plan.empty_user_index
            else:  # pragma: no cover
                raise AssertionError(what)
        parts.append(rows)
    n_out = int(plan.outside_by_day[day_index])
    if n_out:
        rows = ordinary_rows(n_out, OUTSIDE)
        rows.t[:] = day_start - rng.integers(1, 60_000_001, n_out)  # 23:59:xx the day before
        parts.append(rows)
    n_conf = int(plan.conflict_by_day[day_index])
    if n_conf:
        rows = ordinary_rows(n_conf, CONFLICT)
        rows.twin_ms[:] = rows.ms + rng.integers(1_000, 60_001, n_conf)
        parts.append(rows)
    unknown = plan.unknown_by_day[day_index]
    if len(unknown):
        parts.append(ordinary_rows(len(unknown), UNKNOWN, users=unknown))
    specials = Rows.concat(parts)
    return specials.take(np.argsort(specials.t, kind="stable"))


def _replace_sleepers_plays(rng, x: np.ndarray, pos: np.ndarray, plan: MonthPlan) -> None:
    """A sleeper's sleep plays replace part of their own listening: an organic play that falls on a
    sleeper's activity rank goes, with the probability ``plan.sleeper_replace`` of that rank, to a
    listener drawn afresh (``x`` and ``pos`` are changed in place, and the play's taste follows
    the new ``x``). One gather per row; only the plays of sleepers draw a uniform."""
    q = plan.sleeper_replace
    p = q[np.minimum(pos, len(q) - 1)]
    sleepers = np.flatnonzero(p)
    drop = sleepers[rng.random(len(sleepers)) < p[sleepers]]
    x[drop] = activity_quantile(rng.random(len(drop)))
    pos[drop] = quantile_position(x[drop], len(plan.active_by_rank))


def _organic_rows(rng, n: int, t_lo: int, t_hi: int, plan: MonthPlan, cat: Catalog) -> Rows:
    """``n`` organic plays with ``played_at`` sorted and uniform in [t_lo, t_hi)."""
    x = activity_quantile(rng.random(n))
    pos = quantile_position(x, len(plan.active_by_rank))
    _replace_sleepers_plays(rng, x, pos, plan)
    user = plan.active_by_rank[pos]
    track = cat.sample_tracks_by_taste(rng.random(n), x, user, plan.fan_first_rank)
    unc = rng.random(n) < UNCATALOGED_PLAY_RATE
    n_unc = int(unc.sum())
    if n_unc:
        track[unc] = cat.n_tracks + rng.integers(0, cat.n_uncataloged, n_unc)
    # sorted uniforms = normalised cumulative sums of exponentials
    gaps = np.cumsum(rng.standard_exponential(n + 1))
    t = t_lo + (gaps[:n] * ((t_hi - t_lo) / gaps[n])).astype(np.int64)
    np.minimum(t, t_hi - 1, out=t)
    ms = _ms_played(rng, cat.durations_ms[track], plan.p_short_organic)
    return Rows.make(user, track, t, ms, ORGANIC)


def _merge_sorted(organic: Rows, specials: Rows) -> tuple[Rows, np.ndarray]:
    """Merge two time-sorted row sets; returns the rows and the positions of the organic rows."""
    n = len(organic) + len(specials)
    spec_pos = np.searchsorted(organic.t, specials.t, side="right") + np.arange(len(specials))
    is_spec = np.zeros(n, bool)
    is_spec[spec_pos] = True
    org_pos = np.flatnonzero(~is_spec)
    merged = {}
    for f in Rows.__dataclass_fields__:
        a, b = getattr(organic, f), getattr(specials, f)
        out = np.empty(n, a.dtype)
        out[org_pos] = a
        out[spec_pos] = b
        merged[f] = out
    return Rows(**merged), org_pos


def _sources(rng: np.random.Generator, n: int) -> pa.Array:
    """``n`` play sources drawn independently with SOURCE_SHARES."""
    return _SOURCES.take(pa.array(_SOURCE_OF_PERMILLE[rng.integers(0, 1000, n, dtype=np.uint16)]))


def _event_table(
    rows: Rows, first_seq: int, prefix: str, plan: MonthPlan, cat: Catalog, source: pa.Array
) -> pa.Table:
    event_id = draws.ids(prefix, first_seq, len(rows), 9)
    user = plan.user_ids.take(pa.array(rows.user, mask=rows.user < 0))
    track = cat.track_ids.take(pa.array(rows.track, mask=rows.track < 0))
    played_at = pa.array(rows.t, _PLAYED_AT_TYPE, mask=rows.t_null if rows.t_null.any() else None)
    ms = pa.array(rows.ms, pa.int64())
    return pa.table([event_id, user, track, played_at, ms, source], schema=_EVENT_SCHEMA)


@dataclass
class EventStats:
    """Running counts over the month's written rows, for the summary."""

    n_user_ids: int
    is_noise: np.ndarray | None = None  # per track index (Catalog.is_noise): counts the noise rows
    rows: int = 0
    files: int = 0
    day_rows: list[int] = field(default_factory=list)  # rows of each day written
    kind_rows: list[int] = field(default_factory=lambda: [0] * N_KINDS)  # rows of each kind (ORGANIC ..)
    exact_duplicates: int = 0
    uncataloged: int = 0
    short: int = 0
    nonneg_ms: int = 0
    noise: int = 0  # rows on noise tracks

    def __post_init__(self):
        self.user_rows = np.zeros(self.n_user_ids, np.int64)

    def add(self, rows: Rows) -> None:
        self.rows += len(rows)
        valid_user = rows.user[rows.user >= 0]
        self.user_rows += np.bincount(valid_user, minlength=self.n_user_ids)[: self.n_user_ids]
        nonneg = rows.ms >= 0
        self.nonneg_ms += int(nonneg.sum())
        self.short += int((nonneg & (rows.ms < 30_000)).sum())
        if self.is_noise is not None:
            self.noise += int(self.is_noise[rows.track].sum())  # track -1 (null) reads the "" id: False


def day_tables(seed: int, day_index: int, plan: MonthPlan, cat: Catalog, stats: EventStats) -> Iterator[pa.Table]:
    """The event files of one day, in order: one per time window (``ceil(rows / MAX_ROWS_PER_PART)``
    of them), then one of the re-sent copies (exact duplicates, conflicting twins) if any; counts go
    to ``stats`` as the files are consumed."""
    date = plan.dates[day_index]
    day_start = int(dt.datetime(date.year, date.month, date.day, tzinfo=dt.UTC).timestamp()) * 1_000_000
    prefix = f"e{date:%Y%m%d}-"
    drng = draws.rng(seed, draws.STREAM_DAY, date.year, date.month, date.day)
    specials = _day_specials(drng, day_index, day_start, plan, cat)
    sleep = _sleep_rows(seed, day_index, day_start, plan, cat)
    if len(sleep):
        specials = Rows.concat([specials, sleep])
        specials = specials.take(np.argsort(specials.t, kind="stable"))
    n_org = int(plan.organic_by_day[day_index])
    n_parts = max(1, math.ceil((n_org + len(specials)) / MAX_ROWS_PER_PART))
    bounds = [day_start + (k * DAY_US) // n_parts for k in range(n_parts + 1)]
    spec_part = np.clip((specials.t - day_start) * n_parts // DAY_US, 0, n_parts - 1)
    resend: list[pa.Table] = []
    seq = 1
    day_rows = 0
    for k in range(n_parts):
        prng = draws.rng(seed, draws.STREAM_PART, date.year, date.month, date.day, k)
        n_k = n_org * (k + 1) // n_parts - n_org * k // n_parts
        organic = _organic_rows(prng, n_k, bounds[k], bounds[k + 1], plan, cat)
        rows, org_pos = _merge_sorted(organic, specials.take(np.flatnonzero(spec_part == k)))
        srng = draws.rng(seed, draws.STREAM_SOURCE, date.year, date.month, date.day, k)
        table = _event_table(rows, seq, prefix, plan, cat, _sources(srng, len(rows)))
        seq += len(rows)
        stats.files += 1
        yield table
        stats.add(rows)
        day_rows += len(rows)
        stats.uncataloged += int(((organic.track >= cat.n_tracks) & (organic.track < cat.empty_index)).sum())
        for kind, count in enumerate(np.bincount(rows.kind, minlength=N_KINDS)):
            stats.kind_rows[kind] += int(count)
        # exact copies of organic rows (valid, in partition, billed users, unique ids)
        m = int(prng.binomial(n_k, EXACT_DUPLICATE_RATE)) if n_k else 0
        if m:
            pos = org_pos[np.unique(prng.integers(0, n_k, m))]
            resend.append(table.take(pa.array(pos)))
            stats.add(rows.take(pos))
            stats.exact_duplicates += len(pos)
            day_rows += len(pos)
        # conflicting twins: same event_id, user, track, played_at; another ms_played
        conf = np.flatnonzero(rows.kind == CONFLICT)
        if len(conf):
            twins = rows.take(conf)
            twins.ms = twins.twin_ms
            twin_table = table.take(pa.array(conf)).set_column(
                4, "ms_played", pa.array(twins.ms, pa.int64())
            )
            resend.append(twin_table)
            stats.add(twins)
            stats.kind_rows[CONFLICT] += len(conf)  # the twins; their originals are counted above
            day_rows += len(conf)
    if resend:
        extra = pa.concat_tables(resend)
        stats.files += 1
        yield extra.take(pc.sort_indices(extra, [("played_at", "ascending"), ("event_id", "ascending")]))
    stats.day_rows.append(day_rows)

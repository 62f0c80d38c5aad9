"""Reference implementation (test oracle) of FairStream's payout rules, v4 (rules 1-11).

This module is written independently of the production DuckDB payout engine, so that the two can
be compared on random months. It is deliberately plain: standard library only, no Dagster, no
DuckDB, and no floating point anywhere. Money is held in integer *pico-cents* (10^-12 cent) and
every division is a floor division of non-negative integers (``//``), which is the same as
truncation.

Inputs
    plays          iterable of ``(user_id, track_id, day, ms_played)`` or ``(user_id, track_id, day,
                   ms_played, active)`` (``day`` a ``datetime.date``, not a ``datetime``; ``active`` a
                   bool, False when absent: the play's source was search or an editorial playlist),
                   already clean and de-duplicated. Every play's user must be a subscriber; anything
                   else raises ``ValueError``.
    subscribers    iterable of ``(user_id, plan, country, net_cents)``; tier is ``"free"`` when
                   ``plan == "free"``, else ``"paid"``. A user listed twice raises ``ValueError``.
    ad_revenue     mapping ``{country: net_cents}`` (the free tier's music ad revenue).
    split_rows     iterable of ``(track_id, payee_id, share_ppm)``.
    tracks         optional mapping ``{track_id: (artist_id or None, noise)}`` (ACPS only). A track
                   missing from it has no artist and is music.

The rule numbers in the comments below refer to ``docs/payout-rules.md`` (1 counted streams,
2 segments, 3 fixed-point money, 4 user-centric paid, 5 free, 6 pro-rata, 7 splits, 8 rounding,
9 statements, 10 holds, 11 the artist-centric model, ACPS v1).

Rule 11 (ACPS v1), per segment, beside user-centric and pro-rata, from the same pools:
    * a counted stream is rule 1's; within one (user, track, day) the active plays count first:
      a = min(qualified active plays, capped count);
    * an artist is professional in the month with at least ``acps_pro_min_streams`` counted music
      streams platform-wide (all segments) and at least ``acps_pro_min_listeners`` distinct users
      with a counted music stream of theirs; a track without artist is never professional;
    * noise has weight 0 and is left out of M_u (the user's counted music streams) and out of the
      professional counts;
    * b(u,t) = b_pro(t) * ((n - a) + acps_active_boost * a), b_pro = acps_pro_boost for a
      professional artist, else 1; w(u,t) = floor(b(u,t) * K * 10^6 / M_u) micro-streams, with
      K = min(M_u, acps_user_stream_cap) (``cap``) or K = acps_user_stream_cap (``normalise``);
    * W_t = sum of w(u,t) over the segment's users; track t gets floor(pool * W_t / sum W); when
      sum W = 0 the pool goes to ``__unallocated__``; then splits (rule 7) and rounding (rule 8).
``payout_model`` says whose cents are a statement's ``earned_cents`` (user-centric by default).
"""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, Union

PICO_PER_CENT = 10**12
PPM = 10**6  # parts per million: shares and the royalty share are expressed in ppm
SUSPENSE = "__suspense__"
UNALLOCATED = "__unallocated__"
SPECIAL_PAYEES = frozenset({SUSPENSE, UNALLOCATED})
FREE = "free"
PAID = "paid"
RESIDUAL_POLICIES = ("pro_rata", "retain")
USER_CENTRIC, PRO_RATA, ARTIST_CENTRIC = "user_centric", "pro_rata", "artist_centric"
PAYOUT_MODELS = (USER_CENTRIC, PRO_RATA, ARTIST_CENTRIC)  # in the order of an earnings row
ACPS_CAP_MODES = ("cap", "normalise")
MICRO = 10**6  # ACPS weights are integers in micro-streams

SegmentKey = tuple[str, str]  # (country, tier)
EarningsKey = tuple[str, str, str]  # (country, tier, payee_id)
TrackKey = tuple[str, str, str]  # (country, tier, track_id)


# --------------------------------------------------------------------------------------------
# Input rows (plain tuples work just as well; these only give the fields names)
# --------------------------------------------------------------------------------------------


class Play(NamedTuple):
    user_id: str
    track_id: str
    day: datetime.date
    ms_played: int
    active: bool = False  # source search or editorial_playlist (ACPS v1)


class Subscriber(NamedTuple):
    user_id: str
    plan: str
    country: str
    net_cents: int


class SplitRow(NamedTuple):
    track_id: str
    payee_id: str
    share_ppm: int


# --------------------------------------------------------------------------------------------
# Parameters and results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PayoutRules:
    royalty_share_ppm: int = 700_000
    min_play_ms: int = 30_000
    max_daily_plays_per_track: int = 10
    max_daily_streams_per_user: int = 1_000
    residual_policy: str = "pro_rata"
    payout_threshold_cents: int = 1_000
    payout_model: str = USER_CENTRIC  # whose cents are earned_cents
    acps_pro_min_streams: int = 1_000
    acps_pro_min_listeners: int = 500
    acps_pro_boost: int = 2
    acps_active_boost: int = 2
    acps_user_stream_cap: int = 1_000  # C
    acps_cap_mode: str = "cap"

    def __post_init__(self) -> None:
        for name in (
            "royalty_share_ppm",
            "min_play_ms",
            "max_daily_plays_per_track",
            "max_daily_streams_per_user",
            "payout_threshold_cents",
            "acps_pro_min_streams",
            "acps_pro_min_listeners",
        ):
            _require_int(f"PayoutRules.{name}", getattr(self, name))
        for name in ("acps_pro_boost", "acps_active_boost", "acps_user_stream_cap"):
            _require_int(f"PayoutRules.{name}", getattr(self, name), minimum=1)
        if self.payout_model not in PAYOUT_MODELS:
            raise ValueError(f"payout_model must be one of {PAYOUT_MODELS}, got {self.payout_model!r}")
        if self.acps_cap_mode not in ACPS_CAP_MODES:
            raise ValueError(f"acps_cap_mode must be one of {ACPS_CAP_MODES}, got {self.acps_cap_mode!r}")
        if self.royalty_share_ppm > PPM:
            raise ValueError(f"royalty_share_ppm must be <= {PPM}, got {self.royalty_share_ppm}")
        if self.residual_policy not in RESIDUAL_POLICIES:
            raise ValueError(
                f"residual_policy must be one of {RESIDUAL_POLICIES}, got {self.residual_policy!r}"
            )


@dataclass(frozen=True)
class SegmentPool:
    users: int  # number of subscribers of the segment (silent and flagged users included)
    counted_streams: int  # S_seg: the segment's counted streams (flagged users count 0)
    pool_pico: int
    target_cents: int  # floor(pool_pico / 10^12)
    residual_pico: int  # paid: R; any segment without streams: the whole pool; else 0


@dataclass(frozen=True)
class MonthPayout:
    counted: dict[tuple[str, str], int]  # (user, track) -> s(u,t); non-zero, non-flagged only
    flagged: dict[str, tuple[datetime.date, int]]  # user -> (worst day, capped streams that day)
    segments: dict[SegmentKey, SegmentPool]
    # -> (uc_cents, pr_cents, acps_cents); rows with a non-zero figure only
    earnings: dict[EarningsKey, tuple[int, int, int]]
    uc_pico: dict[EarningsKey, int]  # user-centric amounts before rounding; non-zero only
    pr_pico: dict[EarningsKey, int]  # pro-rata amounts before rounding; non-zero only
    acps_pico: dict[EarningsKey, int] = field(default_factory=dict)  # ACPS, before rounding; non-zero only
    # (user, track) -> a(u,t), the counted streams that are active; non-zero, non-flagged only
    active: dict[tuple[str, str], int] = field(default_factory=dict)
    # artist -> (counted music streams, distinct listeners, professional); artists with a stream only
    professional: dict[str, tuple[int, int, bool]] = field(default_factory=dict)
    acps_weights: dict[TrackKey, int] = field(default_factory=dict)  # W_t in micro-streams; non-zero only
    acps_track_pico: dict[TrackKey, int] = field(default_factory=dict)  # before splits; non-zero only


@dataclass(frozen=True)
class Statement:
    opening_balance_cents: int
    earned_cents: int
    pro_rata_cents: int
    paid_cents: int
    closing_balance_cents: int
    adjustment_cents: int = 0  # restated closed months, posted this month (rule 9, v2)
    hold_reason: str | None = None  # why a payee due a payment was not paid (rule 10, v3)
    acps_cents: int = 0  # the month's own ACPS figure, like pro_rata_cents (rule 11, v4)


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _require_int(what: str, value: object, minimum: int | None = 0) -> int:
    # bool is an int subclass; a float or a bool here is a caller bug, never guessed around.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return value


def _require_str(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__} {value!r}")
    return value


def _require_bool(what: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be a bool, got {type(value).__name__} {value!r}")
    return value


def _require_day(what: str, value: object) -> datetime.date:
    # datetime is a subclass of date: a timestamp here would silently make every play its own day.
    if isinstance(value, datetime.datetime) or not isinstance(value, datetime.date):
        raise TypeError(f"{what} must be a datetime.date, got {type(value).__name__} {value!r}")
    return value


# --------------------------------------------------------------------------------------------
# Rule 1: counted streams and flagged users
# --------------------------------------------------------------------------------------------


def count_streams(
    plays: Iterable[tuple], rules: PayoutRules = PayoutRules()
) -> tuple[dict[tuple[str, str], int], dict[str, tuple[datetime.date, int]]]:
    """Return ``(counted, flagged)`` as defined by rule 1."""
    counted, _active, flagged = count_streams_and_active(plays, rules)
    return counted, flagged


def _play_fields(row: tuple) -> tuple[str, str, datetime.date, int, bool]:
    if len(row) == 4:
        user_id, track_id, day, ms_played = row
        active = False
    elif len(row) == 5:
        user_id, track_id, day, ms_played, active = row
    else:
        raise ValueError(f"a play has 4 or 5 fields, got {row!r}")
    _require_str("play user_id", user_id)
    _require_str("play track_id", track_id)
    _require_day("play day", day)
    _require_int("play ms_played", ms_played)
    _require_bool("play active", active)
    return user_id, track_id, day, ms_played, active


def count_streams_and_active(
    plays: Iterable[tuple], rules: PayoutRules = PayoutRules()
) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int], dict[str, tuple[datetime.date, int]]]:
    """Return ``(counted, active, flagged)``: rule 1, and of each (user, track)'s counted streams
    those that are active (per day, the active qualified plays count first, up to the cap)."""
    qualified: dict[tuple[str, str, datetime.date], int] = defaultdict(int)
    qualified_active: dict[tuple[str, str, datetime.date], int] = defaultdict(int)
    for row in plays:
        user_id, track_id, day, ms_played, active = _play_fields(row)
        if ms_played >= rules.min_play_ms:
            qualified[(user_id, track_id, day)] += 1
            if active:
                qualified_active[(user_id, track_id, day)] += 1

    capped: dict[tuple[str, str, datetime.date], int] = {
        key: min(n, rules.max_daily_plays_per_track) for key, n in qualified.items()
    }
    capped_active: dict[tuple[str, str, datetime.date], int] = {
        key: min(qualified_active.get(key, 0), n) for key, n in capped.items()
    }
    per_user_day: dict[str, dict[datetime.date, int]] = defaultdict(lambda: defaultdict(int))
    for (user_id, _track_id, day), n in capped.items():
        per_user_day[user_id][day] += n

    flagged: dict[str, tuple[datetime.date, int]] = {}
    for user_id, days in per_user_day.items():
        if any(n > rules.max_daily_streams_per_user for n in days.values()):
            worst_day, worst_n = None, -1
            for day in sorted(days):  # ascending: on a tie the earliest day is kept
                if days[day] > worst_n:
                    worst_day, worst_n = day, days[day]
            flagged[user_id] = (worst_day, worst_n)

    counted: dict[tuple[str, str], int] = defaultdict(int)
    active_counted: dict[tuple[str, str], int] = defaultdict(int)
    for (user_id, track_id, day), n in capped.items():
        if user_id not in flagged and n > 0:
            counted[(user_id, track_id)] += n
            if capped_active[(user_id, track_id, day)] > 0:
                active_counted[(user_id, track_id)] += capped_active[(user_id, track_id, day)]
    return dict(counted), dict(active_counted), flagged


# --------------------------------------------------------------------------------------------
# Rule 7: splits
# --------------------------------------------------------------------------------------------


def valid_splits(split_rows: Iterable[tuple]) -> dict[str, tuple[tuple[str, int], ...]]:
    """Tracks whose split rows are valid -> their ``(payee_id, share_ppm)`` pairs (sorted).

    Valid: at least one row, distinct payee ids, every share > 0, shares summing to exactly 10^6.
    A track absent from the result pays into suspense.
    """
    by_track: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for row in split_rows:
        track_id, payee_id, share_ppm = row
        _require_str("split track_id", track_id)
        _require_str("split payee_id", payee_id)
        _require_int("split share_ppm", share_ppm, minimum=None)  # <= 0 makes the track invalid
        if payee_id in SPECIAL_PAYEES:
            raise ValueError(f"split row of track {track_id!r} uses the reserved payee id {payee_id!r}")
        by_track[track_id].append((payee_id, share_ppm))

    valid: dict[str, tuple[tuple[str, int], ...]] = {}
    for track_id, pairs in by_track.items():
        payees = [p for p, _ in pairs]
        if (
            len(pairs) >= 1
            and len(set(payees)) == len(payees)
            and all(share > 0 for _, share in pairs)
            and sum(share for _, share in pairs) == PPM
        ):
            valid[track_id] = tuple(sorted(pairs))
    return valid


def _split_to_payees(
    track_amounts: Mapping[str, int], splits: Mapping[str, tuple[tuple[str, int], ...]]
) -> dict[str, int]:
    """Rule 7: pay each track's amount A to its payees, floor(A * share / 10^6) each."""
    out: dict[str, int] = defaultdict(int)
    for track_id, amount in track_amounts.items():
        pairs = splits.get(track_id)
        if pairs is None:
            out[SUSPENSE] += amount
        else:
            for payee_id, share in pairs:
                out[payee_id] += amount * share // PPM
    return out


# --------------------------------------------------------------------------------------------
# Rule 8: rounding to cents
# --------------------------------------------------------------------------------------------


def round_to_cents(pico_by_payee: Mapping[str, int], target_cents: int) -> dict[str, int]:
    """Largest-remainder rounding of one segment's payee totals to exactly ``target_cents``.

    Each payee gets floor(p / 10^12) cents; the ``extra = target - sum(floors)`` missing cents go,
    one each, to the payees with the largest remainders (p mod 10^12), ties by ascending UTF-8
    bytes of the payee id.

    Why 0 <= extra <= number of payees (checked below, and it fails loudly if ever violated):
    write P for the segment's pool and p_i = 10^12 * f_i + r_i for the payee totals, with
    0 <= r_i < 10^12. Every amount is produced by floor divisions of a part of P, so
    sum(p_i) = P - L with a truncation loss L >= 0; each floor division loses less than one
    pico-cent, so L < 10^12 as long as fewer than 10^12 divisions are made (always true).
    * extra >= 0: sum(f_i) <= sum(p_i) / 10^12 <= P / 10^12, and sum(f_i) is an integer, so
      sum(f_i) <= floor(P / 10^12) = target.
    * extra <= k, the number of payees with r_i > 0 (so, <= number of payees):
      extra = target - sum(f_i) <= (P - sum(p_i) + sum(r_i)) / 10^12 = (L + sum(r_i)) / 10^12
      < (10^12 + k * 10^12) / 10^12 = k + 1, and extra is an integer.
    Hence the extra cents always go to payees with a non-zero remainder, never twice to anyone.
    """
    floors = {payee: p // PICO_PER_CENT for payee, p in pico_by_payee.items()}
    extra = target_cents - sum(floors.values())
    positive_remainders = sum(1 for p in pico_by_payee.values() if p % PICO_PER_CENT)
    if not 0 <= extra <= positive_remainders <= len(pico_by_payee):
        raise AssertionError(
            f"rounding invariant broken: {extra} extra cents for {len(pico_by_payee)} payees "
            f"({positive_remainders} with a remainder), target {target_cents}"
        )
    order = sorted(
        pico_by_payee, key=lambda payee: (-(pico_by_payee[payee] % PICO_PER_CENT), payee.encode("utf-8"))
    )
    cents = dict(floors)
    for payee in order[:extra]:
        cents[payee] += 1
    return cents


# --------------------------------------------------------------------------------------------
# Rule 11 (ACPS v1): professional artists and weights
# --------------------------------------------------------------------------------------------


def _track_attributes(tracks: Mapping[str, tuple] | None) -> dict[str, tuple[str | None, bool]]:
    attributes: dict[str, tuple[str | None, bool]] = {}
    for track_id, row in (tracks or {}).items():
        _require_str("tracks track_id", track_id)
        artist_id, noise = row
        if artist_id is not None:
            _require_str(f"artist of track {track_id!r}", artist_id)
        _require_bool(f"noise flag of track {track_id!r}", noise)
        attributes[track_id] = (artist_id, noise)
    return attributes


def professional_artists(
    counted: Mapping[tuple[str, str], int],
    attributes: Mapping[str, tuple[str | None, bool]],
    rules: PayoutRules = PayoutRules(),
) -> dict[str, tuple[int, int, bool]]:
    """artist -> (counted music streams, distinct listeners, professional), over every segment.

    Noise and tracks without artist are left out; ``counted`` holds no flagged user, so a flagged
    user is nobody's listener. Only artists with a counted music stream are listed."""
    streams: dict[str, int] = defaultdict(int)
    listeners: dict[str, set[str]] = defaultdict(set)
    for (user_id, track_id), n in counted.items():
        artist_id, noise = attributes.get(track_id, (None, False))
        if noise or artist_id is None or n == 0:
            continue
        streams[artist_id] += n
        listeners[artist_id].add(user_id)
    return {
        artist_id: (
            streams[artist_id],
            len(listeners[artist_id]),
            streams[artist_id] >= rules.acps_pro_min_streams and len(listeners[artist_id]) >= rules.acps_pro_min_listeners,
        )
        for artist_id in sorted(streams)
    }


def acps_weights(
    seg_users: Iterable[str],
    user_tracks: Mapping[str, Mapping[str, int]],
    active: Mapping[tuple[str, str], int],
    attributes: Mapping[str, tuple[str | None, bool]],
    professional: Mapping[str, tuple[int, int, bool]],
    rules: PayoutRules = PayoutRules(),
) -> dict[str, int]:
    """Rule 11: track -> W_t = sum over the segment's users of w(u,t), in micro-streams."""
    weights: dict[str, int] = defaultdict(int)
    for user_id in seg_users:
        tracks = user_tracks.get(user_id, {})
        music = {t: n for t, n in tracks.items() if not attributes.get(t, (None, False))[1]}
        m_u = sum(music.values())
        if m_u == 0:  # silent, flagged, or noise only: funds the pool, weighs nothing
            continue
        if rules.acps_cap_mode == "cap":
            k = min(m_u, rules.acps_user_stream_cap)
        else:  # "normalise"
            k = rules.acps_user_stream_cap
        for track_id, n in music.items():
            a = active.get((user_id, track_id), 0)
            artist_id = attributes.get(track_id, (None, False))[0]
            is_pro = artist_id is not None and professional.get(artist_id, (0, 0, False))[2]
            b_pro = rules.acps_pro_boost if is_pro else 1
            b = b_pro * ((n - a) + rules.acps_active_boost * a)
            weights[track_id] += b * k * MICRO // m_u
    return dict(weights)


# --------------------------------------------------------------------------------------------
# Rules 2-8 and 11: one month
# --------------------------------------------------------------------------------------------


def compute_month(
    plays: Iterable[tuple],
    subscribers: Iterable[tuple],
    ad_revenue: Mapping[str, int],
    split_rows: Iterable[tuple],
    rules: PayoutRules = PayoutRules(),
    tracks: Mapping[str, tuple] | None = None,
) -> MonthPayout:
    plays = list(plays)
    attributes = _track_attributes(tracks)

    # Subscribers: user -> (country, tier, net_cents).
    users: dict[str, tuple[str, str, int]] = {}
    for row in subscribers:
        user_id, plan, country, net_cents = row
        _require_str("subscriber user_id", user_id)
        _require_str("subscriber plan", plan)
        _require_str("subscriber country", country)
        _require_int(f"net_cents of user {user_id!r}", net_cents)
        if user_id in users:
            raise ValueError(f"user {user_id!r} is listed twice in subscribers")
        users[user_id] = (country, FREE if plan == FREE else PAID, net_cents)
    for country, net_cents in ad_revenue.items():
        _require_str("ad revenue country", country)
        _require_int(f"ad revenue of {country!r}", net_cents)
    unknown = sorted({row[0] for row in plays} - users.keys())
    if unknown:
        raise ValueError(f"plays of users that are not subscribers: {unknown[:5]}")

    counted, active, flagged = count_streams_and_active(plays, rules)
    splits = valid_splits(split_rows)
    professional = professional_artists(counted, attributes, rules)

    # s(u, t) per user.
    user_tracks: dict[str, dict[str, int]] = defaultdict(dict)
    for (user_id, track_id), s in counted.items():
        user_tracks[user_id][track_id] = s

    # Rule 2: the segments that exist.
    members: dict[SegmentKey, list[str]] = defaultdict(list)
    for user_id, (country, tier, _net) in users.items():
        members[(country, tier)].append(user_id)
    segment_keys = set(members) | {(country, FREE) for country in ad_revenue}

    segments: dict[SegmentKey, SegmentPool] = {}
    uc_pico: dict[EarningsKey, int] = {}
    pr_pico: dict[EarningsKey, int] = {}
    acps_pico: dict[EarningsKey, int] = {}
    acps_track_weights: dict[TrackKey, int] = {}
    acps_track_pico: dict[TrackKey, int] = {}
    earnings: dict[EarningsKey, tuple[int, int, int]] = {}
    money_unit = rules.royalty_share_ppm * PPM  # pico-cents per cent of net revenue

    for key in sorted(segment_keys):
        country, tier = key
        seg_users = sorted(members.get(key, []))
        streams: dict[str, int] = defaultdict(int)  # streams_t of the segment
        for user_id in seg_users:
            for track_id, s in user_tracks.get(user_id, {}).items():
                streams[track_id] += s
        s_seg = sum(streams.values())

        # Rule 3: pools.
        if tier == PAID:
            contribution = {u: users[u][2] * money_unit for u in seg_users}
            pool = sum(contribution.values())
        else:
            contribution = {}
            pool = ad_revenue.get(country, 0) * money_unit
        target = pool // PICO_PER_CENT

        # Rule 6: pro-rata (every segment).
        if s_seg == 0:
            pr_payees: dict[str, int] = {UNALLOCATED: pool}
        else:
            pr_payees = _split_to_payees({t: pool * n // s_seg for t, n in streams.items()}, splits)

        # Rules 4 and 5: user-centric.
        if tier == PAID:
            track_uc: dict[str, int] = defaultdict(int)
            residual = 0
            for user_id in seg_users:
                tracks = user_tracks.get(user_id, {})
                s_u = sum(tracks.values())
                if s_u == 0:  # silent or flagged
                    residual += contribution[user_id]
                    continue
                for track_id, s in tracks.items():
                    track_uc[track_id] += contribution[user_id] * s // s_u
            if s_seg == 0:
                uc_payees: dict[str, int] = {UNALLOCATED: residual}  # here residual == pool
            elif rules.residual_policy == "pro_rata":
                for track_id, n in streams.items():
                    track_uc[track_id] += residual * n // s_seg
                uc_payees = _split_to_payees(track_uc, splits)
            else:  # "retain"
                uc_payees = dict(_split_to_payees(track_uc, splits))
                uc_payees[UNALLOCATED] = uc_payees.get(UNALLOCATED, 0) + residual
        else:
            residual = pool if s_seg == 0 else 0
            if s_seg == 0:
                uc_payees = {UNALLOCATED: pool}
            else:
                uc_payees = _split_to_payees({t: pool * n // s_seg for t, n in streams.items()}, splits)

        # Rule 11: ACPS v1.
        weights = acps_weights(seg_users, user_tracks, active, attributes, professional, rules)
        total_weight = sum(weights.values())
        if total_weight == 0:
            acps_payees: dict[str, int] = {UNALLOCATED: pool}
            track_acps: dict[str, int] = {}
        else:
            track_acps = {t: pool * w // total_weight for t, w in weights.items()}
            acps_payees = _split_to_payees(track_acps, splits)
        for track_id, w in weights.items():
            if w:
                acps_track_weights[(country, tier, track_id)] = w
            if track_acps.get(track_id):
                acps_track_pico[(country, tier, track_id)] = track_acps[track_id]

        uc_payees = {p: v for p, v in uc_payees.items() if v}
        pr_payees = {p: v for p, v in pr_payees.items() if v}
        acps_payees = {p: v for p, v in acps_payees.items() if v}
        for name, payees in (("user-centric", uc_payees), ("pro-rata", pr_payees), ("ACPS", acps_payees)):
            if not 0 <= pool - sum(payees.values()) < PICO_PER_CENT:
                raise AssertionError(f"{key} {name}: payees hold {sum(payees.values())} of {pool}")

        # Rule 8.
        uc_cents = round_to_cents(uc_payees, target)
        pr_cents = round_to_cents(pr_payees, target)
        acps_cents = round_to_cents(acps_payees, target)

        segments[key] = SegmentPool(
            users=len(seg_users),
            counted_streams=s_seg,
            pool_pico=pool,
            target_cents=target,
            residual_pico=residual,
        )
        for payee, v in uc_payees.items():
            uc_pico[(country, tier, payee)] = v
        for payee, v in pr_payees.items():
            pr_pico[(country, tier, payee)] = v
        for payee, v in acps_payees.items():
            acps_pico[(country, tier, payee)] = v
        for payee in sorted(uc_cents.keys() | pr_cents.keys() | acps_cents.keys()):
            row = (uc_cents.get(payee, 0), pr_cents.get(payee, 0), acps_cents.get(payee, 0))
            if row != (0, 0, 0):
                earnings[(country, tier, payee)] = row

    return MonthPayout(
        counted=counted,
        flagged=flagged,
        segments=segments,
        earnings=earnings,
        uc_pico=uc_pico,
        pr_pico=pr_pico,
        acps_pico=acps_pico,
        active=active,
        professional=professional,
        acps_weights=acps_track_weights,
        acps_track_pico=acps_track_pico,
    )


# --------------------------------------------------------------------------------------------
# Rule 9: statements
# --------------------------------------------------------------------------------------------


def payee_totals(month: MonthPayout) -> dict[str, tuple[int, int, int]]:
    """payee -> (user-centric cents, pro-rata cents, ACPS cents), summed over the month's segments."""
    return _totals(month.earnings)


def _totals(earnings: Mapping[EarningsKey, tuple[int, int, int]]) -> dict[str, tuple[int, int, int]]:
    totals: dict[str, tuple[int, int, int]] = {}
    for (_country, _tier, payee), row in earnings.items():
        if len(row) != 3:
            raise ValueError(f"earnings of {payee!r} must be (uc, pr, acps) cents, got {row!r}")
        uc, pr, acps = row
        _require_int(f"user-centric cents of {payee!r}", uc)
        _require_int(f"pro-rata cents of {payee!r}", pr)
        _require_int(f"ACPS cents of {payee!r}", acps)
        old_uc, old_pr, old_acps = totals.get(payee, (0, 0, 0))
        totals[payee] = (old_uc + uc, old_pr + pr, old_acps + acps)
    return totals


def roll_statements(
    previous_closing: Mapping[str, int],
    earnings: Union[MonthPayout, Mapping[EarningsKey, tuple[int, int, int]]],
    threshold: int,
    adjustments: Mapping[str, int] | None = None,
    standing: Mapping[str, str | None] | None = None,
    payout_model: str = USER_CENTRIC,
) -> dict[str, Statement]:
    """One month's statements from last month's closing balances, this month's earnings and the
    adjustments posted this month (per payee). A balance may be negative: it carries over.

    ``earned_cents`` is the ``payout_model``'s cents (user-centric by default); the statement keeps
    the month's pro-rata and ACPS cents beside it.

    ``standing`` (rule 10): None when the landing zone has no payment details (nobody is held);
    else payee -> None when they can be paid, or the reason they cannot; a payee missing from it
    has no payment details. A payee due a payment who cannot be paid is held: paid 0, the due
    carries over, and the statement says why."""
    _require_int("threshold", threshold)
    if payout_model not in PAYOUT_MODELS:
        raise ValueError(f"payout_model must be one of {PAYOUT_MODELS}, got {payout_model!r}")
    model = PAYOUT_MODELS.index(payout_model)  # the position of its cents in an earnings row
    rows = earnings.earnings if isinstance(earnings, MonthPayout) else earnings
    totals = _totals(rows)
    adjustments = dict(adjustments or {})
    for payee, balance in previous_closing.items():
        _require_int(f"previous closing balance of {payee!r}", balance, minimum=None)  # may be negative
    for payee, amount in adjustments.items():
        _require_int(f"adjustment of {payee!r}", amount, minimum=None)

    statements: dict[str, Statement] = {}
    for payee in sorted(set(previous_closing) | set(totals) | set(adjustments)):
        opening = previous_closing.get(payee, 0)
        month_cents = totals.get(payee, (0, 0, 0))
        earned, pro_rata, acps = month_cents[model], month_cents[1], month_cents[2]
        adjustment = adjustments.get(payee, 0)
        if (opening, earned, adjustment, pro_rata, acps) == (0, 0, 0, 0, 0):
            continue
        due = opening + earned + adjustment
        hold = None
        if payee not in SPECIAL_PAYEES and due >= threshold and due > 0:
            if standing is not None:
                hold = standing.get(payee, "no_payment_details")
            paid, closing = (0, due) if hold else (due, 0)
        else:
            paid, closing = 0, due
        statements[payee] = Statement(
            opening_balance_cents=opening,
            earned_cents=earned,
            pro_rata_cents=pro_rata,
            paid_cents=paid,
            closing_balance_cents=closing,
            adjustment_cents=adjustment,
            hold_reason=hold,
            acps_cents=acps,
        )
    return statements


def closing_balances(statements: Mapping[str, Statement]) -> dict[str, int]:
    """The ``previous_closing`` argument of the next month's ``roll_statements``."""
    return {payee: s.closing_balance_cents for payee, s in statements.items()}

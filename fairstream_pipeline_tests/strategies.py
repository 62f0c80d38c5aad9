"""Hypothesis strategies for small payout months, shared by the oracle and engine tests."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from fairstream_pipeline_tests.payout_oracle import PPM, PayoutRules

DAY1 = dt.date(2026, 10, 1)
DAY2 = dt.date(2026, 10, 2)
COUNTRIES = ["FR", "DE", "SE"]
TRACKS = ["T0", "T1", "T2", "T3", "T4"]
PAYEES = ["P0", "P1", "P2", "Z", "a", "é"]
ARTISTS = ["A0", "A1", "A2"]  # fewer than the tracks: some artists have several tracks
DAYS = [DAY1, DAY2, dt.date(2026, 10, 31)]
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def valid_split(draw, track):
    k = draw(st.integers(1, 4))
    payees = draw(st.lists(st.sampled_from(PAYEES), min_size=k, max_size=k, unique=True))
    cuts = sorted(draw(st.lists(st.integers(1, PPM - 1), min_size=k - 1, max_size=k - 1, unique=True)))
    shares = [b - a for a, b in zip([0, *cuts], [*cuts, PPM])]
    return [(track, p, s) for p, s in zip(payees, shares)]


@st.composite
def split_table(draw):
    rows = []
    for track in TRACKS:
        kind = draw(st.sampled_from(["none", "valid", "valid", "valid", "duplicate", "zero", "off", "random"]))
        if kind == "valid":
            rows += draw(valid_split(track))
        elif kind == "duplicate":
            p = draw(st.sampled_from(PAYEES))
            rows += [(track, p, PPM // 2), (track, p, PPM // 2)]
        elif kind == "zero":
            rows += draw(valid_split(track)) + [(track, "zero-share", 0)]
        elif kind == "off":
            (t, p, s), *rest = draw(valid_split(track))
            rows += [(t, p, s + draw(st.sampled_from([-1, 1])))] + rest
        elif kind == "random":
            rows += draw(
                st.lists(st.tuples(st.just(track), st.sampled_from(PAYEES), st.integers(-5, PPM)), max_size=3)
            )
    return rows


rules_strategy = st.builds(
    PayoutRules,
    royalty_share_ppm=st.one_of(st.sampled_from([0, 700_000, PPM]), st.integers(0, PPM)),
    min_play_ms=st.sampled_from([0, 30_000, 45_000]),
    max_daily_plays_per_track=st.one_of(st.integers(1, 4), st.just(10)),
    max_daily_streams_per_user=st.one_of(st.integers(1, 8), st.just(1000)),
    residual_policy=st.sampled_from(["pro_rata", "retain"]),
    payout_threshold_cents=st.integers(0, 3000),
    payout_model=st.sampled_from(["user_centric", "pro_rata", "artist_centric"]),
    # Small thresholds, so that some artists are professional and some are not.
    acps_pro_min_streams=st.integers(0, 5),
    acps_pro_min_listeners=st.integers(0, 3),
    acps_pro_boost=st.integers(1, 3),
    acps_active_boost=st.integers(1, 3),
    # Small caps bind (C < M_u); 1000 never does in these months.
    acps_user_stream_cap=st.one_of(st.integers(1, 3), st.integers(1, 6), st.just(1000)),
    acps_cap_mode=st.sampled_from(["cap", "normalise"]),
)


@st.composite
def track_table(draw):
    """track -> (artist or None, noise), ACPS v1's attributes; a track may be missing (no artist, music)."""
    tracks = {}
    for track in TRACKS:
        kind = draw(st.sampled_from(["missing", "artist", "artist", "artist", "no artist", "noise"]))
        if kind == "artist":
            tracks[track] = (draw(st.sampled_from(ARTISTS)), False)
        elif kind == "no artist":
            tracks[track] = (None, False)
        elif kind == "noise":  # noise, with or without an artist: weighs nothing and counts for nobody
            tracks[track] = (draw(st.one_of(st.none(), st.sampled_from(ARTISTS))), True)
    return tracks


@st.composite
def months(draw):
    n_users = draw(st.integers(1, 7))
    subscribers = []
    for i in range(n_users):
        plan = draw(st.sampled_from(["free", "premium", "family", "student"]))
        net = 0 if plan == "free" else draw(st.integers(0, 2500))
        subscribers.append((f"u{i}", plan, draw(st.sampled_from(COUNTRIES)), net))
    user_ids = [s[0] for s in subscribers]
    # Each drawn play is repeated 1-4 times (a user replays a track the same day), each copy active
    # or not (its source was search or an editorial playlist), and half the months draw at least 12
    # of them: so that there are enough counted streams for ACPS v1's professional thresholds, its
    # cap C and the daily caps to bite, with active and passive plays of one (user, track, day)
    # competing for the daily cap.
    rich = draw(st.booleans())
    repeated = draw(
        st.lists(
            st.tuples(
                st.tuples(
                    st.sampled_from(user_ids),
                    st.sampled_from(TRACKS),
                    st.sampled_from(DAYS),
                    st.one_of(st.sampled_from([0, 29_999, 30_000, 60_000]), st.integers(0, 100_000)),
                ),
                st.integers(1, 4),  # copies
                st.integers(0, 15),  # bit i: copy i is active
            ),
            min_size=12 if rich else 0,
            max_size=30,
        )
    )
    plays = [(*play, bool(active >> i & 1)) for play, copies, active in repeated for i in range(copies)]
    ad_revenue = draw(st.dictionaries(st.sampled_from(COUNTRIES), st.integers(0, 5000), max_size=3))
    return dict(
        plays=plays,
        subscribers=subscribers,
        ad_revenue=ad_revenue,
        split_rows=draw(split_table()),
        rules=draw(rules_strategy),
        tracks=draw(track_table()),
    )

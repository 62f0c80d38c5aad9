"""``generate_month``: one deterministic month of landing-zone data, and its summary."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from fairstream_pipeline.lib.months import parse_month
from fairstream_pipeline.sample import writer
from fairstream_pipeline.sample.catalog import Catalog
from fairstream_pipeline.sample.events import (
    BOT,
    CONFLICT,
    INVALID,
    OUTSIDE,
    SLEEPER,
    UNKNOWN,
    EventStats,
    day_tables,
)
from fairstream_pipeline.sample.month_plan import (
    CONFLICTING_EVENTS,
    INVALID_KINDS,
    OUTSIDE_PARTITION_EVENTS,
    UNKNOWN_USER_EVENTS,
    MonthPlan,
)
from fairstream_pipeline.sample.users import UserBase

MIN_USERS = 50
MIN_TRACKS = 200


@dataclass(frozen=True)
class SampleSummary:
    """What :func:`generate_month` wrote. Counts are exact, read back from the generated rows."""

    month: str
    seed: int
    users: int  # size of the user base (billed + churned)
    events_requested: int
    tracks_in_catalog: int
    days: int
    rows_written: int  # all rows of all listening-event files of the month
    event_files: int  # listening-event .parquet files of the month
    events_per_day_min: int  # rows in the smallest day folder
    events_per_day_max: int  # rows in the largest day folder
    users_billed: int  # rows in subscriptions
    paying_users: int  # billed users with a plan other than free
    free_users: int
    churned_users: int  # user-base members not billed this month
    silent_paying_users: int  # paying billed users without any event row this month
    bot_user_ids: tuple[str, ...]
    bot_plays: int  # rows of the bots' stream-farm sessions (on top of their organic plays)
    looper_user_ids: tuple[str, ...]
    sleeper_user_ids: tuple[str, ...]  # users for whom falling asleep to noise tracks is most of their listening
    sleeper_plays: int  # rows of their sleep sessions (in place of most of their own organic plays)
    noise_tracks: int  # catalog tracks with content_type noise
    noise_act_ids: tuple[str, ...]  # payee ids of the artists whose tracks are noise
    noise_plays: int  # rows (all files) on noise tracks: the sleepers' and a few organic ones
    tracks_without_artist_id: tuple[str, ...]  # catalog tracks whose artist_id is null
    uncataloged_track_plays: int  # distinct events (all clean) of tracks absent from the catalog
    broken_split_track_ids: tuple[str, ...]  # tracks with split rows that are invalid
    tracks_without_splits: tuple[str, ...]  # catalog tracks with no split row
    payees: int
    payees_without_email: int
    payees_with_valid_details: int  # payees with a valid payment_details row
    payees_with_invalid_details: int  # ... with an invalid one (broken on purpose)
    payees_without_details: int  # ... with no payment_details row
    invalid_rows: int
    outside_partition: int
    conflicting_duplicate_rows: int  # rows (2 per conflicting event_id)
    exact_duplicates: int  # extra identical copies (the first copy is not counted)
    unknown_user_events: int
    expected_clean_plays: int  # rows_written minus all of the five counts above
    short_play_share: float  # rows with 0 <= ms_played < 30000 / rows with ms_played >= 0
    top20_user_play_share: float  # share of rows made by the top 20 % of users having rows

    def to_dict(self) -> dict:
        d = asdict(self)
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = list(value)
        return d


def default_events(users: int) -> int:
    """Listening-event rows of a month by default."""
    return users * 60


def default_tracks(users: int) -> int:
    """Catalog size by default."""
    return max(200, users // 2)


def generate_month(
    out_dir: Path, month: str, *, users: int, seed: int, events: int | None = None, tracks: int | None = None
) -> SampleSummary:
    """Write the catalog, the month's subscriptions and ad revenue, and every day of events.

    ``events`` defaults to ``users * 60`` and ``tracks`` to ``max(200, users // 2)``.
    Raises ``ValueError`` on invalid arguments.
    """
    parse_month(month)  # a YYYY-MM key, else ValueError
    if events is None:
        events = default_events(users)
    if tracks is None:
        tracks = default_tracks(users)
    _check_arguments(users, events, tracks, seed)
    users, events, tracks, seed = int(users), int(events), int(tracks), int(seed)

    out_dir = Path(out_dir)
    base = UserBase.build(seed, users)
    cat = Catalog.build(seed, tracks)
    plan = MonthPlan.build(seed, month, base, cat, events)

    writer.clear_month(out_dir, month, plan.dates)
    writer.write_catalog(out_dir, cat)
    writer.write_month_tables(out_dir, month, plan, base)
    stats = EventStats(n_user_ids=len(plan.user_ids), is_noise=cat.is_noise)
    for day_index, day in enumerate(plan.dates):
        writer.write_day(out_dir, day, day_tables(seed, day_index, plan, cat, stats))

    # sanity: realised anomaly counts equal the plan
    assert stats.kind_rows[INVALID] == len(INVALID_KINDS)
    assert stats.kind_rows[OUTSIDE] == OUTSIDE_PARTITION_EVENTS
    assert stats.kind_rows[CONFLICT] == CONFLICTING_EVENTS * 2
    assert stats.kind_rows[UNKNOWN] == UNKNOWN_USER_EVENTS
    assert stats.kind_rows[SLEEPER] == plan.sleeper_rows
    return _summary(month, seed, users, events, tracks, base, cat, plan, stats)


def _check_arguments(users: int, events: int, tracks: int, seed: int) -> None:
    """Raise ``ValueError`` naming the first argument that is not an integer or is below its minimum."""
    for name, value, minimum in (
        ("users", users, MIN_USERS),
        ("events", events, 1),
        ("tracks", tracks, MIN_TRACKS),
        ("seed", seed, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _summary(
    month: str, seed: int, users: int, events: int, tracks: int,
    base: UserBase, cat: Catalog, plan: MonthPlan, stats: EventStats,
) -> SampleSummary:
    """What was written, from the plan and the counts of the rows as they were written."""
    counts = stats.user_rows[: base.n]
    paying_billed = plan.billed & (base.plan_idx != 0)
    real_users = stats.user_rows[: plan.empty_user_index]  # without the empty-string id
    nonzero = np.sort(real_users[real_users > 0])[::-1]
    top_k = math.ceil(0.2 * len(nonzero))
    top20 = float(nonzero[:top_k].sum() / nonzero.sum()) if len(nonzero) else 0.0
    anomalies = (
        len(INVALID_KINDS)
        + OUTSIDE_PARTITION_EVENTS
        + 2 * CONFLICTING_EVENTS
        + UNKNOWN_USER_EVENTS
        + stats.exact_duplicates
    )
    return SampleSummary(
        month=month,
        seed=seed,
        users=users,
        events_requested=events,
        tracks_in_catalog=tracks,
        days=len(plan.dates),
        rows_written=stats.rows,
        event_files=stats.files,
        events_per_day_min=min(stats.day_rows),
        events_per_day_max=max(stats.day_rows),
        users_billed=int(plan.billed.sum()),
        paying_users=int(paying_billed.sum()),
        free_users=int((plan.billed & (base.plan_idx == 0)).sum()),
        churned_users=int((~plan.billed).sum()),
        silent_paying_users=int((paying_billed & (counts == 0)).sum()),
        bot_user_ids=tuple(plan.user_ids.take(pa.array(plan.bots)).to_pylist()),
        bot_plays=stats.kind_rows[BOT],
        looper_user_ids=tuple(plan.user_ids.take(pa.array(plan.loopers)).to_pylist()),
        sleeper_user_ids=tuple(plan.user_ids.take(pa.array(plan.sleepers, pa.int64())).to_pylist()),
        sleeper_plays=stats.kind_rows[SLEEPER],
        noise_tracks=len(cat.noise_tracks),
        noise_act_ids=cat.noise_act_ids,
        noise_plays=stats.noise,
        tracks_without_artist_id=cat.tracks_without_artist_id,
        uncataloged_track_plays=stats.uncataloged,
        broken_split_track_ids=cat.broken_split_track_ids,
        tracks_without_splits=cat.tracks_without_splits,
        payees=cat.n_payees,
        payees_without_email=cat.payees_without_email,
        payees_with_valid_details=cat.payment_details.payees_with_valid_details,
        payees_with_invalid_details=cat.payment_details.payees_with_invalid_details,
        payees_without_details=cat.payment_details.payees_without_details,
        invalid_rows=len(INVALID_KINDS),
        outside_partition=OUTSIDE_PARTITION_EVENTS,
        conflicting_duplicate_rows=2 * CONFLICTING_EVENTS,
        exact_duplicates=stats.exact_duplicates,
        unknown_user_events=UNKNOWN_USER_EVENTS,
        expected_clean_plays=stats.rows - anomalies,
        short_play_share=round(stats.short / max(1, stats.nonneg_ms), 4),
        top20_user_play_share=round(top20, 4),
    )

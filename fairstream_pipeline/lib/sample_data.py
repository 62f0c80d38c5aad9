"""Deterministic, realistic, scalable sample data for one month of the FairStream landing zone.

The files follow ``docs/data-contract.md`` exactly (paths, column names, Arrow/Parquet types).
Nothing here imports Dagster. Entry point: :func:`generate_month` (CLI: ``fairstream sample``).

Layout written under ``out_dir`` (the landing-zone root)::

    catalog/tracks.parquet                      track_id, title, artist_name
    catalog/rights_splits.parquet               track_id, payee_id, share_ppm
    catalog/payees.parquet                      payee_id, name, email (nullable)
    subscriptions/month=YYYY-MM/part-00000.parquet   user_id, plan, country, net_cents
    ad_revenue/month=YYYY-MM/part-00000.parquet      country, net_cents
    listening_events/date=YYYY-MM-DD/part-NNNNN.parquet  event_id, user_id, track_id, played_at, ms_played
    listening_events/date=YYYY-MM-DD/_SUCCESS   empty, written last in each day folder

Determinism
-----------
All randomness comes from ``numpy.random.Generator(PCG64)`` seeded through
``numpy.random.SeedSequence(seed, spawn_key=(stream, ...))``:

* user base (country, plan, long-term activity level, place of the favourite niche tracks):
  ``(seed, users)`` only;
* catalog (tracks, payees, splits, durations, popularity): ``(seed, tracks)`` only, so the catalog
  files are byte-identical for every month and two months can share one landing folder;
* per-month facts (churn, silent users, bots, loopers, anomalies, ad rates): ``(seed, year, month)``;
* per-day special rows: ``(seed, year, month, day)``; per-part organic rows: ``(..., day, part)``.

Parquet files are written with pyarrow, zstd level 1, format 2.6, fixed row-group size, through a
hidden temporary file renamed into place, so the same arguments give byte-identical files (with the
same numpy/pyarrow versions). Re-running a month first removes that month's ``_SUCCESS`` markers
and stale ``.parquet`` files, then rewrites them.

Scalability
-----------
Events are produced day by day and part by part: a day of ``n`` main rows is cut into
``ceil(n / 2,000,000)`` consecutive time windows, one part file each (the rows of a part are
sorted by ``played_at``; sorted uniform times are drawn directly as normalised cumulative sums of
exponentials, so no sort of the organic rows is needed). Memory is ``O(users + tracks + 2M rows)``,
never the month. Everything per event is vectorised with numpy / pyarrow.compute.

Rates and distributions (all documented values are module constants below)
---------------------------------------------------------------------------
Users (``u0000001`` ...):

* countries FR 30 %, DE 22 %, ES 14 %, IT 12 %, NL 8 %, SE 6 %, BR 8 %;
* plans free 35 %, premium 38 %, family 12 %, student 10 %, duo 5 %;
* monthly net price in cents, VAT excluded (:data:`NET_PRICE_CENTS`), e.g. FR premium 999,
  family 1499, student 499, duo 1249; BR is about 40 % of the EU price (premium 369); free = 0;
* each month 2 % of the user base is not billed ("churned"): absent from ``subscriptions`` and
  silent, except for the injected ``unknown_user`` events;
* each month 5 % of the billed paying users are silent (no event at all);
* activity: every other billed user gets a stable activity position ``x`` in [0, 1) (drawn once
  from the seed) and a weight ``(x + 0.03) ** -1.5`` (a shifted, bounded Pareto / Lomax-like
  quantile curve: the heaviest user listens ~20x the mean, the lightest ~0.1x); plays are drawn
  from these weights (inverse CDF, no per-user loop), giving the top 20 % of users about 78 % of
  the organic plays, 78-82 % of all rows once the bots are added. Free users stream too.

Catalog:

* ``tracks`` tracks ``t000001`` ... with synthetic titles, a main artist and 20 % featuring a
  second artist (``artist_name`` "A feat. B"); durations (not written) log-normal around 210 s,
  clipped to 95 s .. 360 s;
* payees: artists ``artist-00001`` (tracks // 4; every artist has at least one track, 80 % are
  signed to a label), labels ``label-001`` (between 5 and 40), publishers ``publisher-001``
  (between 3 and 30), writers ``writer-0001`` (tracks // 3); 1 % of payees (at least 1) have a
  null email;
* splits per track (always summing to exactly 1,000,000 ppm, every share > 0):
  label 500000 / main 300000 / writer 200000; with a featured artist
  label 400000 / main 280000 / feat 120000 / writer 100000 / publisher 100000;
  self-released main 700000 / writer 300000, or main 600000 / feat 150000 / writer 250000;
* broken splits on ``max(3, round(0.5 % of tracks))`` tracks, cycling through: shares summing to
  950,000; the main artist listed twice; an extra payee with a zero share;
  and ``max(2, round(0.2 % of tracks))`` tracks have no split rows at all;
* track popularity is Zipf-like with exponent 1.05 over a random popularity ranking.

Taste follows listening intensity (``docs/sample-data.md``; it is what makes user-centric differ from
pro-rata). Each organic play is made by a listener at activity quantile ``x`` (0 = the heaviest
listener, 1 = the lightest, as drawn for the activity weights above) and is a **niche** play with
probability ``p(x) = 0.0 + (0.6 - 0.0) * x`` (``NICHE_SHARE_HEAVIEST`` .. ``NICHE_SHARE_LIGHTEST``):

* a niche play goes to one of the listener's ``FAN_TRACKS`` = 8 favourite niche tracks: 8
  consecutive popularity ranks (so 8 unrelated tracks, the ranking being a random permutation)
  starting at a stable per-user place (``fan_key``, drawn once with the user base) past the top
  ``NICHE_FROM_RANK_SHARE`` = 10 % of the catalogue; the same favourites every month;
* any other play is drawn from the Zipf popularity above (the top catalogue).

So heavy and background listeners play almost only the top catalogue, and a light listener up to
60 % niche favourites, the devoted fans whose subscription user-centric pays to those artists.
Both choices come from the one uniform the play draws for its track (``u < p``: niche, ``u / p``
picks the favourite; else ``(u - p) / (1 - p)`` is the Zipf uniform), so the model adds no draw and
no pass over the rows. Bot, looper and anomaly rows keep the plain Zipf popularity.

Listening events of a month with ``events`` requested rows:

* ``played_at`` uniform within the UTC day of the folder; organic events per day proportional to a
  mild weekday factor (Mon .97, Tue .97, Wed .98, Thu 1.0, Fri 1.04, Sat 1.06, Sun .98);
* 1 % of organic plays are of uncataloged tracks ``tx00001`` ... (``max(5, tracks // 100)``
  of them, uniform), which have no catalog row and no splits;
* ``ms_played``: 25 % of all plays are under 30 s (uniform 500 .. 29,999 ms; the organic rate is
  raised slightly so that bot and looper plays, all >= 30 s, do not dilute it), 0.5 % are exactly
  30,000 ms, the rest are longer: 55 % of them the full track, 45 % uniform between 30,001 ms
  and the track duration (at most 6 minutes);
* bots: ``max(2, users // 2500)`` billed users; each is active on 2-4 days, making 1,500-4,000
  plays on each such day, spread evenly over 200-500 distinct catalog tracks (so at least 1,500
  plays survive a cap of 10 plays per user/track/day), each 30-40 s long;
* loopers: 2 billed users; each loops one catalog track 50-90 times a day on 4-10 days (full
  duration each time): capped, never near 1,000 plays a day, so not flagged;
* exact duplicates: 0.2 % of organic rows (binomial per part) are re-sent identically; the copies
  (plus the conflicting twins below) go into one extra, last part file of the day folder;
* ``event_id`` is ``e<YYYYMMDD>-<9-digit sequence within the day>``, unique within the month
  (copies and conflicting twins repeat the id of their original).

Injected anomalies (exact counts, recorded in :class:`SampleSummary`). Each is a fresh row by an
"ordinary" billed user (not silent, not a bot, not a looper, not churned) on a catalog track, and
is anomalous in exactly one way, so that an ingestion applying the contract's reasons in order
finds exactly these counts:

* ``invalid_rows`` = 6: 2 null ``track_id``, 2 negative ``ms_played``, 1 null ``played_at``,
  1 empty-string ``user_id``;
* ``outside_partition`` = 5: ``played_at`` at 23:59:xx of the previous day but written in the
  next day's folder (never on the first day of the month);
* ``conflicting_duplicate_rows`` = 8: 4 events whose ``event_id`` appears twice with a different
  ``ms_played`` (2 rows each);
* ``unknown_user_events`` = 7: valid events by users not billed this month (churned users, or ids
  past the end of the user base when nobody churned);
* ``exact_duplicates``: the number of extra identical copies (about 0.2 % of organic rows).

``events`` is the number of rows in the main part files when it exceeds the special rows (bots,
loopers, anomalies); organic plays fill the rest. So
``rows_written = max(events, special rows) + exact_duplicates + conflicting twins``.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = [
    "EVENT_SCHEMA",
    "SUBSCRIPTION_SCHEMA",
    "AD_REVENUE_SCHEMA",
    "TRACKS_SCHEMA",
    "RIGHTS_SPLITS_SCHEMA",
    "PAYEES_SCHEMA",
    "SampleSummary",
    "default_events",
    "default_tracks",
    "generate_month",
    "parse_month",
]

# --------------------------------------------------------------------------------------------
# Contract schemas
# --------------------------------------------------------------------------------------------

TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")

EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string()),
        pa.field("user_id", pa.string()),
        pa.field("track_id", pa.string()),
        pa.field("played_at", TIMESTAMP_TYPE),
        pa.field("ms_played", pa.int64()),
    ]
)
SUBSCRIPTION_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string()),
        pa.field("plan", pa.string()),
        pa.field("country", pa.string()),
        pa.field("net_cents", pa.int64()),
    ]
)
AD_REVENUE_SCHEMA = pa.schema([pa.field("country", pa.string()), pa.field("net_cents", pa.int64())])
TRACKS_SCHEMA = pa.schema(
    [
        pa.field("track_id", pa.string()),
        pa.field("title", pa.string()),
        pa.field("artist_name", pa.string()),
    ]
)
RIGHTS_SPLITS_SCHEMA = pa.schema(
    [
        pa.field("track_id", pa.string()),
        pa.field("payee_id", pa.string()),
        pa.field("share_ppm", pa.int64()),
    ]
)
PAYEES_SCHEMA = pa.schema(
    [
        pa.field("payee_id", pa.string()),
        pa.field("name", pa.string()),
        pa.field("email", pa.string(), nullable=True),
    ]
)

# --------------------------------------------------------------------------------------------
# Rates (documented in the module docstring)
# --------------------------------------------------------------------------------------------

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
CHURN_RATE = 0.02
SILENT_PAYING_RATE = 0.05
USER_ACTIVITY_EXPONENT = 1.5
USER_ACTIVITY_OFFSET = 0.03
TRACK_ZIPF_EXPONENT = 1.05
# Taste follows listening intensity ("Taste ..." in the module docstring, docs/sample-data.md).
NICHE_SHARE_HEAVIEST = 0.0  # share of niche plays of the heaviest listener (activity quantile 0)
NICHE_SHARE_LIGHTEST = 0.6  # ... of the lightest listener (quantile 1); linear in between
NICHE_FROM_RANK_SHARE = 0.10  # niche = popularity ranks past the top 10 % of the catalogue
FAN_TRACKS = 8  # a listener's favourite niche tracks: this many consecutive niche ranks
UNCATALOGED_PLAY_RATE = 0.01
SHORT_PLAY_RATE = 0.25
EXACT_30S_RATE = 0.005
FULL_PLAY_RATE = 0.55
EXACT_DUPLICATE_RATE = 0.002
WEEKDAY_FACTORS = (0.97, 0.97, 0.98, 1.00, 1.04, 1.06, 0.98)  # Monday .. Sunday
AD_CENTS_PER_FREE_USER = (30, 60)  # inclusive range, drawn per country and month
FEATURED_RATE = 0.20
SIGNED_ARTIST_RATE = 0.80
NULL_EMAIL_RATE = 0.01
BROKEN_SPLIT_RATE = 0.005
NO_SPLIT_RATE = 0.002

BOT_USERS_PER = 2500  # bots = max(2, users // 2500)
BOT_DAYS = (2, 4)
BOT_PLAYS_PER_DAY = (1500, 4000)
BOT_DISTINCT_TRACKS = (200, 500)
BOT_MS_PLAYED = (30_000, 40_000)
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

MAX_ROWS_PER_PART = 2_000_000
MIN_USERS = 50
MIN_TRACKS = 200
DAY_US = 86_400 * 1_000_000

PARQUET_OPTIONS = dict(
    compression="zstd",
    compression_level=1,
    version="2.6",
    data_page_version="1.0",
    write_statistics=True,
    row_group_size=1_048_576,
)
EVENT_DICTIONARY_COLUMNS = ["user_id", "track_id"]

_FIRST = (
    "Ada Alba Alex Amara Anouk Bruno Camille Chiara Dario Elif Elsa Emil Ezra Farah Felix Greta "
    "Hugo Ines Ivo Jonas Julia Kai Lars Lea Leon Lina Luca Maya Milan Nadia Nils Noa Omar Paula "
    "Rafael Rosa Sami Sofia Tiago Vera Yara Zoe"
).split()
_LAST = (
    "Almeida Bauer Berg Blanc Costa Dahl Duarte Eriksson Fabre Ferrari Fischer Garcia Greco Hansen "
    "Jansen Klein Lambert Lindqvist Lopez Marino Martin Moreau Muller Navarro Nilsson Novak Oliveira "
    "Petit Ramos Ricci Roux Santos Schmidt Silva Smit Torres Vidal Visser Weber Wolf"
).split()
_ADJ = (
    "Amber Blue Broken Bright Silent Golden Electric Velvet Wild Hidden Distant Paper Neon Quiet "
    "Crimson Hollow Endless Lunar Northern Restless Secret Slow Solar Static Sweet Wandering "
    "Young Frozen Burning Gentle Lost Midnight Open Rising Salt Silver Summer Winter Liquid Free"
).split()
_NOUN = (
    "Echo River Light Heart Dream Ocean Signal Garden Mirror Storm Shadow Fire Window Horizon "
    "Letter Machine Island Season Harbor Engine Planet Forest Canyon Meadow Comet Lantern "
    "Station Tide Wave Bridge City Flower Runner Sparrow Voice Thunder Valley Orbit Diamond Road"
).split()
_TITLE_SUFFIX = ("", " (Live)", " (Acoustic)", " (Remix)", " - Radio Edit")
_TITLE_SUFFIX_WEIGHTS = (0.88, 0.03, 0.03, 0.04, 0.02)
_LABEL_SUFFIX = ("Records", "Music", "Recordings", "Sound", "Audio")
_PUBLISHER_SUFFIX = ("Publishing", "Songs", "Editions", "Music Publishing")

# kinds of event rows
_ORGANIC, _BOT, _LOOPER, _INVALID, _OUTSIDE, _CONFLICT, _UNKNOWN = range(7)

_STREAM_USERS, _STREAM_CATALOG, _STREAM_MONTH, _STREAM_DAY, _STREAM_PART = range(1, 6)

_MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


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
    uncataloged_track_plays: int  # distinct events (all clean) of tracks absent from the catalog
    broken_split_track_ids: tuple[str, ...]  # tracks with split rows that are invalid
    tracks_without_splits: tuple[str, ...]  # catalog tracks with no split row
    payees: int
    payees_without_email: int
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


def parse_month(month: str) -> tuple[int, int]:
    """``"2026-10"`` -> ``(2026, 10)``; raises ``ValueError`` for anything else."""
    m = _MONTH_RE.match(month)
    if not m:
        raise ValueError(f"month must look like YYYY-MM (e.g. 2026-10), got {month!r}")
    year = int(m.group(1))
    if year < 1970:
        raise ValueError(f"month must be 1970-01 or later, got {month!r}")
    return year, int(m.group(2))


def default_events(users: int) -> int:
    return users * 60


def default_tracks(users: int) -> int:
    return max(200, users // 2)


def generate_month(
    out_dir: Path,
    month: str,
    *,
    users: int,
    seed: int,
    events: int | None = None,
    tracks: int | None = None,
) -> SampleSummary:
    """Write the catalog, the month's subscriptions and ad revenue, and every day of events.

    ``events`` defaults to ``users * 60`` and ``tracks`` to ``max(200, users // 2)``.
    Raises ``ValueError`` on invalid arguments.
    """
    year, mon = parse_month(month)
    if events is None:
        events = default_events(users)
    if tracks is None:
        tracks = default_tracks(users)
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
    users, events, tracks, seed = int(users), int(events), int(tracks), int(seed)

    out_dir = Path(out_dir)
    base = _UserBase.build(seed, users)
    cat = _Catalog.build(seed, tracks)
    plan = _MonthPlan.build(seed, year, mon, base, cat, events)

    # Remove the month's markers first (the month becomes incomplete), then stale data files.
    day_dirs = [
        out_dir / "listening_events" / f"date={d.isoformat()}" for d in plan.dates
    ]
    for folder in day_dirs:
        marker = folder / "_SUCCESS"
        if marker.exists():
            marker.unlink()
    for folder in day_dirs + [
        out_dir / "subscriptions" / f"month={month}",
        out_dir / "ad_revenue" / f"month={month}",
    ]:
        _clear_data_files(folder)

    cat.write(out_dir)
    _write_parquet(plan.subscriptions_table(base), out_dir / "subscriptions" / f"month={month}" / "part-00000.parquet")
    _write_parquet(plan.ad_revenue_table(base), out_dir / "ad_revenue" / f"month={month}" / "part-00000.parquet")

    stats = _EventStats(n_user_ids=len(plan.user_ids))
    for day_index, folder in enumerate(day_dirs):
        _write_day(folder, day_index, seed, year, mon, plan, cat, stats)

    # sanity: realised anomaly counts equal the plan
    assert stats.kind_rows[_INVALID] == len(INVALID_KINDS)
    assert stats.kind_rows[_OUTSIDE] == OUTSIDE_PARTITION_EVENTS
    assert stats.kind_rows[_CONFLICT] == CONFLICTING_EVENTS * 2
    assert stats.kind_rows[_UNKNOWN] == UNKNOWN_USER_EVENTS

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
        bot_plays=stats.kind_rows[_BOT],
        looper_user_ids=tuple(plan.user_ids.take(pa.array(plan.loopers)).to_pylist()),
        uncataloged_track_plays=stats.uncataloged,
        broken_split_track_ids=cat.broken_split_track_ids,
        tracks_without_splits=cat.tracks_without_splits,
        payees=cat.n_payees,
        payees_without_email=cat.payees_without_email,
        invalid_rows=len(INVALID_KINDS),
        outside_partition=OUTSIDE_PARTITION_EVENTS,
        conflicting_duplicate_rows=2 * CONFLICTING_EVENTS,
        exact_duplicates=stats.exact_duplicates,
        unknown_user_events=UNKNOWN_USER_EVENTS,
        expected_clean_plays=stats.rows - anomalies,
        short_play_share=round(stats.short / max(1, stats.nonneg_ms), 4),
        top20_user_play_share=round(top20, 4),
    )


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def _ids(prefix: str, start: int, count: int, width: int) -> pa.Array:
    """``prefix`` + zero-padded ``start .. start+count-1``, built with pyarrow.compute."""
    numbers = pc.cast(pa.array(np.arange(start, start + count, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(prefix, pc.ascii_lpad(numbers, width, "0"), "")


def _words(words: list[str] | tuple[str, ...], idx: np.ndarray) -> pa.Array:
    return pa.array(words, pa.string()).take(pa.array(idx))


def _join(*parts) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _write_parquet(table: pa.Table, path: Path, **extra) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, **PARQUET_OPTIONS, **extra)
    os.replace(tmp, path)


def _clear_data_files(folder: Path) -> None:
    if not folder.is_dir():
        return
    for p in sorted(folder.iterdir()):
        if p.is_file() and (
            p.name.endswith(".parquet") or p.name.endswith(".parquet.tmp") or p.name == "_SUCCESS"
        ):
            p.unlink()


def _zipf_rank(u: np.ndarray, n: int, s: float) -> np.ndarray:
    """Inverse CDF of a bounded continuous power law on [1, n+1), floored: ranks 0 .. n-1."""
    c = 1.0 - s
    r = (1.0 - u * (1.0 - (n + 1.0) ** c)) ** (1.0 / c)
    return np.minimum(r.astype(np.int64) - 1, n - 1).clip(0)


def _activity_quantile(u: np.ndarray) -> np.ndarray:
    """Inverse CDF of the weight ``(x + OFFSET) ** -EXPONENT`` on [0, 1): the activity quantile
    ``x`` of the user making a play (0 = the heaviest listener)."""
    c = 1.0 - USER_ACTIVITY_EXPONENT
    x0 = USER_ACTIVITY_OFFSET
    a, b = x0**c, (1.0 + x0) ** c
    return (a - u * (a - b)) ** (1.0 / c) - x0


def _quantile_position(x: np.ndarray, n: int) -> np.ndarray:
    """An activity quantile scaled to the activity ranks 0 .. n-1."""
    return np.minimum((x * n).astype(np.int64), n - 1).clip(0)


def _largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    raw = total * weights / weights.sum()
    out = np.floor(raw).astype(np.int64)
    short = total - int(out.sum())
    if short:
        order = np.argsort(-(raw - out), kind="stable")
        out[order[:short]] += 1
    return out


# --------------------------------------------------------------------------------------------
# User base
# --------------------------------------------------------------------------------------------


@dataclass
class _UserBase:
    n: int
    country_idx: np.ndarray
    plan_idx: np.ndarray
    activity_key: np.ndarray
    fan_key: np.ndarray  # in [0, 1): where the user's favourite niche tracks are

    @classmethod
    def build(cls, seed: int, n: int) -> "_UserBase":
        rng = _rng(seed, _STREAM_USERS)
        country = rng.choice(len(COUNTRIES), size=n, p=np.array(COUNTRY_WEIGHTS)).astype(np.int8)
        plan = rng.choice(len(PLANS), size=n, p=np.array(PLAN_WEIGHTS)).astype(np.int8)
        key = rng.random(n)
        fan_key = rng.random(n)
        return cls(n, country, plan, key, fan_key)


# --------------------------------------------------------------------------------------------
# Catalog
# --------------------------------------------------------------------------------------------


@dataclass
class _Catalog:
    n_tracks: int
    n_uncataloged: int
    track_ids: pa.Array  # catalog ids, then uncataloged ids
    durations_ms: np.ndarray  # same indexing as track_ids
    rank_to_track: np.ndarray  # popularity rank -> catalog track index
    tracks: pa.Table
    splits: pa.Table
    payees: pa.Table
    n_payees: int
    payees_without_email: int
    broken_split_track_ids: tuple[str, ...]
    tracks_without_splits: tuple[str, ...]

    def write(self, out_dir: Path) -> None:
        _write_parquet(self.tracks, out_dir / "catalog" / "tracks.parquet")
        _write_parquet(self.splits, out_dir / "catalog" / "rights_splits.parquet")
        _write_parquet(self.payees, out_dir / "catalog" / "payees.parquet")

    @classmethod
    def build(cls, seed: int, n_tracks: int) -> "_Catalog":
        rng = _rng(seed, _STREAM_CATALOG)
        T = n_tracks
        A = max(2, T // 4)
        L = min(40, max(5, T // 2000))
        PB = min(30, max(3, T // 5000))
        W = max(5, T // 3)
        X = max(5, T // 100)

        # ---- payees (sorted by payee_id: artist-, label-, publisher-, writer-)
        artist_ids = _ids("artist-", 1, A, max(5, len(str(A))))
        label_ids = _ids("label-", 1, L, 3)
        publisher_ids = _ids("publisher-", 1, PB, 3)
        writer_ids = _ids("writer-", 1, W, max(4, len(str(W))))
        is_band = rng.random(A) < 0.35
        person = _join(
            _words(_FIRST, rng.integers(0, len(_FIRST), A)),
            " ",
            _words(_LAST, rng.integers(0, len(_LAST), A)),
        )
        band = _join(
            "The ",
            _words(_ADJ, rng.integers(0, len(_ADJ), A)),
            " ",
            _words(_NOUN, rng.integers(0, len(_NOUN), A)),
            "s",
        )
        artist_names = pc.if_else(pa.array(is_band), band, person)
        label_names = _join(
            _words(_NOUN, rng.integers(0, len(_NOUN), L)),
            " ",
            _words(_LABEL_SUFFIX, rng.integers(0, len(_LABEL_SUFFIX), L)),
        )
        publisher_names = _join(
            _words(_LAST, rng.integers(0, len(_LAST), PB)),
            " ",
            _words(_PUBLISHER_SUFFIX, rng.integers(0, len(_PUBLISHER_SUFFIX), PB)),
        )
        writer_names = _join(
            _words(_FIRST, rng.integers(0, len(_FIRST), W)),
            " ",
            _words(_LAST, rng.integers(0, len(_LAST), W)),
        )
        payee_ids = pa.concat_arrays([artist_ids, label_ids, publisher_ids, writer_ids])
        payee_names = pa.concat_arrays([artist_names, label_names, publisher_names, writer_names])
        n_payees = len(payee_ids)
        n_no_email = max(1, round(NULL_EMAIL_RATE * n_payees))
        no_email = np.zeros(n_payees, dtype=bool)
        no_email[rng.choice(n_payees, n_no_email, replace=False)] = True
        emails = _join(payee_ids, "@payees.fairstream.example")
        emails = pc.if_else(pa.array(no_email), pa.scalar(None, pa.string()), emails)
        payees = pa.table([payee_ids, payee_names, emails], schema=PAYEES_SCHEMA)
        base_label, base_pub, base_writer = A, A + L, A + L + PB

        # ---- tracks
        artist_of_track = np.empty(T, dtype=np.int64)
        artist_of_track[:A] = rng.permutation(A)  # every artist has a track
        artist_of_track[A:] = (A * rng.random(T - A) ** 2).astype(np.int64)  # prolific few
        has_feat = rng.random(T) < FEATURED_RATE
        feat = (artist_of_track + 1 + rng.integers(0, A - 1, T)) % A
        signed = rng.random(A) < SIGNED_ARTIST_RATE
        label_of_artist = np.where(signed, (L * rng.random(A) ** 2).astype(np.int64), -1)
        label = label_of_artist[artist_of_track]
        writer = (W * rng.random(T) ** 1.5).astype(np.int64)
        publisher = rng.integers(0, PB, T)
        title = _join(
            _words(_ADJ, rng.integers(0, len(_ADJ), T)),
            " ",
            _words(_NOUN, rng.integers(0, len(_NOUN), T)),
            _words(_TITLE_SUFFIX, rng.choice(len(_TITLE_SUFFIX), T, p=np.array(_TITLE_SUFFIX_WEIGHTS))),
        )
        main_name = artist_names.take(pa.array(artist_of_track))
        feat_name = artist_names.take(pa.array(feat))
        artist_name = pc.if_else(pa.array(has_feat), _join(main_name, " feat. ", feat_name), main_name)
        track_ids = _ids("t", 1, T, max(6, len(str(T))))
        tracks = pa.table([track_ids, title, artist_name], schema=TRACKS_SCHEMA)

        # ---- splits: a (T, 6) matrix of payee index / share, columns
        # label, main, feat, writer, publisher, extra (only for the zero-share breakage)
        payee = np.full((T, 6), -1, dtype=np.int64)
        share = np.zeros((T, 6), dtype=np.int64)
        has_label = label >= 0
        payee[:, 1] = artist_of_track
        payee[:, 3] = base_writer + writer
        lab_feat = has_label & has_feat
        lab_only = has_label & ~has_feat
        indie_feat = ~has_label & has_feat
        indie_only = ~has_label & ~has_feat
        payee[has_label, 0] = base_label + label[has_label]
        payee[has_feat, 2] = feat[has_feat]
        payee[lab_feat, 4] = base_pub + publisher[lab_feat]
        for mask, shares in (
            (lab_only, (500_000, 300_000, 0, 200_000, 0)),
            (lab_feat, (400_000, 280_000, 120_000, 100_000, 100_000)),
            (indie_only, (0, 700_000, 0, 300_000, 0)),
            (indie_feat, (0, 600_000, 150_000, 250_000, 0)),
        ):
            share[mask, :5] = shares
        n_broken = max(3, round(BROKEN_SPLIT_RATE * T))
        n_nosplit = max(2, round(NO_SPLIT_RATE * T))
        special = rng.choice(T, n_broken + n_nosplit, replace=False)
        broken, nosplit = np.sort(special[:n_broken]), np.sort(special[n_broken:])
        for i, t in enumerate(broken):
            kind = i % 3
            if kind == 0:  # shares sum to 950,000
                share[t, 3] -= 50_000
            elif kind == 1:  # main artist listed twice (writer slot)
                payee[t, 3] = payee[t, 1]
            else:  # an extra writer with a zero share
                payee[t, 5] = base_writer + (writer[t] + 1) % W
        present = payee >= 0
        present[nosplit, :] = False
        rows_track = np.broadcast_to(np.arange(T)[:, None], (T, 6))[present]
        splits = pa.table(
            [
                track_ids.take(pa.array(rows_track)),
                payee_ids.take(pa.array(payee[present])),
                pa.array(share[present], pa.int64()),
            ],
            schema=RIGHTS_SPLITS_SCHEMA,
        )

        # ---- uncataloged ids, durations, popularity
        all_track_ids = pa.concat_arrays([track_ids, _ids("tx", 1, X, 5), pa.array([""])])
        dur_s = np.clip(rng.lognormal(math.log(210.0), 0.25, T + X), 95.0, 360.0)
        durations = np.append((dur_s * 1000).astype(np.int64), 0)
        rank_to_track = rng.permutation(T)
        return cls(
            n_tracks=T,
            n_uncataloged=X,
            track_ids=all_track_ids,
            durations_ms=durations,
            rank_to_track=rank_to_track,
            tracks=tracks,
            splits=splits,
            payees=payees,
            n_payees=n_payees,
            payees_without_email=n_no_email,
            broken_split_track_ids=tuple(track_ids.take(pa.array(broken)).to_pylist()),
            tracks_without_splits=tuple(track_ids.take(pa.array(nosplit)).to_pylist()),
        )

    @property
    def empty_index(self) -> int:
        return self.n_tracks + self.n_uncataloged

    def sample_catalog_tracks(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.rank_to_track[_zipf_rank(rng.random(n), self.n_tracks, TRACK_ZIPF_EXPONENT)]

    @property
    def niche_first_rank(self) -> int:
        return min(self.n_tracks - FAN_TRACKS, int(NICHE_FROM_RANK_SHARE * self.n_tracks))

    def fan_first_rank(self, fan_key: np.ndarray) -> np.ndarray:
        """The first of a fan's ``FAN_TRACKS`` favourite niche ranks."""
        first = self.niche_first_rank
        span = self.n_tracks - FAN_TRACKS - first + 1
        return first + np.minimum((fan_key * span).astype(np.int64), span - 1)

    def sample_tracks_by_taste(
        self, u: np.ndarray, x: np.ndarray, user: np.ndarray, fan_first_rank: np.ndarray
    ) -> np.ndarray:
        """Catalog tracks of plays by ``user`` at activity quantiles ``x``, from uniforms ``u``;
        ``fan_first_rank[user]`` is the first of the user's favourite niche ranks.

        A play is niche with probability ``p(x)`` (linear from NICHE_SHARE_HEAVIEST to
        NICHE_SHARE_LIGHTEST): ``u < p`` picks one of the listener's FAN_TRACKS favourite ranks
        with the uniform ``u / p``; otherwise ``(u - p) / (1 - p)`` is uniform and picks a Zipf rank."""
        p = x * (NICHE_SHARE_LIGHTEST - NICHE_SHARE_HEAVIEST)
        p += NICHE_SHARE_HEAVIEST
        fans = np.flatnonzero(u < p)
        fan_u = u[fans] / p[fans]  # p > u >= 0 there
        v = u - p
        np.subtract(1.0, p, out=p)
        v /= p
        np.maximum(v, 0.0, out=v)  # the niche rows' v is negative; their Zipf rank is replaced
        rank = _zipf_rank(v, self.n_tracks, TRACK_ZIPF_EXPONENT)
        rank[fans] = fan_first_rank[user[fans]] + np.minimum((fan_u * FAN_TRACKS).astype(np.int64), FAN_TRACKS - 1)
        return self.rank_to_track[rank]


# --------------------------------------------------------------------------------------------
# Month plan
# --------------------------------------------------------------------------------------------


@dataclass
class _MonthPlan:
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
    def build(cls, seed, year, month, base: _UserBase, cat: _Catalog, events: int) -> "_MonthPlan":
        rng = _rng(seed, _STREAM_MONTH, year, month)
        n_days = calendar.monthrange(year, month)[1]
        dates = [dt.date(year, month, d) for d in range(1, n_days + 1)]
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
        user_ids = pa.concat_arrays([_ids("u", 1, N + n_extra, width), pa.array([""])])

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

    def subscriptions_table(self, base: _UserBase) -> pa.Table:
        idx = np.flatnonzero(self.billed)
        prices = np.array([NET_PRICE_CENTS[c] for c in COUNTRIES], dtype=np.int64)
        return pa.table(
            [
                self.user_ids.take(pa.array(idx)),
                _words(PLANS, base.plan_idx[idx]),
                _words(COUNTRIES, base.country_idx[idx]),
                pa.array(prices[base.country_idx[idx], base.plan_idx[idx]], pa.int64()),
            ],
            schema=SUBSCRIPTION_SCHEMA,
        )

    def ad_revenue_table(self, base: _UserBase) -> pa.Table:
        free = self.billed & (base.plan_idx == 0)
        per_country = np.bincount(base.country_idx[free], minlength=len(COUNTRIES))
        order = [i for i in np.argsort(np.array(COUNTRIES)) if per_country[i] > 0]
        return pa.table(
            [
                pa.array([COUNTRIES[i] for i in order], pa.string()),
                pa.array([int(per_country[i] * self.ad_cents_per_free_user[i]) for i in order], pa.int64()),
            ],
            schema=AD_REVENUE_SCHEMA,
        )


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


@dataclass
class _Rows:
    """Column arrays of event rows before they become strings. Index -1 means null."""

    user: np.ndarray
    track: np.ndarray
    t: np.ndarray  # microseconds since the epoch
    ms: np.ndarray
    kind: np.ndarray  # int8, one of _ORGANIC ..
    t_null: np.ndarray  # bool
    twin_ms: np.ndarray  # ms_played of the conflicting twin (only for _CONFLICT rows)

    @classmethod
    def empty(cls) -> "_Rows":
        i = np.empty(0, np.int64)
        return cls(i, i, i, i, np.empty(0, np.int8), np.empty(0, bool), i)

    @classmethod
    def make(cls, user, track, t, ms, kind, t_null=None, twin_ms=None) -> "_Rows":
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
    def concat(cls, parts: list["_Rows"]) -> "_Rows":
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))

    def take(self, idx: np.ndarray) -> "_Rows":
        return _Rows(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))

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


def _day_specials(rng, day_index, day_start, plan: _MonthPlan, cat: _Catalog) -> _Rows:
    parts: list[_Rows] = []
    for user, plays, distinct in plan.bot_sessions[day_index]:
        chosen = rng.choice(cat.n_tracks, distinct, replace=False)
        track = chosen[np.arange(plays) % distinct]  # even spread: min(plays, 10 * distinct) survive the cap
        t = day_start + rng.integers(0, DAY_US, plays)
        ms = rng.integers(BOT_MS_PLAYED[0], BOT_MS_PLAYED[1] + 1, plays)
        parts.append(_Rows.make(np.full(plays, user), track, t, ms, _BOT))
    for user, track, plays in plan.looper_sessions[day_index]:
        start = day_start + int(rng.integers(0, DAY_US - 4 * 3_600_000_000))
        t = start + rng.integers(0, 4 * 3_600_000_000, plays)
        parts.append(
            _Rows.make(np.full(plays, user), np.full(plays, track), t, np.full(plays, cat.durations_ms[track]), _LOOPER)
        )

    def ordinary_rows(n: int, kind: int, users: np.ndarray | None = None) -> _Rows:
        u = rng.choice(plan.ordinary, n) if users is None else users
        track = cat.sample_catalog_tracks(rng, n)
        t = day_start + rng.integers(0, DAY_US, n)
        return _Rows.make(u, track, t, _valid_long_ms(rng, cat.durations_ms[track]), kind)

    invalid = plan.invalid_by_day[day_index]
    if invalid:
        rows = ordinary_rows(len(invalid), _INVALID)
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
        rows = ordinary_rows(n_out, _OUTSIDE)
        rows.t[:] = day_start - rng.integers(1, 60_000_001, n_out)  # 23:59:xx the day before
        parts.append(rows)
    n_conf = int(plan.conflict_by_day[day_index])
    if n_conf:
        rows = ordinary_rows(n_conf, _CONFLICT)
        rows.twin_ms[:] = rows.ms + rng.integers(1_000, 60_001, n_conf)
        parts.append(rows)
    unknown = plan.unknown_by_day[day_index]
    if len(unknown):
        parts.append(ordinary_rows(len(unknown), _UNKNOWN, users=unknown))
    specials = _Rows.concat(parts)
    return specials.take(np.argsort(specials.t, kind="stable"))


def _organic_rows(rng, n: int, t_lo: int, t_hi: int, plan: _MonthPlan, cat: _Catalog) -> _Rows:
    """``n`` organic plays with ``played_at`` sorted and uniform in [t_lo, t_hi)."""
    x = _activity_quantile(rng.random(n))
    user = plan.active_by_rank[_quantile_position(x, len(plan.active_by_rank))]
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
    return _Rows.make(user, track, t, ms, _ORGANIC)


def _merge_sorted(organic: _Rows, specials: _Rows) -> tuple[_Rows, np.ndarray]:
    """Merge two time-sorted row sets; returns the rows and the positions of the organic rows."""
    n = len(organic) + len(specials)
    spec_pos = np.searchsorted(organic.t, specials.t, side="right") + np.arange(len(specials))
    is_spec = np.zeros(n, bool)
    is_spec[spec_pos] = True
    org_pos = np.flatnonzero(~is_spec)
    merged = {}
    for f in _Rows.__dataclass_fields__:
        a, b = getattr(organic, f), getattr(specials, f)
        out = np.empty(n, a.dtype)
        out[org_pos] = a
        out[spec_pos] = b
        merged[f] = out
    return _Rows(**merged), org_pos


def _event_table(rows: _Rows, first_seq: int, prefix: str, plan: _MonthPlan, cat: _Catalog) -> pa.Table:
    n = len(rows)
    seq = pc.cast(pa.array(np.arange(first_seq, first_seq + n, dtype=np.int64)), pa.string())
    event_id = pc.binary_join_element_wise(prefix, pc.ascii_lpad(seq, 9, "0"), "")
    user = plan.user_ids.take(pa.array(rows.user, mask=rows.user < 0))
    track = cat.track_ids.take(pa.array(rows.track, mask=rows.track < 0))
    played_at = pa.array(rows.t, TIMESTAMP_TYPE, mask=rows.t_null if rows.t_null.any() else None)
    ms = pa.array(rows.ms, pa.int64())
    return pa.table([event_id, user, track, played_at, ms], schema=EVENT_SCHEMA)


@dataclass
class _EventStats:
    n_user_ids: int
    rows: int = 0
    files: int = 0
    exact_duplicates: int = 0
    uncataloged: int = 0
    short: int = 0
    nonneg_ms: int = 0

    def __post_init__(self):
        self.user_rows = np.zeros(self.n_user_ids, np.int64)
        self.kind_rows = [0] * 7
        self.day_rows: list[int] = []

    def add(self, rows: _Rows) -> None:
        self.rows += len(rows)
        valid_user = rows.user[rows.user >= 0]
        self.user_rows += np.bincount(valid_user, minlength=self.n_user_ids)[: self.n_user_ids]
        nonneg = rows.ms >= 0
        self.nonneg_ms += int(nonneg.sum())
        self.short += int((nonneg & (rows.ms < 30_000)).sum())


def _write_day(folder: Path, day_index: int, seed, year, month, plan: _MonthPlan, cat: _Catalog, stats: _EventStats) -> None:
    date = plan.dates[day_index]
    day_start = int(dt.datetime(date.year, date.month, date.day, tzinfo=dt.timezone.utc).timestamp()) * 1_000_000
    prefix = f"e{date:%Y%m%d}-"
    drng = _rng(seed, _STREAM_DAY, year, month, date.day)
    specials = _day_specials(drng, day_index, day_start, plan, cat)
    n_org = int(plan.organic_by_day[day_index])
    n_parts = max(1, math.ceil((n_org + len(specials)) / MAX_ROWS_PER_PART))
    bounds = [day_start + (k * DAY_US) // n_parts for k in range(n_parts + 1)]
    spec_part = np.clip((specials.t - day_start) * n_parts // DAY_US, 0, n_parts - 1)
    folder.mkdir(parents=True, exist_ok=True)
    resend: list[pa.Table] = []
    seq = 1
    day_rows = 0
    for k in range(n_parts):
        prng = _rng(seed, _STREAM_PART, year, month, date.day, k)
        n_k = n_org * (k + 1) // n_parts - n_org * k // n_parts
        organic = _organic_rows(prng, n_k, bounds[k], bounds[k + 1], plan, cat)
        rows, org_pos = _merge_sorted(organic, specials.take(np.flatnonzero(spec_part == k)))
        table = _event_table(rows, seq, prefix, plan, cat)
        seq += len(rows)
        _write_parquet(table, folder / f"part-{k:05d}.parquet", use_dictionary=EVENT_DICTIONARY_COLUMNS)
        stats.files += 1
        stats.add(rows)
        day_rows += len(rows)
        stats.uncataloged += int(((organic.track >= cat.n_tracks) & (organic.track < cat.empty_index)).sum())
        for kind, count in enumerate(np.bincount(rows.kind, minlength=7)):
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
        conf = np.flatnonzero(rows.kind == _CONFLICT)
        if len(conf):
            twins = rows.take(conf)
            twins.ms = twins.twin_ms
            twin_table = table.take(pa.array(conf)).set_column(
                4, "ms_played", pa.array(twins.ms, pa.int64())
            )
            resend.append(twin_table)
            stats.add(twins)
            stats.kind_rows[_CONFLICT] += len(conf)  # the twins; their originals are counted above
            day_rows += len(conf)
    if resend:
        extra = pa.concat_tables(resend)
        extra = extra.take(pc.sort_indices(extra, [("played_at", "ascending"), ("event_id", "ascending")]))
        _write_parquet(extra, folder / f"part-{n_parts:05d}.parquet", use_dictionary=EVENT_DICTIONARY_COLUMNS)
        stats.files += 1
    stats.day_rows.append(day_rows)
    (folder / "_SUCCESS").write_bytes(b"")

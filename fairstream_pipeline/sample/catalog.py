"""The catalog: tracks, payees and rights splits (some broken on purpose), the payees' payment
details (``payment_details.py``), durations and popularity, and (ACPS v1) each track's
``artist_id`` and ``content_type``: a few noise acts whose tracks are noise (white noise, rain)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fairstream_pipeline.lib.ingestion.landing_zone import (
    LANDING_PAYEES,
    LANDING_RIGHTS_SPLITS,
    LANDING_TRACKS,
)
from fairstream_pipeline.sample import draws
from fairstream_pipeline.sample.payment_details import PaymentDetails
from fairstream_pipeline.sample.vocabulary import (
    ADJECTIVES,
    FIRST_NAMES,
    LABEL_SUFFIXES,
    LAST_NAMES,
    NOISE_ACT_FIRST,
    NOISE_ACT_LAST,
    NOISE_SOUNDS,
    NOISE_SUFFIXES,
    NOUNS,
    PUBLISHER_SUFFIXES,
    TITLE_SUFFIXES,
    TITLE_SUFFIX_WEIGHTS,
)

TRACK_ZIPF_EXPONENT = 1.05
# Taste follows listening intensity (docs/sample-data.md, "Taste follows intensity").
NICHE_SHARE_HEAVIEST = 0.0  # share of niche plays of the heaviest listener (activity quantile 0)
NICHE_SHARE_LIGHTEST = 0.6  # ... of the lightest listener (quantile 1); linear in between
NICHE_FROM_RANK_SHARE = 0.10  # niche = popularity ranks past the top 10 % of the catalogue
FAN_TRACKS = 8  # a listener's favourite niche tracks: this many consecutive niche ranks

FEATURED_RATE = 0.20
SIGNED_ARTIST_RATE = 0.80
NULL_EMAIL_RATE = 0.01
BROKEN_SPLIT_RATE = 0.005
NO_SPLIT_RATE = 0.002
# ACPS v1 (docs/sample-data.md, "Play sources, artists and noise"); drawn from STREAM_CONTENT only.
NOISE_TRACK_RATE = 0.01  # noise tracks: max(MIN_NOISE_TRACKS, round(1 % of tracks))
MIN_NOISE_TRACKS = 8
TRACKS_PER_NOISE_ACT = 4  # noise acts: max(2, noise tracks // 4), from the less prolific half of the artists
NOISE_DURATION_MS = (95_000, 150_000)  # short loops, made for streaming (inclusive range)
NULL_ARTIST_ID_RATE = 0.002  # music tracks without artist_id: max(3, round(0.2 % of tracks))
MIN_NULL_ARTIST_ID = 3
ARTIST_ID_PREFIX = "A"  # artist_id A000001 .. is the artist of payee artist-00001 ..
MUSIC, NOISE = "music", "noise"


def zipf_rank(u: np.ndarray, n: int, s: float) -> np.ndarray:
    """Inverse CDF of a bounded continuous power law on [1, n+1), floored: ranks 0 .. n-1."""
    c = 1.0 - s
    r = (1.0 - u * (1.0 - (n + 1.0) ** c)) ** (1.0 / c)
    return np.minimum(r.astype(np.int64) - 1, n - 1).clip(0)


def _replaced(values: pa.Array, positions: np.ndarray, new: pa.Array) -> pa.Array:
    """``values`` with ``values[positions[i]]`` replaced by ``new[i]``."""
    index = np.arange(len(values), dtype=np.int64)
    index[positions] = len(values) + np.arange(len(positions))
    return pa.concat_arrays([values, new]).take(pa.array(index))


@dataclass(frozen=True)
class _Sizes:
    """How many tracks (T), artists (A), labels (L), publishers (PB) and writers (W) a catalog has,
    and how many ids of tracks missing from it its plays use (X)."""

    T: int
    A: int
    L: int
    PB: int
    W: int
    X: int

    @classmethod
    def of(cls, T: int) -> _Sizes:
        return cls(T, max(2, T // 4), min(40, max(5, T // 2000)), min(30, max(3, T // 5000)), max(5, T // 3), max(5, T // 100))


@dataclass(frozen=True)
class _NoiseActs:
    """The noise tracks wanted (``n_tracks``) and the noise acts: their artist indices, ascending,
    and a flag per artist."""

    n_tracks: int
    acts: np.ndarray
    is_act: np.ndarray

    @classmethod
    def draw(cls, crng: np.random.Generator, size: _Sizes) -> _NoiseActs:
        n_noise = max(MIN_NOISE_TRACKS, round(NOISE_TRACK_RATE * size.T))
        n_acts = max(2, n_noise // TRACKS_PER_NOISE_ACT)
        noise_acts = np.sort(crng.choice(np.arange(size.A // 2, size.A), n_acts, replace=False))
        is_act = np.zeros(size.A, dtype=bool)
        is_act[noise_acts] = True
        return cls(n_noise, noise_acts, is_act)


@dataclass(frozen=True)
class _Payees:
    """The payees, sorted by payee_id: artist-, label-, publisher-, writer- (the artists are the first A)."""

    ids: pa.Array
    names: pa.Array
    table: pa.Table
    without_email: int


def _draw_payees(rng: np.random.Generator, crng: np.random.Generator, size: _Sizes, noise: _NoiseActs) -> _Payees:
    """The payees, their names drawn from ``rng`` but the noise acts' names, from ``crng``."""
    A, L, PB, W = size.A, size.L, size.PB, size.W
    artist_ids = draws.ids("artist-", 1, A, max(5, len(str(A))))
    label_ids = draws.ids("label-", 1, L, 3)
    publisher_ids = draws.ids("publisher-", 1, PB, 3)
    writer_ids = draws.ids("writer-", 1, W, max(4, len(str(W))))
    is_band = rng.random(A) < 0.35
    person = draws.join(draws.pick(rng, FIRST_NAMES, A), " ", draws.pick(rng, LAST_NAMES, A))
    band = draws.join("The ", draws.pick(rng, ADJECTIVES, A), " ", draws.pick(rng, NOUNS, A), "s")
    artist_names = pc.if_else(pa.array(is_band), band, person)
    n_acts = len(noise.acts)
    act_names = draws.join(draws.pick(crng, NOISE_ACT_FIRST, n_acts), " ", draws.pick(crng, NOISE_ACT_LAST, n_acts))
    artist_names = _replaced(artist_names, noise.acts, act_names)  # the noise acts' names
    label_names = draws.join(draws.pick(rng, NOUNS, L), " ", draws.pick(rng, LABEL_SUFFIXES, L))
    publisher_names = draws.join(draws.pick(rng, LAST_NAMES, PB), " ", draws.pick(rng, PUBLISHER_SUFFIXES, PB))
    writer_names = draws.join(draws.pick(rng, FIRST_NAMES, W), " ", draws.pick(rng, LAST_NAMES, W))
    payee_ids = pa.concat_arrays([artist_ids, label_ids, publisher_ids, writer_ids])
    payee_names = pa.concat_arrays([artist_names, label_names, publisher_names, writer_names])
    n_payees = len(payee_ids)
    n_no_email = max(1, round(NULL_EMAIL_RATE * n_payees))
    no_email = np.zeros(n_payees, dtype=bool)
    no_email[rng.choice(n_payees, n_no_email, replace=False)] = True
    emails = draws.join(payee_ids, "@payees.fairstream.example")
    emails = pc.if_else(pa.array(no_email), pa.scalar(None, pa.string()), emails)
    payees = pa.table([payee_ids, payee_names, emails], schema=LANDING_PAYEES.arrow_schema)
    return _Payees(payee_ids, payee_names, payees, n_no_email)


@dataclass(frozen=True)
class _Tracks:
    """The tracks' table and, per track, what its splits and plays need."""

    ids: pa.Array
    table: pa.Table
    is_noise: np.ndarray
    noise: np.ndarray  # indices of the noise tracks, ascending
    without_artist_id: np.ndarray  # indices of the music tracks whose artist_id is null, ascending
    artist: np.ndarray  # the main artist's index
    has_feat: np.ndarray
    feat: np.ndarray  # the featured artist's index (where has_feat)
    label: np.ndarray  # the main artist's label's index, -1: unsigned
    writer: np.ndarray
    publisher: np.ndarray


def _draw_tracks(
    rng: np.random.Generator, crng: np.random.Generator, size: _Sizes, noise: _NoiseActs, artist_names: pa.Array
) -> _Tracks:
    """The tracks and their artists; which are noise (every track of a noise act, and more, never an
    artist's first track) and which lack an artist_id come from ``crng``."""
    T, A, L, W, PB = size.T, size.A, size.L, size.W, size.PB
    artist_of_track = np.empty(T, dtype=np.int64)
    artist_of_track[:A] = rng.permutation(A)  # every artist has a track
    artist_of_track[A:] = (A * rng.random(T - A) ** 2).astype(np.int64)  # prolific few
    is_noise = noise.is_act[artist_of_track]
    n_more = noise.n_tracks - int(is_noise.sum())
    if n_more > 0:
        more = crng.choice(np.flatnonzero(~is_noise[A:]) + A, n_more, replace=False)
        artist_of_track[more] = noise.acts[crng.integers(0, len(noise.acts), n_more)]
        is_noise[more] = True
    noise_tracks = np.flatnonzero(is_noise)
    music_tracks = np.flatnonzero(~is_noise)
    n_no_id = min(len(music_tracks), max(MIN_NULL_ARTIST_ID, round(NULL_ARTIST_ID_RATE * T)))
    no_artist_id = np.sort(crng.choice(music_tracks, n_no_id, replace=False))
    has_feat = rng.random(T) < FEATURED_RATE
    feat = (artist_of_track + 1 + rng.integers(0, A - 1, T)) % A
    has_feat &= ~is_noise & ~noise.is_act[feat]  # noise has no featured artist, and no music features a noise act
    signed = rng.random(A) < SIGNED_ARTIST_RATE
    label_of_artist = np.where(signed, (L * rng.random(A) ** 2).astype(np.int64), -1)
    label = label_of_artist[artist_of_track]
    writer = (W * rng.random(T) ** 1.5).astype(np.int64)
    publisher = rng.integers(0, PB, T)
    adjective, noun = draws.pick(rng, ADJECTIVES, T), draws.pick(rng, NOUNS, T)
    suffix = rng.choice(len(TITLE_SUFFIXES), T, p=np.array(TITLE_SUFFIX_WEIGHTS))
    title = draws.join(adjective, " ", noun, draws.words(TITLE_SUFFIXES, suffix))
    n_noise = len(noise_tracks)
    noise_title = draws.join(draws.pick(crng, NOISE_SOUNDS, n_noise), draws.pick(crng, NOISE_SUFFIXES, n_noise))
    title = _replaced(title, noise_tracks, noise_title)
    main_name = artist_names.take(pa.array(artist_of_track))
    feat_name = artist_names.take(pa.array(feat))
    artist_name = pc.if_else(pa.array(has_feat), draws.join(main_name, " feat. ", feat_name), main_name)
    track_ids = draws.ids("t", 1, T, max(6, len(str(T))))
    null_id = np.zeros(T, dtype=bool)
    null_id[no_artist_id] = True
    artist_id = draws.ids(ARTIST_ID_PREFIX, 1, A, max(6, len(str(A)))).take(pa.array(artist_of_track, mask=null_id))
    content_type = draws.words((MUSIC, NOISE), is_noise.astype(np.int8))
    tracks = pa.table([track_ids, title, artist_name, artist_id, content_type], schema=LANDING_TRACKS.arrow_schema)
    return _Tracks(
        track_ids, tracks, is_noise, noise_tracks, no_artist_id, artist_of_track, has_feat, feat, label, writer, publisher
    )


def _draw_splits(
    rng: np.random.Generator, size: _Sizes, tracks: _Tracks, payee_ids: pa.Array
) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """The rights splits, and the tracks whose splits are broken (three kinds in turn) or missing."""
    T, W = size.T, size.W
    base_label, base_pub, base_writer = size.A, size.A + size.L, size.A + size.L + size.PB
    has_feat, label, writer = tracks.has_feat, tracks.label, tracks.writer
    # a (T, 6) matrix of payee index / share, columns
    # label, main, feat, writer, publisher, extra (only for the zero-share breakage)
    payee = np.full((T, 6), -1, dtype=np.int64)
    share = np.zeros((T, 6), dtype=np.int64)
    has_label = label >= 0
    payee[:, 1] = tracks.artist
    payee[:, 3] = base_writer + writer
    lab_feat = has_label & has_feat
    lab_only = has_label & ~has_feat
    indie_feat = ~has_label & has_feat
    indie_only = ~has_label & ~has_feat
    payee[has_label, 0] = base_label + label[has_label]
    payee[has_feat, 2] = tracks.feat[has_feat]
    payee[lab_feat, 4] = base_pub + tracks.publisher[lab_feat]
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
            tracks.ids.take(pa.array(rows_track)),
            payee_ids.take(pa.array(payee[present])),
            pa.array(share[present], pa.int64()),
        ],
        schema=LANDING_RIGHTS_SPLITS.arrow_schema,
    )
    return splits, broken, nosplit


def _draw_popularity(
    rng: np.random.Generator, crng: np.random.Generator, size: _Sizes, tracks: _Tracks
) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Every track id plays use (the catalog's, the uncataloged ones, then ""), their durations, and
    the catalog's popularity ranks (rank -> track index)."""
    T, X = size.T, size.X
    all_track_ids = pa.concat_arrays([tracks.ids, draws.ids("tx", 1, X, 5), pa.array([""])])
    dur_s = np.clip(rng.lognormal(math.log(210.0), 0.25, T + X), 95.0, 360.0)
    durations = np.append((dur_s * 1000).astype(np.int64), 0)
    durations[tracks.noise] = crng.integers(NOISE_DURATION_MS[0], NOISE_DURATION_MS[1] + 1, len(tracks.noise))
    rank_to_track = rng.permutation(T)
    # noise takes the last popularity ranks (few organic plays): each noise track above them
    # swaps ranks with a music track of the tail; every other track keeps its drawn rank
    tail = T - len(tracks.noise)
    noise_up = np.flatnonzero(tracks.is_noise[rank_to_track[:tail]])
    music_down = tail + np.flatnonzero(~tracks.is_noise[rank_to_track[tail:]])
    rank_to_track[noise_up], rank_to_track[music_down] = rank_to_track[music_down], rank_to_track[noise_up]
    return all_track_ids, durations, rank_to_track


@dataclass
class Catalog:
    """The catalog's three tables and the payment details, plus what plays need: ids, durations and
    popularity."""

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
    payment_details: PaymentDetails
    noise_tracks: np.ndarray  # catalog indices of the noise tracks, ascending (their popularity ranks are last)
    noise_act_ids: tuple[str, ...]  # payee ids of the noise acts
    tracks_without_artist_id: tuple[str, ...]  # music tracks whose artist_id is null

    @classmethod
    def build(cls, seed: int, n_tracks: int) -> Catalog:
        """The catalog of ``n_tracks`` tracks (stream ``(seed, tracks)`` only: the same every month;
        the payment details come from their own stream)."""
        rng = draws.rng(seed, draws.STREAM_CATALOG)
        size = _Sizes.of(n_tracks)
        # ACPS v1: its own stream, drawn in a fixed order, so that no draw of ``rng`` moved.
        crng = draws.rng(seed, draws.STREAM_CONTENT)
        noise = _NoiseActs.draw(crng, size)
        payees = _draw_payees(rng, crng, size, noise)
        tracks = _draw_tracks(rng, crng, size, noise, payees.names[: size.A])
        splits, broken, nosplit = _draw_splits(rng, size, tracks, payees.ids)
        all_track_ids, durations, rank_to_track = _draw_popularity(rng, crng, size, tracks)
        return cls(
            n_tracks=size.T,
            n_uncataloged=size.X,
            track_ids=all_track_ids,
            durations_ms=durations,
            rank_to_track=rank_to_track,
            tracks=tracks.table,
            splits=splits,
            payees=payees.table,
            n_payees=len(payees.ids),
            payees_without_email=payees.without_email,
            broken_split_track_ids=tuple(tracks.ids.take(pa.array(broken)).to_pylist()),
            tracks_without_splits=tuple(tracks.ids.take(pa.array(nosplit)).to_pylist()),
            payment_details=PaymentDetails.build(seed, payees.ids, payees.names),
            noise_tracks=tracks.noise,
            noise_act_ids=tuple(payees.ids.take(pa.array(noise.acts)).to_pylist()),
            tracks_without_artist_id=tuple(tracks.ids.take(pa.array(tracks.without_artist_id)).to_pylist()),
        )

    @property
    def is_noise(self) -> np.ndarray:
        """Per index of ``track_ids`` (catalog, uncataloged, then ""): whether it is a noise track."""
        flags = np.zeros(len(self.track_ids), dtype=bool)
        flags[self.noise_tracks] = True
        return flags

    @property
    def empty_index(self) -> int:
        """The index of the id ``""`` in ``track_ids`` (after the uncataloged ids)."""
        return self.n_tracks + self.n_uncataloged

    def sample_catalog_tracks(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` catalog tracks drawn from the Zipf popularity."""
        return self.rank_to_track[zipf_rank(rng.random(n), self.n_tracks, TRACK_ZIPF_EXPONENT)]

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
        rank = zipf_rank(v, self.n_tracks, TRACK_ZIPF_EXPONENT)
        rank[fans] = fan_first_rank[user[fans]] + np.minimum((fan_u * FAN_TRACKS).astype(np.int64), FAN_TRACKS - 1)
        return self.rank_to_track[rank]


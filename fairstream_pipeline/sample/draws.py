"""Seeded random streams, and the string columns the generator builds (ids, words)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Each part of a month draws from its own stream (docs/sample-data.md, "Determinism and speed").
STREAM_USERS, STREAM_CATALOG, STREAM_MONTH, STREAM_DAY, STREAM_PART = range(1, 6)
STREAM_PAYMENT_DETAILS = 6  # added last: the payees' bank accounts (sample/payment_details.py)
# Added for ACPS v1 (docs/sample-data.md, "Play sources, artists and noise"), each its own stream so
# that no earlier draw moved: which tracks are noise or lack an artist_id (catalog), a month's
# sleep-sound listeners and their nights, a day's sleep sessions, and each part file's play sources.
STREAM_CONTENT, STREAM_SLEEPERS, STREAM_SLEEP_NIGHT, STREAM_SOURCE = range(7, 11)


def rng(seed: int, *key: int) -> np.random.Generator:
    """The PCG64 stream ``key`` of ``seed``."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def ids(prefix: str, start: int, count: int, width: int) -> pa.Array:
    """``prefix`` + zero-padded ``start .. start+count-1``, built with pyarrow.compute."""
    numbers = pc.cast(pa.array(np.arange(start, start + count, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(prefix, pc.ascii_lpad(numbers, width, "0"), "")


def words(vocabulary: list[str] | tuple[str, ...], idx: np.ndarray) -> pa.Array:
    """The strings ``vocabulary[idx]``."""
    return pa.array(vocabulary, pa.string()).take(pa.array(idx))


def join(*parts) -> pa.Array:
    """Strings and string arrays concatenated element-wise."""
    return pc.binary_join_element_wise(*parts, "")


def pick(rng: np.random.Generator, vocabulary: list[str] | tuple[str, ...], n: int) -> pa.Array:
    """``n`` words drawn uniformly from ``vocabulary``."""
    return words(vocabulary, rng.integers(0, len(vocabulary), n))

"""Which shard a user belongs to: a stable hash of ``user_id``, modulo the number of buckets.

``user_bucket = first 8 bytes of md5(user_id as UTF-8), read as a big-endian unsigned 64-bit
integer, mod B``. Computed in DuckDB as ``('0x' || substr(md5(user_id), 1, 16))::UBIGINT % B``
(``md5`` returns the digest's lowercase hex; its first 16 hex digits are the first 8 bytes) and in
Python by :func:`user_bucket`; the test pins both to fixed vectors. DuckDB's ``hash()`` is not used:
it is not promised to be stable across versions, and a DuckDB upgrade must never move users
between buckets of a month being restated.

Every user-centric rule up to the per-user floor division is per user (``lib.payouts.engine``), so
the buckets are disjoint shards of the month and their results add up exactly.
"""

from __future__ import annotations

import hashlib

from fairstream_pipeline.settings import get_settings

MAX_BUCKETS = 1024
MIN_AUTO_BUCKETS = 8  # below this, a small month's shards are not cheaper in memory (docs/performance.md)
PLAYS_PER_BUCKET = 25_000_000  # a shard of ~25M plays rolls up in memory within a 4GB DuckDB limit


def check_buckets(buckets: int) -> int:
    """``buckets`` if it is a usable number of buckets (1 to ``MAX_BUCKETS``), else a ValueError."""
    if not isinstance(buckets, int) or isinstance(buckets, bool) or not 1 <= buckets <= MAX_BUCKETS:
        raise ValueError(f"the number of user buckets must be an integer from 1 to {MAX_BUCKETS}, got {buckets!r}")
    return buckets


def buckets_for_month(event_rows: int, plays_per_bucket: int = PLAYS_PER_BUCKET) -> int:
    """The number of user buckets chosen for a month of ``event_rows`` landing rows when none is set:
    ``ceil(event_rows / plays_per_bucket)``, at least ``MIN_AUTO_BUCKETS`` and at most ``MAX_BUCKETS``.

    The rows are counted from the Parquet footers before anything is read. Each shard then rolls up
    about ``plays_per_bucket`` plays, so its work grows with the month no faster than the month
    (a fixed B made a shard's roll-up outgrow memory: docs/performance.md, "Linearity"). The cents
    do not depend on B.
    """
    if plays_per_bucket < 1:
        raise ValueError(f"plays per user bucket must be at least 1, got {plays_per_bucket!r}")
    return min(MAX_BUCKETS, max(MIN_AUTO_BUCKETS, -(-max(event_rows, 0) // plays_per_bucket)))


def user_bucket(user_id: str, buckets: int) -> int:
    """The bucket of ``user_id`` among ``buckets`` (see the module doc)."""
    digest = hashlib.md5(user_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % check_buckets(buckets)


def bucket_sql(user_column: str, buckets: int) -> str:
    """The DuckDB expression of :func:`user_bucket` on ``user_column`` (an INTEGER from 0 to B-1)."""
    return f"CAST(('0x' || substr(md5({user_column}), 1, 16))::UBIGINT % {check_buckets(buckets)} AS INTEGER)"


def user_buckets(event_rows: int) -> int:
    """How many user buckets a month of ``event_rows`` landing rows is ingested into:
    ``FAIRSTREAM_USER_BUCKETS`` (1-1024) when set, else one per ``FAIRSTREAM_PLAYS_PER_USER_BUCKET``
    rows, at least 8 (``buckets_for_month``); the settings are read when called."""
    settings = get_settings()
    if settings.user_buckets is None:
        try:
            return buckets_for_month(event_rows, settings.plays_per_user_bucket)
        except ValueError as exc:
            raise ValueError(f"FAIRSTREAM_PLAYS_PER_USER_BUCKET: {exc}") from None
    try:
        return check_buckets(settings.user_buckets)
    except ValueError as exc:
        raise ValueError(f"FAIRSTREAM_USER_BUCKETS: {exc}") from None

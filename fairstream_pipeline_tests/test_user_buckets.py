"""The user bucket is a stable hash: fixed vectors pin it, and DuckDB and Python agree on any id."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairstream_pipeline.lib.ingestion.user_buckets import MAX_BUCKETS, bucket_sql, check_buckets, user_bucket

# md5("user-00001") = 92f12a101434f262..., first 8 bytes = 10588290447471604322
VECTORS = {
    "user-00001": {1: 0, 3: 2, 16: 2, 1024: 610},
    "u": {1: 0, 3: 1, 16: 6, 1024: 454},
    "Zoë": {1: 0, 3: 0, 16: 12, 1024: 60},
    "😀": {1: 0, 3: 1, 16: 0, 1024: 624},
    "": {1: 0, 3: 2, 16: 4, 1024: 516},
}


def duckdb_buckets(user_ids: list[str], buckets: int) -> list[int]:
    return [
        row[0]
        for row in duckdb.execute(
            f"SELECT {bucket_sql('user_id', buckets)} FROM unnest(?::VARCHAR[]) WITH ORDINALITY AS t(user_id, i) ORDER BY i",
            [user_ids],
        ).fetchall()
    ]


@pytest.mark.parametrize("buckets", [1, 3, 16, 1024])
def test_fixed_vectors_in_python_and_in_duckdb(buckets):
    ids = list(VECTORS)
    expected = [VECTORS[i][buckets] for i in ids]
    assert [user_bucket(i, buckets) for i in ids] == expected
    assert duckdb_buckets(ids, buckets) == expected


def test_the_hash_is_the_first_eight_bytes_of_md5_big_endian():
    assert user_bucket("user-00001", MAX_BUCKETS) == 10588290447471604322 % MAX_BUCKETS


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=20), min_size=1, max_size=20), st.integers(1, MAX_BUCKETS))
def test_duckdb_and_python_agree_on_any_id(user_ids, buckets):
    assert duckdb_buckets(user_ids, buckets) == [user_bucket(i, buckets) for i in user_ids]


@pytest.mark.parametrize("bad", [0, -1, MAX_BUCKETS + 1, 2.0, True, "3"])
def test_a_bad_number_of_buckets_is_refused(bad):
    with pytest.raises(ValueError, match="the number of user buckets must be an integer from 1 to 1024"):
        check_buckets(bad)

"""The baselines the pipeline is measured against, on the same landing files.

- ``scan_limit``: DuckDB counting the month's qualified plays — the least any engine must do.
- ``duckdb_user_centric``: one DuckDB query computing user-centric payouts per track, with no caps,
  no splits and no validation — the reference of the 1.5x target.
- ``duckdb_user_centric_dedupe``: the same query, de-duplicating ``event_id`` month-wide first and
  paying pro-rata beside user-centric per track — the one query a competent engineer would write,
  and the reference of issue 11's 1.0x target.
- ``pandas_user_centric``: the straightforward pandas code a data engineer would first write
  (floats and all); at 200M plays it is expected to run out of memory.

Each baseline returns a small result so that the work cannot be optimised away.
"""

from __future__ import annotations

import glob
from pathlib import Path

from fairstream_pipeline.lib.lake.duckdb_engine import DuckDBSettings, connect, read_parquet


def _event_files(landing: Path, month: str) -> list[str]:
    return sorted(glob.glob(str(landing / "listening_events" / f"date={month}-*" / "*.parquet")))


def scan_limit(landing: Path, month: str, settings: DuckDBSettings, min_play_ms: int = 30_000) -> int:
    """Count the month's qualified plays."""
    with connect(settings) as con:
        return con.execute(
            f"SELECT count(*) FROM {read_parquet(_event_files(landing, month))} WHERE ms_played >= {min_play_ms}"
        ).fetchall()[0][0]


def duckdb_user_centric(
    landing: Path, month: str, settings: DuckDBSettings, royalty_share_ppm: int = 700_000, min_play_ms: int = 30_000
) -> int:
    """User-centric money per track in one query (integer pico-cents); returns the number of tracks paid."""
    subscriptions = str(landing / "subscriptions" / f"month={month}" / "*.parquet")
    with connect(settings) as con:
        return con.execute(
            f"""
            WITH plays AS (
                SELECT user_id, track_id, count(*) AS streams
                FROM {read_parquet(_event_files(landing, month))}
                WHERE ms_played >= {min_play_ms}
                GROUP BY ALL
            ),
            users AS (
                SELECT s.user_id, s.net_cents::HUGEINT * {royalty_share_ppm} * 1000000 AS contribution,
                       sum(p.streams) AS total
                FROM {read_parquet(subscriptions)} s JOIN plays p USING (user_id)
                WHERE s.plan <> 'free'
                GROUP BY ALL
            )
            SELECT count(*) FROM (
                SELECT p.track_id, sum(u.contribution * p.streams // u.total) AS pico
                FROM plays p JOIN users u USING (user_id)
                GROUP BY p.track_id
            )
            """
        ).fetchall()[0][0]


def duckdb_user_centric_dedupe(
    landing: Path, month: str, settings: DuckDBSettings, royalty_share_ppm: int = 700_000, min_play_ms: int = 30_000
) -> int:
    """One query: dedupe ``event_id`` month-wide, drop short plays, pay UC and PR per track (pico-cents).

    Returns the number of tracks paid."""
    subscriptions = str(landing / "subscriptions" / f"month={month}" / "*.parquet")
    with connect(settings) as con:
        return con.execute(
            f"""
            WITH events AS (
                SELECT any_value(user_id) AS user_id, any_value(track_id) AS track_id,
                       any_value(ms_played) AS ms_played
                FROM {read_parquet(_event_files(landing, month))}
                GROUP BY event_id
            ),
            plays AS (
                SELECT user_id, track_id, count(*) AS streams FROM events
                WHERE ms_played >= {min_play_ms} GROUP BY ALL
            ),
            paid AS (
                SELECT user_id, net_cents::HUGEINT * {royalty_share_ppm} * 1000000 AS contribution
                FROM {read_parquet(subscriptions)} WHERE plan <> 'free'
            ),
            users AS (
                SELECT u.user_id, u.contribution, sum(p.streams) AS total
                FROM paid u JOIN plays p USING (user_id) GROUP BY ALL
            ),
            pool AS (SELECT sum(contribution) AS money, (SELECT sum(total) FROM users) AS streams FROM users)
            SELECT count(*) FROM (
                SELECT p.track_id, sum(u.contribution * p.streams // u.total) AS uc_pico,
                       (SELECT money FROM pool) * sum(p.streams) // (SELECT streams FROM pool) AS pr_pico
                FROM plays p JOIN users u USING (user_id)
                GROUP BY p.track_id
            )
            """
        ).fetchall()[0][0]


def pandas_user_centric(landing: Path, month: str, royalty_share: float = 0.7, min_play_ms: int = 30_000) -> int:
    """The first thing a data engineer writes: load everything into pandas and group by."""
    import pandas as pd

    plays = pd.concat(
        [pd.read_parquet(path, columns=["user_id", "track_id", "ms_played"]) for path in _event_files(landing, month)],
        ignore_index=True,
    )
    plays = plays[plays["ms_played"] >= min_play_ms]
    streams = plays.groupby(["user_id", "track_id"]).size().rename("streams").reset_index()
    subscriptions = pd.read_parquet(landing / "subscriptions" / f"month={month}")
    paid = subscriptions[subscriptions["plan"] != "free"][["user_id", "net_cents"]]
    streams = streams.merge(paid, on="user_id")
    streams["total"] = streams.groupby("user_id")["streams"].transform("sum")
    streams["amount"] = streams["net_cents"] * royalty_share * streams["streams"] / streams["total"]
    per_track = streams.groupby("track_id")["amount"].sum()
    return int(len(per_track))

"""Build a tiny month in a landing zone from a readable description, run it, read the money back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import duckdb

from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.months import parse_month
from fairstream_pipeline_tests.landing_builders import Landing


@dataclass
class Plays:
    """``times`` plays of ``track`` by ``user`` on day ``day`` of the month, each ``ms`` long."""

    user: str
    track: str
    times: int
    day: int = 1
    ms: int = 60_000
    source: str | None = None  # listening_events.source (ACPS v1: search and editorial_playlist are active)


@dataclass
class MonthCase:
    users: list[tuple[str, str, str, int]]  # (user_id, plan, country, net_cents)
    plays: list[Plays]
    splits: dict[str, list[tuple[str, int]]] | None = None  # default: each track pays 100% to itself
    ad_revenue: list[tuple[str, int]] = field(default_factory=list)
    extra_payees: list[str] = field(default_factory=list)
    noise: set[str] = field(default_factory=set)  # tracks whose content_type is noise
    artists: dict[str, str] | None = None  # track -> artist_id; None: no artist_id column (the name identifies)

    def write(self, landing: Landing, month: str) -> None:
        landing.subscriptions(month, self.users)
        landing.ad_revenue(month, self.ad_revenue)
        first = parse_month(month)
        rows_by_day: dict[date, list[tuple]] = {}
        serial = 0
        with_sources = any(p.source is not None for p in self.plays)
        for p in self.plays:
            day = first + timedelta(days=p.day - 1)
            for _ in range(p.times):
                serial += 1
                played_at = datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(seconds=serial)
                row = (f"{month}-e{serial:07d}", p.user, p.track, played_at, p.ms)
                rows_by_day.setdefault(day, []).append(row + ((p.source,) if with_sources else ()))
        for day, rows in rows_by_day.items():
            landing.events(day.isoformat(), rows)
        landing.close_days(month)
        tracks = sorted({p.track for p in self.plays} | set(self.splits or {}))
        splits = self.splits if self.splits is not None else {t: [(t, 1_000_000)] for t in tracks}
        payees = sorted({payee for rows in splits.values() for payee, _ in rows} | set(self.extra_payees))
        acps_columns = self.artists is not None or bool(self.noise)
        landing.catalog(
            tracks=[
                (t, f"Song {t}", f"Artist {t}")
                + (((self.artists or {}).get(t), "noise" if t in self.noise else "music") if acps_columns else ())
                for t in tracks
            ],
            splits=[(t, payee, share) for t, rows in splits.items() for payee, share in rows],
            payees=[(p, f"Payee {p}", f"{p.lower()}@example.org") for p in payees],
        )


@dataclass
class MonthMoney:
    uc: dict[str, int]  # payee -> user-centric cents (summed over segments)
    pr: dict[str, int]
    by_segment: dict[tuple[str, str, str], tuple[int, int]]
    statements: dict[str, tuple[int, int, int, int, int]]  # payee -> (opening, earned, pro_rata, paid, closing)
    segments: dict[tuple[str, str], tuple]
    flagged: dict[str, tuple]


def read_money(lake: Lake, month: str) -> MonthMoney:
    def rows(asset: str, sql: str) -> list[tuple]:
        return duckdb.sql(
            sql.replace("{t}", f"read_parquet('{lake.parquet_glob(asset, month)}', hive_partitioning = false)")
        ).fetchall()

    by_segment = {
        (c, t, p): (uc, pr)
        for c, t, p, uc, pr in rows("payee_earnings", "SELECT country, tier, payee_id, uc_cents, pr_cents FROM {t}")
    }
    uc: dict[str, int] = {}
    pr: dict[str, int] = {}
    for (_, _, payee), (u, r) in by_segment.items():
        if u:
            uc[payee] = uc.get(payee, 0) + u
        if r:
            pr[payee] = pr.get(payee, 0) + r
    return MonthMoney(
        uc=uc,
        pr=pr,
        by_segment=by_segment,
        statements={
            r[0]: tuple(r[1:])
            for r in rows(
                "payee_statements",
                "SELECT payee_id, opening_balance_cents, earned_cents, pro_rata_cents, paid_cents, "
                "closing_balance_cents FROM {t}",
            )
        },
        segments={
            (r[0], r[1]): tuple(r[2:])
            for r in rows(
                "segment_pools",
                "SELECT country, tier, users, counted_streams, target_cents, residual_pico FROM {t}",
            )
        },
        flagged={r[0]: tuple(r[1:]) for r in rows("flagged_users", "SELECT * FROM {t}")},
    )

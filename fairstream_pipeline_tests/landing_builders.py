"""Write small, hand-made landing zones for tests (the same layout as docs/data-contract.md)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fairstream_pipeline.lib.months import days_of_month

EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("user_id", pa.string()),
        ("track_id", pa.string()),
        ("played_at", pa.timestamp("us", tz="UTC")),
        ("ms_played", pa.int64()),
    ]
)
SUBSCRIPTION_SCHEMA = pa.schema(
    [("user_id", pa.string()), ("plan", pa.string()), ("country", pa.string()), ("net_cents", pa.int64())]
)
AD_REVENUE_SCHEMA = pa.schema([("country", pa.string()), ("net_cents", pa.int64())])
TRACK_SCHEMA = pa.schema([("track_id", pa.string()), ("title", pa.string()), ("artist_name", pa.string())])
SPLIT_SCHEMA = pa.schema([("track_id", pa.string()), ("payee_id", pa.string()), ("share_ppm", pa.int64())])
PAYEE_SCHEMA = pa.schema([("payee_id", pa.string()), ("name", pa.string()), ("email", pa.string())])


def utc(text: str) -> datetime:
    """``'2026-10-01 10:00'`` or ``'2026-10-01 10:00:05'`` as a UTC datetime."""
    fmt = "%Y-%m-%d %H:%M:%S" if text.count(":") == 2 else "%Y-%m-%d %H:%M"
    return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)


def _write(path: Path, rows: list[tuple], schema: pa.Schema) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(zip(*rows)) if rows else [[] for _ in schema]
    pq.write_table(pa.table([pa.array(c, f.type) for c, f in zip(columns, schema)], schema=schema), path)
    return path


class Landing:
    """A landing zone under ``root`` that tests fill row by row."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def events(self, day: str, rows: list[tuple], name: str = "part-0.parquet") -> Path:
        """Rows are ``(event_id, user_id, track_id, 'YYYY-MM-DD HH:MM', ms_played)``."""
        converted = [
            (e, u, t, utc(p) if isinstance(p, str) else p, ms) for e, u, t, p, ms in rows
        ]
        return _write(self.root / "listening_events" / f"date={day}" / name, converted, EVENT_SCHEMA)

    def event_table(self, day: str, table: pa.Table, name: str = "part-0.parquet") -> Path:
        path = self.root / "listening_events" / f"date={day}" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        return path

    def close_days(self, month: str, except_days: tuple[str, ...] = ()) -> None:
        """Write ``_SUCCESS`` into every day folder of the month (but ``except_days``)."""
        for day in days_of_month(month):
            if day.isoformat() in except_days:
                continue
            folder = self.root / "listening_events" / f"date={day.isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "_SUCCESS").touch()

    def subscriptions(self, month: str, rows: list[tuple], name: str = "part-0.parquet") -> Path:
        """Rows are ``(user_id, plan, country, net_cents)``."""
        return _write(self.root / "subscriptions" / f"month={month}" / name, rows, SUBSCRIPTION_SCHEMA)

    def ad_revenue(self, month: str, rows: list[tuple], name: str = "part-0.parquet") -> Path:
        """Rows are ``(country, net_cents)``."""
        return _write(self.root / "ad_revenue" / f"month={month}" / name, rows, AD_REVENUE_SCHEMA)

    def catalog(self, tracks: list[tuple], splits: list[tuple], payees: list[tuple]) -> None:
        _write(self.root / "catalog" / "tracks.parquet", tracks, TRACK_SCHEMA)
        _write(self.root / "catalog" / "rights_splits.parquet", splits, SPLIT_SCHEMA)
        _write(self.root / "catalog" / "payees.parquet", payees, PAYEE_SCHEMA)

"""Write small, hand-made landing zones for tests, with the contract's layout and schemas
(``lib/ingestion/landing_zone.py``, docs/data-contract.md)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fairstream_pipeline.lib.ingestion.landing_zone import (
    LANDING_AD_REVENUE,
    LANDING_EVENTS,
    LANDING_PAYEES,
    LANDING_PAYMENT_DETAILS,
    LANDING_RIGHTS_SPLITS,
    LANDING_SUBSCRIPTIONS,
    LANDING_TRACKS,
    SUCCESS_MARKER,
    LandingTable,
)
from fairstream_pipeline.lib.months import days_of_month


def utc(text: str) -> datetime:
    """``'2026-10-01 10:00'`` or ``'2026-10-01 10:00:05'`` as a UTC datetime."""
    fmt = "%Y-%m-%d %H:%M:%S" if text.count(":") == 2 else "%Y-%m-%d %H:%M"
    return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)


def _write(path: Path, rows: list[tuple], table: LandingTable) -> Path:
    schema = table.arrow_schema
    if rows:  # rows may leave out the optional columns at the end (a delivery without them)
        schema = pa.schema(list(schema)[: len(rows[0])])
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(zip(*rows)) if rows else [[] for _ in schema]
    pq.write_table(pa.table([pa.array(c, f.type) for c, f in zip(columns, schema)], schema=schema), path)
    return path


class Landing:
    """A landing zone under ``root`` that tests fill row by row."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def events(self, day: str, rows: list[tuple], name: str = "part-0.parquet") -> Path:
        """Rows are ``(event_id, user_id, track_id, 'YYYY-MM-DD HH:MM', ms_played)``, optionally
        followed by ``source``."""
        converted = [(e, u, t, utc(p) if isinstance(p, str) else p, *rest) for e, u, t, p, *rest in rows]
        return _write(LANDING_EVENTS.path(self.root, day) / name, converted, LANDING_EVENTS)

    def event_table(self, day: str, table: pa.Table, name: str = "part-0.parquet") -> Path:
        path = LANDING_EVENTS.path(self.root, day) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        return path

    def close_days(self, month: str, except_days: tuple[str, ...] = ()) -> None:
        """Write ``_SUCCESS`` into every day folder of the month (but ``except_days``)."""
        for day in days_of_month(month):
            if day.isoformat() in except_days:
                continue
            folder = LANDING_EVENTS.path(self.root, day.isoformat())
            folder.mkdir(parents=True, exist_ok=True)
            (folder / SUCCESS_MARKER).touch()

    def subscriptions(self, month: str, rows: list[tuple], name: str = "part-0.parquet") -> Path:
        """Rows are ``(user_id, plan, country, net_cents)``."""
        return _write(LANDING_SUBSCRIPTIONS.path(self.root, month) / name, rows, LANDING_SUBSCRIPTIONS)

    def ad_revenue(self, month: str, rows: list[tuple], name: str = "part-0.parquet") -> Path:
        """Rows are ``(country, net_cents)``."""
        return _write(LANDING_AD_REVENUE.path(self.root, month) / name, rows, LANDING_AD_REVENUE)

    def catalog(self, tracks: list[tuple], splits: list[tuple], payees: list[tuple]) -> None:
        for table, rows in ((LANDING_TRACKS, tracks), (LANDING_RIGHTS_SPLITS, splits), (LANDING_PAYEES, payees)):
            _write(table.path(self.root), rows, table)

    def payment_details(self, rows: list[tuple]) -> Path:
        """Rows are ``(payee_id, iban, bic, account_holder)``; the file is mode 0600 (personal data)."""
        path = _write(LANDING_PAYMENT_DETAILS.path(self.root), rows, LANDING_PAYMENT_DETAILS)
        os.chmod(path, 0o600)
        return path

"""Independent proof that every landing-zone event row of a month is accounted for."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow.parquet as pq

from fairstream_pipeline.lib.assets import CLEAN_PLAYS, PLAY_QUARANTINE
from fairstream_pipeline.lib.ingestion.clean_plays import REMOVED, clean_play_count
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.ingestion.landing_files import fingerprint
from fairstream_pipeline.lib.ingestion.landing_zone import LandingZone


@dataclass(frozen=True)
class RowAccounting:
    landing_rows: int
    clean_plays: int
    quarantined: int
    duplicates_dropped: int
    inputs_unchanged: bool

    @property
    def unaccounted(self) -> int:
        return self.landing_rows - self.clean_plays - self.quarantined - self.duplicates_dropped

    @property
    def balanced(self) -> bool:
        return self.unaccounted == 0 and self.inputs_unchanged


def account_for_event_rows(zone: LandingZone, lake: Lake, month: str) -> RowAccounting:
    """Compare the rows in the landing files (Parquet footers, now) with what ingestion wrote.

    Nothing here reuses the ingestion query: the landing side comes from the current file footers;
    the lake side from the pinned files, the removal list and the quarantine's own footer. Clean +
    quarantined + duplicates equals the landing rows only if every quarantined row is also removed
    from the clean plays, and nothing else is.
    """
    files = zone.event_files(month)
    manifest = lake.manifest(CLEAN_PLAYS, month)
    removed = pq.read_table(lake.partition_dir(CLEAN_PLAYS, month) / REMOVED, columns=["reason"])
    duplicates = sum(1 for reason in removed.column("reason").to_pylist() if reason == "duplicate")
    return RowAccounting(
        landing_rows=sum(f.num_rows for f in files),
        clean_plays=clean_play_count(lake, month),
        quarantined=lake.row_count(PLAY_QUARANTINE, month),
        duplicates_dropped=duplicates,
        inputs_unchanged=manifest["input_fingerprint"] == fingerprint(files),
    )

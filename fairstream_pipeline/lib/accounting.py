"""Independent proof that every landing-zone event row of a month is accounted for."""

from __future__ import annotations

from dataclasses import dataclass

from fairstream_pipeline.lib.lake import Lake
from fairstream_pipeline.lib.landing_zone import LandingZone, fingerprint


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
    """Compare the rows in the landing files (Parquet footers) with what ingestion wrote.

    Nothing here reuses the ingestion query: the landing side comes from the file footers, the lake
    side from the written files' footers and the duplicate count in the manifest.
    """
    files = zone.event_files(month)
    manifest = lake.manifest("clean_plays", month)
    return RowAccounting(
        landing_rows=sum(f.num_rows for f in files),
        clean_plays=lake.row_count("clean_plays", month),
        quarantined=lake.row_count("play_quarantine", month),
        duplicates_dropped=manifest["duplicates_dropped"],
        inputs_unchanged=manifest["input_fingerprint"] == fingerprint(files),
    )

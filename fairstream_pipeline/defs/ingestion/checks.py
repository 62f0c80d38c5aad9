"""Checks on ingestion: every landing row is accounted for, and the quarantine stays small."""

import dagster as dg

from fairstream_pipeline.defs.resources import LandingZoneResource, WarehouseResource
from fairstream_pipeline.defs.specs import monthly_check
from fairstream_pipeline.lib.assets import CLEAN_PLAYS, PLAY_QUARANTINE
from fairstream_pipeline.lib.ingestion.accounting import account_for_event_rows

QUARANTINE_WARN_RATE = 0.005


@monthly_check(
    CLEAN_PLAYS,
    "Rows in the month's event files (from the Parquet footers) equal clean plays + "
    "quarantined rows + exact duplicates dropped. Nothing is silently lost.",
    blocking=True,
)
def clean_plays_rows_accounted_for(
    context: dg.AssetCheckExecutionContext,
    landing_zone: LandingZoneResource,
    warehouse: WarehouseResource,
) -> dg.AssetCheckResult:
    accounting = account_for_event_rows(
        landing_zone.zone(), warehouse.lake(), context.partition_key
    )
    return dg.AssetCheckResult(
        passed=accounting.balanced,
        description=None
        if accounting.inputs_unchanged
        else "The landing zone changed after this month was ingested: re-materialize it.",
        metadata={
            "landing_rows": accounting.landing_rows,
            "clean_plays": accounting.clean_plays,
            "quarantined": accounting.quarantined,
            "duplicates_dropped": accounting.duplicates_dropped,
            "unaccounted": accounting.unaccounted,
            "inputs_unchanged": accounting.inputs_unchanged,
        },
    )


@monthly_check(
    PLAY_QUARANTINE,
    f"Warns when more than {QUARANTINE_WARN_RATE:.1%} of the month's event rows are quarantined.",
)
def play_quarantine_rate(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    month = context.partition_key
    manifest = warehouse.lake().manifest(PLAY_QUARANTINE, month)
    rows_read, quarantined = manifest["rows_read"], manifest["rows"]
    rate = quarantined / rows_read if rows_read else 0.0
    return dg.AssetCheckResult(
        passed=rate <= QUARANTINE_WARN_RATE,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "quarantined": quarantined,
            "rows_read": rows_read,
            "quarantine_rate": dg.MetadataValue.float(round(rate, 6)),
            **{f"quarantined_{reason}": n for reason, n in manifest["quarantined"].items()},
        },
    )

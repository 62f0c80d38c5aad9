"""The landing-zone sensor: compute a month when it becomes complete, and again when its files change."""

import json

import dagster as dg

from fairstream_pipeline.defs.payouts.jobs import monthly_payout_job
from fairstream_pipeline.defs.partitions import partitions_from_settings
from fairstream_pipeline.defs.resources import LandingZoneResource, WarehouseResource
from fairstream_pipeline.lib.ingestion.landing_watch import observe, plan
from fairstream_pipeline.settings import get_settings


def watch_landing_zone(
    context: dg.SensorEvaluationContext,
    landing_zone: LandingZoneResource,
    warehouse: WarehouseResource,
):
    """One tick of ``landing_zone_sensor``: the months to request, from the landing zone and the cursor."""
    cursor = json.loads(context.cursor) if context.cursor else {}
    requested: dict[str, str] = cursor.get("requested", {})
    serial: int = cursor.get("serial", 0)
    partitions = partitions_from_settings()
    decision = plan(
        observe(landing_zone.zone(), warehouse.lake(), partitions.get_partition_keys(), partitions.get_first_partition_key()),
        requested,
    )
    if not decision.requests:
        interesting = [note for note in decision.notes if "no listening events yet" not in note]
        return dg.SkipReason("; ".join(interesting[-6:]) or "no listening events in the landing zone")
    runs = []
    for month, state_key in decision.requests:
        requested[month] = state_key
        serial += 1
        runs.append(
            dg.RunRequest(
                # The serial keeps run keys unique: Dagster silently drops a repeated run key, and a
                # month can come back to an earlier state (a late file withdrawn).
                run_key=f"{month}:{state_key}:{serial}",
                partition_key=month,
                tags={
                    "fairstream/trigger": "landing_zone_sensor",
                    # A closed month's run restates its earnings; its statements never change.
                    "fairstream/purpose": "restatement" if state_key.endswith(":closed") else "payout",
                    # tag values allow [A-Za-z0-9_.-] only
                    "fairstream/landing_state": state_key.replace(":", ".")[:63],
                },
            )
        )
    new_cursor = {"requested": requested, "serial": serial}
    return dg.SensorResult(run_requests=runs, cursor=json.dumps(new_cursor, sort_keys=True))


def landing_zone_sensor() -> dg.SensorDefinition:
    """``landing_zone_sensor``, ticking every ``FAIRSTREAM_SENSOR_INTERVAL_SECONDS``. Built by the code
    location's loader (``definitions.py``), so the interval is read when it loads."""
    return dg.sensor(
        name="landing_zone_sensor",
        job=monthly_payout_job,
        minimum_interval_seconds=get_settings().sensor_interval_seconds,
        description=(
            "Watches the landing zone. Requests monthly_payout_job for a month once every day has "
            "_SUCCESS, and again when a file of an already computed month is added or changed: an open "
            "month is recomputed; a closed month is restated, then the open month that follows is "
            "recomputed so that the adjustment shows in its draft. Months go in order; unchanged data "
            "is never re-requested."
        ),
    )(watch_landing_zone)

"""The monthly payout job: the whole month's chain, from the landing zone to statements."""

import dagster as dg

monthly_payout_job = dg.define_asset_job(
    name="monthly_payout_job",
    selection=dg.AssetSelection.groups("ingestion", "catalog", "payouts"),
    description=(
        "Compute one closed month: wait for a complete landing zone, ingest, count streams, pay "
        "payees user-centrically (with pro-rata beside it) and roll the statements forward. "
        "Blocking money checks stop bad money before the statements."
    ),
)


@dg.definitions
def jobs() -> dg.Definitions:
    return dg.Definitions(jobs=[monthly_payout_job])

"""The monthly payout job: the whole month's chain, from the landing zone to statements."""

import dagster as dg

from fairstream_pipeline.defs.execution import in_process_or_celery

monthly_payout_job = dg.define_asset_job(
    name="monthly_payout_job",
    # The payments group's automatic part: the month's payment details (with the catalog) and its
    # batch (after the close). The release and the bank's reports are never part of this run.
    selection=dg.AssetSelection.groups("ingestion", "catalog", "payouts", "close", "notifications")
    | dg.AssetSelection.assets("payment_details", "payment_batch"),
    description=(
        "Compute one month that has ended: wait for a complete landing zone, ingest, count streams, judge "
        "the professional artists, pay payees under payout_model (user-centric by default; pro-rata and "
        "artist-centric beside it), roll the statements forward with "
        "the adjustments of restated months and returned payments, hold whoever cannot be paid, close the "
        "month (unless FAIRSTREAM_AUTO_CLOSE is off), then publish the statements, queue the statement "
        "emails and build the payment batch (released only by approve_payment_batch). Blocking money checks stop bad "
        "money before the statements, the close and the emails. For a closed month it restates its "
        "earnings and changes nothing else. Sending happens in send_statement_emails, not here."
    ),
    # In process unless the run config chooses Celery (defs/execution.py): DuckDB already uses every
    # core inside a step. Heavy steps share the duckdb_heavy pool.
    executor_def=in_process_or_celery,
)

"""The payment run's jobs: a second person's approval, and applying the bank's status reports."""

import dagster as dg

from fairstream_pipeline.defs.payments.assets import reject_payment_report
from fairstream_pipeline.lib.payments.lifecycle import PAYMENT_STATUS
from fairstream_pipeline.lib.payments.release import PAYMENT_RELEASE

approve_payment_batch = dg.define_asset_job(
    name="approve_payment_batch",
    selection=dg.AssetSelection.assets(PAYMENT_RELEASE),
    description=(
        "Release a closed month's payment batch: a second person restates the batch's count and control "
        "sum as reviewed on payment_batch (config: approver, count, control_sum_cents). On a mismatch "
        "nothing is released. Launched from the UI (Launchpad, with the month's partition) or by "
        "`fairstream payments approve MONTH --count N --control-sum EUR --approver NAME`."
    ),
    executor_def=dg.in_process_executor,
)

ingest_payment_report = dg.define_asset_job(
    name="ingest_payment_report",
    selection=dg.AssetSelection.assets(PAYMENT_STATUS),
    description=(
        "Apply a bank status report (pain.002 in the landing zone's payment_reports/) to the batch of the "
        "month it answers: settled and returned payments. Started by payment_reports_sensor and "
        "`fairstream payments ingest`; config: the report's file."
    ),
    executor_def=dg.in_process_executor,
)


@dg.job(
    description=(
        "Fail, naming the file and the problem, for a bank report that cannot be read or does not answer a "
        "FairStream batch (payment_reports_sensor launches it): nothing of the file is applied."
    ),
    executor_def=dg.in_process_executor,
)
def reject_unattributable_report():
    reject_payment_report()


@dg.definitions
def payment_jobs() -> dg.Definitions:
    return dg.Definitions(jobs=[approve_payment_batch, ingest_payment_report, reject_unattributable_report])

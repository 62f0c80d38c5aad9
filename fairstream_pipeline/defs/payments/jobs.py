"""The payment run's jobs: a second person's approval, and applying the bank's status reports."""

import dagster as dg

from fairstream_pipeline.defs.payments.status import reject_payment_report
from fairstream_pipeline.lib.assets import PAYMENT_RELEASE, PAYMENT_STATUS


def _one_asset_job(name: str, asset: str, description: str):
    """A job that materializes only ``asset``, in process: a person or the sensor launches it for a month."""
    return dg.define_asset_job(
        name=name, selection=dg.AssetSelection.assets(asset), description=description, executor_def=dg.in_process_executor
    )


approve_payment_batch = _one_asset_job(
    "approve_payment_batch",
    PAYMENT_RELEASE,
    "Release a closed month's payment batch: a second person restates the batch's count and control "
    "sum as reviewed on payment_batch (config: approver, count, control_sum_cents). On a mismatch "
    "nothing is released. Launched from the UI (Launchpad, with the month's partition) or by "
    "`fairstream payments approve MONTH --count N --control-sum EUR --approver NAME`.",
)

ingest_payment_report = _one_asset_job(
    "ingest_payment_report",
    PAYMENT_STATUS,
    "Apply a bank status report (pain.002 in the landing zone's payment_reports/) to the batch of the "
    "month it answers: settled and returned payments. Started by payment_reports_sensor and "
    "`fairstream payments ingest`; config: the report's file.",
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

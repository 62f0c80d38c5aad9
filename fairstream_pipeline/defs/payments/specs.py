"""How the payment run's assets are declared, and what every one of them needs: a closed month."""

import dagster as dg

from fairstream_pipeline.defs.specs import monthly_asset
from fairstream_pipeline.lib.close.period_close import close_record
from fairstream_pipeline.lib.lake.storage import Lake

PAYMENTS = "payments"


def payments_asset(*, code_version: str, deps: list, **kwargs):
    """``monthly_asset`` in the payments group, with an optional output (a step with nothing to do
    records no materialization); ``kwargs`` go to ``dg.asset`` (kinds, retry_policy...)."""
    return monthly_asset(group=PAYMENTS, code_version=code_version, deps=deps, output_required=False, **kwargs)


def require_closed_month(context: dg.AssetExecutionContext, lake: Lake) -> dict:
    """The month's close record; a failure, not retried, while the month is open."""
    record = close_record(lake, context.partition_key)
    if record is None:
        raise dg.Failure(
            description=f"{context.partition_key} is open (a draft): only a closed month has a payment batch; close it first",
            allow_retries=False,
        )
    return record

"""``roll_statements``: rule 9, the month's adjustments and then its statements (``payee_adjustments``,
``payee_statements``), one step that leaves a closed month as it is."""

from collections.abc import Iterator

import dagster as dg

from fairstream_pipeline.defs.metadata import lake_metadata
from fairstream_pipeline.defs.payouts.assets import payout_spec, rules_metadata
from fairstream_pipeline.defs.resources import DuckDBEngine, PayoutRulesResource, WarehouseResource
from fairstream_pipeline.lib.assets import ADJUSTMENTS, PAYMENT_DETAILS, STATEMENTS
from fairstream_pipeline.lib.close.draft import draft_statements
from fairstream_pipeline.lib.close.period_close import ClosedMonth, closed_month
from fairstream_pipeline.lib.lake.storage import Lake, MissingPartitionError
from fairstream_pipeline.lib.payouts.report import (
    adjustments_by_source,
    attach_payee_names,
    carried_over,
    held_payees,
    holds_by_reason,
    largest_adjustments,
    summarize_statements,
)
from fairstream_pipeline.lib import months
from fairstream_pipeline.lib.payouts.statements_markdown import (
    adjustment_audit,
    adjustments_table,
    balances_table,
    held_markdown,
    statement_summary_markdown,
)

PREVIOUS_MONTH = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)
# The statements open from last month's statements (a self-dependency, so a backfill runs the
# months in order). The adjustments are computed in the same step from the month's earnings and the
# closed months' records (restatements, which partition mappings cannot express), not from last
# month's statements: with that edge too, an asset backfill of M..N would add N+1 to the
# adjustments only (the child of N's statements) and Dagster refuses a backfill that targets the two
# keys of this non-subsettable step differently (it did, for 2026-09..2026-10, once 2026-11 existed).
ADJUSTMENT_DEPS = ["payee_earnings", "payee_directory", PAYMENT_DETAILS, "landing_month"]
STATEMENT_DEPS = [*ADJUSTMENT_DEPS, dg.AssetDep(STATEMENTS, partition_mapping=PREVIOUS_MONTH)]


def _closed_month_results(lake: Lake, month: str, closed: ClosedMonth) -> Iterator[dg.MaterializeResult]:
    """A closed month's statements and adjustments, as they were closed."""
    for asset in (STATEMENTS, ADJUSTMENTS):
        yield dg.MaterializeResult(
            asset_key=asset,
            metadata={
                "status": closed.notice,
                "closed_at": closed.record["closed_at"],
                "dagster/row_count": lake.manifest(asset, month)["rows"],
                **lake_metadata(lake, asset, month),
            },
            data_version=dg.DataVersion(lake.content_hash(asset, month)),
        )


@dg.multi_asset(
    specs=[
        payout_spec(
            STATEMENTS,
            "Each payee's monthly statement: opening balance, earned (under payout_model, user-centric by "
            "default), adjustment, pro-rata, ACPS, paid, "
            "closing balance, hold reason. Opening balances are last month's closings (zero in the first "
            "month); the adjustment is the sum of this month's payee_adjustments. When opening + earned + "
            "adjustment reaches payout_threshold_cents it is all paid, unless the payee is held (no or "
            "invalid payment details, or a returned payment: hold_reason); otherwise it carries over, "
            "negative included (a clawback). `__suspense__` and `__unallocated__` are never paid. "
            "Never rewritten once the month is closed.",
            deps=STATEMENT_DEPS,
        ),
        payout_spec(
            ADJUSTMENTS,
            "What closed months post to this month, per payee, source month and reason: late_data, "
            "restated earned(K) minus what was already posted for K (K's closed earned plus the "
            "adjustments for K in closed months since); returned_payment, K's payments the bank "
            "returned, credited back once. Non-zero rows only; computed with the statements, never "
            "rewritten once the month is closed.",
            deps=ADJUSTMENT_DEPS,
        ),
    ],
    name="roll_statements",
)
def roll_statements_month(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    duckdb: DuckDBEngine,
    payout_rules: PayoutRulesResource,
):
    """Rule 9: the month's adjustments, then its statements. A closed month is left as it is."""
    month, lake = context.partition_key, warehouse.lake()
    first_month = months.first_month()
    closed = closed_month(lake, month)
    if closed:
        context.log.info(closed.notice)
        yield from _closed_month_results(lake, month, closed)
        return
    rules = payout_rules.rules()
    with duckdb.connect() as con:
        try:
            draft = draft_statements(con, lake, first_month, month, rules)
        except MissingPartitionError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        rows, audit, opening_from = draft["rows"], draft["restatements"], draft["opening_from"]
        names = attach_payee_names(con, lake, month)
        summary = summarize_statements(con)
        carried = carried_over(con, names)
        negative = carried_over(con, names, negative=True)
        adjustments = largest_adjustments(con, names)
        by_source = adjustments_by_source(con)
        held = held_payees(con, names)
        held_by_reason = holds_by_reason(con)
    common = rules_metadata(rules)
    adjustments_md = dg.MetadataValue.md(adjustments_table(adjustments))
    yield dg.MaterializeResult(
        asset_key=STATEMENTS,
        metadata={
            "status": f"draft: {month} is open until period_close closes it",
            "summary": dg.MetadataValue.md(statement_summary_markdown(summary, rules.payout_threshold_cents)),
            "dagster/row_count": rows[STATEMENTS],
            "payees_paid": summary.paid_payees,
            "paid_cents": summary.paid_cents,
            "payees_carried_over": summary.carried_payees,
            "carried_over_cents": summary.carried_cents,
            "negative_balances": summary.negative_payees,
            "negative_balance_cents": summary.negative_cents,
            "held_cents": summary.held_cents,
            "opening_balance_cents": summary.opening_cents,
            "adjustment_cents": summary.adjustment_cents,
            "opening_balances_from": opening_from,
            "carried_over": dg.MetadataValue.md(
                balances_table(carried) if carried else "Every payee with a positive balance is paid."
            ),
            **({"negative_balances_carried": dg.MetadataValue.md(balances_table(negative))} if negative else {}),
            "payees_held": summary.due_held_payees,
            "held_for_payment_cents": summary.due_held_cents,
            "held": dg.MetadataValue.md(held_markdown(draft["payment_details"]["configured"], held_by_reason, held)),
            "adjustments": adjustments_md,
            **lake_metadata(lake, STATEMENTS, month),
            **common,
        },
        data_version=dg.DataVersion(lake.content_hash(STATEMENTS, month)),
    )
    yield dg.MaterializeResult(
        asset_key=ADJUSTMENTS,
        metadata={
            "dagster/row_count": rows[ADJUSTMENTS],
            "adjustment_cents": summary.adjustment_cents,
            "source_months": dg.MetadataValue.md(adjustment_audit(audit, by_source)),
            "largest_adjustments": adjustments_md,
            **lake_metadata(lake, ADJUSTMENTS, month),
            **common,
        },
        data_version=dg.DataVersion(lake.content_hash(ADJUSTMENTS, month)),
    )

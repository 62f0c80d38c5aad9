"""Money checks. The blocking ones stop bad money from moving downstream; the WARN ones flag a month."""

import dagster as dg

from fairstream_pipeline.defs.metadata import plottable
from fairstream_pipeline.defs.partitions import monthly_partitions
from fairstream_pipeline.defs.resources import DuckDBEngine, WarehouseResource
from fairstream_pipeline.defs.specs import monthly_check
from fairstream_pipeline.lib.assets import (
    EARNINGS,
    PAYEE_DIRECTORY,
    SEGMENT_POOLS,
    STATEMENTS,
    TRACK_EARNINGS,
    TRACK_SPLITS,
    USER_STREAMS,
)
from fairstream_pipeline.lib.lake.tables import attach_month
from fairstream_pipeline.lib.markdown import markdown_table, md_text
from fairstream_pipeline.lib.close.month_checks import (
    earnings_findings,
    statements_finding,
    streams_finding,
)
from fairstream_pipeline.lib.months import first_month, previous_month
from fairstream_pipeline.lib.payouts.checks import (
    MODELS,
    Finding,
    model_totals,
    payees_without_email,
    suspense_cents,
    suspense_tracks,
)
from fairstream_pipeline.lib.format import eur, percent, percent_number

SUSPENSE_WARN_BASIS_POINTS = 100  # 1% of the month's user-centric money
STREAMS_CHANGE_WARN_PERCENT = 50


def _spec(name: str, asset: str, description: str, blocking: bool = True) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        name, asset=asset, description=description, blocking=blocking, partitions_def=monthly_partitions
    )


def _finding_result(
    name: str, asset: str, finding: Finding, header: list[str], extra: dict | None = None
) -> dg.AssetCheckResult:
    metadata = {"rows_checked": finding.checked, "problems": len(finding.problems), **(extra or {})}
    if finding.problems:
        metadata["first_problems"] = dg.MetadataValue.md(markdown_table(header, finding.problems[:20]))
    return dg.AssetCheckResult(check_name=name, asset_key=asset, passed=finding.passed, metadata=metadata)


@dg.multi_asset_check(
    specs=[
        _spec(
            "uc_cents_reconcile_per_segment",
            EARNINGS,
            "Per segment, the payees' user-centric cents sum exactly to the segment's target, "
            "recomputed from billed_users and ad_revenue.",
        ),
        _spec(
            "pr_cents_reconcile_per_segment",
            EARNINGS,
            "Per segment, the payees' pro-rata cents sum exactly to the segment's target.",
        ),
        _spec(
            "acps_cents_reconcile_per_segment",
            EARNINGS,
            "Per segment, the payees' artist-centric (ACPS v1) cents sum exactly to the segment's target.",
        ),
        _spec("no_negative_earnings", EARNINGS, "No payee has a negative amount under any model."),
        _spec(
            "model_totals_equal_target",
            EARNINGS,
            "The month's user-centric, pro-rata and artist-centric totals each equal the month's target, "
            "recomputed from the inputs: the three models share the same money.",
        ),
        _spec(
            "suspense_share",
            EARNINGS,
            "Warns when more than 1% of the month's user-centric money goes to `__suspense__` "
            "(tracks without valid splits).",
            blocking=False,
        ),
    ],
    name="payee_earnings_money_checks",
)
def payee_earnings_money_checks(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, duckdb: DuckDBEngine
):
    """Reconcile the month's payee earnings to the cent, under the three models."""
    month, lake = context.partition_key, warehouse.lake()
    with duckdb.connect() as con:
        findings = earnings_findings(con, lake, month)
        segment_header = ["country", "tier", "target cents", "payees' cents"]
        for model in MODELS:
            name = f"{model}_cents_reconcile_per_segment"
            yield _finding_result(name, EARNINGS, findings[name], segment_header)
        yield _finding_result(
            "no_negative_earnings",
            EARNINGS,
            findings["no_negative_earnings"],
            ["country", "tier", "payee", "uc cents", "pr cents", "acps cents"],
        )
        totals = model_totals(con)
        uc_total = totals["uc"]
        yield _finding_result(
            "model_totals_equal_target",
            EARNINGS,
            findings["model_totals_equal_target"],
            ["model", "target cents", "total cents"],
            {f"{m}_total_cents": dg.MetadataValue.int(t) for m, t in totals.items()},
        )
        suspense = suspense_cents(con)
        attach_month(con, lake, month, {"track_earnings": TRACK_EARNINGS, "track_splits": TRACK_SPLITS})
        tracks = suspense_tracks(con)
    share = percent(suspense, uc_total)
    threshold = f"{SUSPENSE_WARN_BASIS_POINTS // 100}%"
    yield dg.AssetCheckResult(
        check_name="suspense_share",
        asset_key=EARNINGS,
        passed=suspense * 10_000 <= SUSPENSE_WARN_BASIS_POINTS * uc_total,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{eur(suspense)} in {md_text('__suspense__')}: {share} of the month's user-centric money "
        f"(warns above {threshold})",
        metadata={
            "suspense_uc_cents": suspense,
            "uc_total_cents": uc_total,
            "suspense_share": plottable(percent_number(suspense, uc_total)),
            "threshold": threshold,
            "threshold_share": dg.MetadataValue.float(SUSPENSE_WARN_BASIS_POINTS / 100),
            "biggest_tracks_in_suspense": dg.MetadataValue.md(
                markdown_table(
                    ["track", "why", "counted streams", "user-centric (before rounding)"],
                    [(track, reason, f"{streams:,}", eur(amount)) for track, reason, streams, amount in tracks],
                )
                if tracks
                else "No track pays suspense this month."
            ),
        },
    )


@monthly_check(
    STATEMENTS,
    "Every statement balances (opening + earned + adjustment - paid = closing), matches "
    "payee_earnings (as closed, for a closed month), payee_adjustments and last month's closing "
    "balances, and pays only whole balances at or over the threshold. A closed month's "
    "statements must be the bytes that were closed.",
    blocking=True,
)
def statements_balance_check(
    context: dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    duckdb: DuckDBEngine,
) -> dg.AssetCheckResult:
    month, lake = context.partition_key, warehouse.lake()
    with duckdb.connect() as con:
        finding = statements_finding(con, lake, first_month(), month)
    return _finding_result("statements_balance_check", STATEMENTS, finding, ["payee", "problem"])


@monthly_check(
    SEGMENT_POOLS,
    "Fails when the month has subscription or ad revenue but zero counted streams: the plays "
    "are missing, and paying it would send all the money to `__unallocated__`. Blocks "
    "payee_earnings, the statements and the close.",
    blocking=True,
)
def month_has_counted_streams(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, duckdb: DuckDBEngine
) -> dg.AssetCheckResult:
    with duckdb.connect() as con:
        finding = streams_finding(con, warehouse.lake(), context.partition_key)
    return dg.AssetCheckResult(
        passed=finding.passed,
        description=None if finding.passed else finding.message,
        metadata={
            "counted_streams": finding.counted_streams,
            "paying_users": finding.paying_users,
            "subscription_cents": finding.subscription_cents,
            "ad_revenue_cents": finding.ad_cents,
        },
    )


@monthly_check(
    PAYEE_DIRECTORY,
    "Warns when a payee named in the rights splits has no email address (or is not in the directory).",
)
def payees_in_splits_have_email(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource, duckdb: DuckDBEngine
) -> dg.AssetCheckResult:
    month, lake = context.partition_key, warehouse.lake()
    with duckdb.connect() as con:
        attach_month(con, lake, month, {"payee_directory": PAYEE_DIRECTORY, "track_splits": TRACK_SPLITS})
        missing = payees_without_email(con)
    metadata = {"payees_without_email": len(missing)}
    if missing:
        metadata["payees"] = dg.MetadataValue.md(markdown_table(["payee", "problem"], missing[:50]))
    return dg.AssetCheckResult(passed=not missing, severity=dg.AssetCheckSeverity.WARN, metadata=metadata)


@monthly_check(
    USER_STREAMS,
    f"Warns when the month's counted streams changed by more than {STREAMS_CHANGE_WARN_PERCENT}% "
    "from the previous month.",
)
def counted_streams_month_over_month(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    month, lake = context.partition_key, warehouse.lake()
    current = lake.manifest(USER_STREAMS, month)["counted_streams"]
    previous = previous_month(month)
    if not lake.exists(USER_STREAMS, previous):
        return dg.AssetCheckResult(
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"No user_streams for {previous} to compare with.",
            metadata={"counted_streams": current},
        )
    before = lake.manifest(USER_STREAMS, previous)["counted_streams"]
    change = abs(current - before)
    return dg.AssetCheckResult(
        passed=change * 100 <= STREAMS_CHANGE_WARN_PERCENT * before,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "counted_streams": current,
            "previous_month_streams": before,
            "change": percent(current - before, before) if before else "n/a",
        },
    )

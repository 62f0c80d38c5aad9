"""``period_close``: the explicit, audited step that closes a month."""

from datetime import datetime, timedelta, timezone

import dagster as dg

from fairstream_pipeline.defs.metadata import lake_metadata
from fairstream_pipeline.defs.resources import (
    DuckDBEngine,
    LandingZoneResource,
    WarehouseResource,
)
from fairstream_pipeline.defs.specs import monthly_asset
from fairstream_pipeline.lib.ingestion.accounting import account_for_event_rows
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.lake.tables import attach_month
from fairstream_pipeline.lib.markdown import md_text
from fairstream_pipeline.lib.ingestion.landing_zone import LandingZone
from fairstream_pipeline.lib.close.month_checks import (
    earnings_findings,
    statements_finding,
    streams_finding,
)
from fairstream_pipeline.lib.payouts.checks import held_cents, held_share_ok
from fairstream_pipeline.lib.format import cents, eur, percent
from fairstream_pipeline.lib.payouts.rules import PAYOUT_DUE_DAY, SUSPENSE, UNALLOCATED, PayoutRules
from fairstream_pipeline.lib.assets import ADJUSTMENTS, CLOSE, EARNINGS, PAYMENT_RELEASE, STATEMENTS
from fairstream_pipeline.lib.close.period_close import (
    close_month,
    closed_month,
    draft_problems,
    next_open_month,
    statement_payments,
)
from fairstream_pipeline.lib import months
from fairstream_pipeline.settings import auto_close

CLOSE_GROUP = "close"
HELD_SHARE_CHECK = "held_share_within_limit"


def _drafted_in_this_run(context: dg.AssetExecutionContext) -> bool:
    """Whether this run computed the month's statements: then the close follows FAIRSTREAM_AUTO_CLOSE;
    a run that only closes (``--select period_close``, close_month_job) is an explicit close."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(STATEMENTS), asset_partitions=[context.partition_key]),
        limit=1,
    ).records
    return bool(records) and records[0].run_id == context.run.run_id


def _held_share_text(held: int, total: int, rules: PayoutRules, when: str, markdown: bool = False) -> str:
    """The month's held share against its limit, as plain text or as Markdown (the special payee ids
    escaped, for the UI)."""
    special = (md_text(SUSPENSE), md_text(UNALLOCATED)) if markdown else (SUSPENSE, UNALLOCATED)
    return (
        f"{percent(held, total)} of the month's money is held in {special[0]} + {special[1]} "
        f"({when}); the limit is {percent(rules.max_held_share_ppm, 1_000_000)}"
    )


def _held_share_result(held: int, total: int, rules: PayoutRules, when: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=HELD_SHARE_CHECK,
        passed=held_share_ok(held, total, rules.max_held_share_ppm),
        description=_held_share_text(held, total, rules, when, markdown=True),
        metadata={
            "held_cents": held,
            "month_total_cents": total,
            "held_share_ppm": held * 1_000_000 // total if total else 0,
            "max_held_share_ppm": rules.max_held_share_ppm,
        },
    )


def _draft_checks(lake: Lake, zone: LandingZone, duckdb: DuckDBEngine, first_month: str, month: str) -> dict[str, str | None]:
    """The month's blocking checks, evaluated again on the draft as it is in the lake now:
    ``{check name: None when it passes, else what is wrong}``."""
    with duckdb.connect() as con:
        findings = {
            **earnings_findings(con, lake, month),
            "statements_balance_check": statements_finding(con, lake, first_month, month),
        }
        streams = streams_finding(con, lake, month)
    results: dict[str, str | None] = {
        name: None if finding.passed else str(finding.problems[0]) for name, finding in findings.items()
    }
    results["month_has_counted_streams"] = None if streams.passed else streams.message
    accounting = account_for_event_rows(zone, lake, month)
    results["clean_plays_rows_accounted_for"] = (
        None if accounting.balanced
        else "the landing zone changed after ingestion" if not accounting.inputs_unchanged
        else f"{accounting.unaccounted:,} rows unaccounted for"
    )
    return results


def _verified_draft_checks(
    lake: Lake, zone: LandingZone, duckdb: DuckDBEngine, first_month: str, month: str
) -> list[str]:
    """The names of the month's blocking checks once its draft can be closed and passes them all;
    a failure saying why not otherwise."""
    problems = draft_problems(lake, first_month, month)
    if problems:
        raise dg.Failure(description=f"{month} cannot be closed: " + "; ".join(problems), allow_retries=False)
    checks = _draft_checks(lake, zone, duckdb, first_month, month)
    failed = [f"{name} ({problem})" for name, problem in checks.items() if problem is not None]
    if failed:
        raise dg.Failure(
            description=f"{month} cannot be closed: blocking checks fail on its draft: " + "; ".join(failed),
            allow_retries=False,
        )
    return list(checks)


def _close_metadata(lake: Lake, month: str, record: dict, status: str) -> dict:
    return {
        "status": status,
        "summary": dg.MetadataValue.md(
            f"Closed at {record['closed_at']}: **paid {eur(record['paid_cents'])}** to {record['payees_paid']:,} "
            f"payees; held (never paid) {eur(record['held_cents'])}. Changes now post as adjustments to "
            f"{next_open_month(lake, month)}."
        ),
        "closed_at": record["closed_at"],
        "closed_by_run": dg.MetadataValue.md(f"[{record['closed_by_run']}](/runs/{record['closed_by_run']})"),
        "rules": dg.MetadataValue.json(record["rules"]),
        "statements_hash": record["statements_hash"],
        "adjustments_hash": record["adjustments_hash"],
        "earnings_hash": record["earnings_hash"],
        "landing_fingerprint": record["landing_fingerprint"],
        "checks_verified": dg.MetadataValue.md("\n".join(f"- {c}" for c in record["checks_verified"])),
        "paid_cents": record["paid_cents"],
        "payees_paid": record["payees_paid"],
        "held_cents": record["held_cents"],
        "next_open_month": next_open_month(lake, month),
        "dagster/row_count": record["rows"],
        **lake_metadata(lake, CLOSE, month),
    }


@monthly_asset(
    group=CLOSE_GROUP,
    code_version="period-close-v1",
    kinds={"parquet"},
    deps=[STATEMENTS, ADJUSTMENTS, EARNINGS],
    output_required=False,
    check_specs=[
        dg.AssetCheckSpec(
            HELD_SHARE_CHECK,
            asset=CLOSE,
            blocking=True,
            description=(
                "A month does not close when more than max_held_share_ppm (default 5%) of its money is "
                "held in `__suspense__` + `__unallocated__`."
            ),
        )
    ],
    # The month that just ended must be closed (paid) by the 3rd at 00:00 UTC: overdue in the UI otherwise.
    freshness_policy=dg.FreshnessPolicy.cron(
        deadline_cron=f"0 0 {PAYOUT_DUE_DAY} * *", lower_bound_delta=timedelta(days=PAYOUT_DUE_DAY - 1)
    ),
)
def period_close(
    context: dg.AssetExecutionContext,
    landing_zone: LandingZoneResource,
    warehouse: WarehouseResource,
    duckdb: DuckDBEngine,
):
    """Close the month: from now on its statements and adjustments never change, and they are
    published and emailed. Requires the previous month closed (but in the first month), a current
    draft whose blocking checks pass, and at most max_held_share_ppm held. The partition holds the
    payee earnings exactly as closed; its record says when, by which run, under which rules, and
    the hashes of what was closed. A run that also computed the draft closes only when
    FAIRSTREAM_AUTO_CLOSE is on."""
    month, lake = context.partition_key, warehouse.lake()
    first_month = months.first_month()
    closed = closed_month(lake, month)
    if closed:
        context.log.info(closed.notice)
        record = closed.record
        yield _held_share_result(record["held_cents"], record["month_total_cents"],
                                 PayoutRules.from_recorded(record["rules"]), "at the close")
        yield dg.MaterializeResult(
            metadata=_close_metadata(lake, month, record, closed.notice),
            data_version=dg.DataVersion(record["statements_hash"]),
        )
        return
    if not lake.exists(STATEMENTS, month):
        raise dg.Failure(
            description=f"{month} cannot be closed: it has no draft (payee_statements/month={month}); compute it first",
            allow_retries=False,
        )
    rules = PayoutRules.from_recorded(lake.manifest(STATEMENTS, month)["rules"])
    with duckdb.connect() as con:
        attach_month(con, lake, month, {"payee_earnings": EARNINGS})
        held, total = held_cents(con, rules.earned_column)
    if _drafted_in_this_run(context) and not auto_close():
        yield _held_share_result(held, total, rules, "the draft")
        context.log.info(
            f"{month} stays open as a draft: FAIRSTREAM_AUTO_CLOSE is off. Review it, then close it with "
            f"close_month_job or `dagster asset materialize --select 'period_close*' --partition {month}`."
        )
        return
    checks = _verified_draft_checks(lake, landing_zone.zone(), duckdb, first_month, month)
    held_result = _held_share_result(held, total, rules, "the draft")
    yield held_result
    if not held_result.passed:
        raise dg.Failure(
            description=f"{month} does not close: {_held_share_text(held, total, rules, 'the draft')}. "
            "Resolve the rights splits (__suspense__) or the missing streams (__unallocated__), recompute the "
            "month and close it again.",
            allow_retries=False,
        )
    statements = lake.manifest(STATEMENTS, month)
    with duckdb.connect() as con:
        attach_month(con, lake, month, {"payee_statements": STATEMENTS})
        payees_paid, paid = statement_payments(con)
        record = close_month(
            con,
            lake,
            month,
            {
                "closed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "closed_by_run": context.run.run_id,
                "rules": statements["rules"],
                "checks_verified": sorted([*checks, HELD_SHARE_CHECK]),
                "held_cents": held,
                "month_total_cents": total,
                "payees_paid": payees_paid,
                "paid_cents": paid,
            },
        )
    context.log.info(
        f"{month} closed at {record['closed_at']}: {payees_paid:,} payees paid {cents(paid)} EUR; "
        f"statements {record['statements_hash']}"
    )
    yield dg.MaterializeResult(
        metadata=_close_metadata(lake, month, record, f"closed now: {month} is closed and will never change"),
        data_version=dg.DataVersion(record["statements_hash"]),
    )


close_month_job = dg.define_asset_job(
    name="close_month_job",
    # Not the release nor the bank's reports: those are approve_payment_batch and ingest_payment_report.
    selection=dg.AssetSelection.assets(CLOSE).downstream() - dg.AssetSelection.assets(PAYMENT_RELEASE).downstream(),
    description=(
        "Close a reviewed month and publish it: period_close, then the statement emails, the app "
        "database, the outbox and the payment batch. Finance launches it from the UI for the month "
        "they reviewed; the batch is released by approve_payment_batch."
    ),
    executor_def=dg.in_process_executor,
)

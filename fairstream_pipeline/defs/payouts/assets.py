"""Payout assets: counted streams, segment pools, payee earnings (UC beside PR) and statements."""

from datetime import datetime, timezone

import dagster as dg

from fairstream_pipeline.defs.metadata import LAKE_KINDS, OWNERS, contract_failures, markdown_table, preview
from fairstream_pipeline.defs.partitions import monthly_partitions
from fairstream_pipeline.defs.resources import (
    DuckDBEngine,
    LandingZoneResource,
    PayoutRulesResource,
    WarehouseResource,
)
from fairstream_pipeline.defs.retries import READ_LANDING_ZONE
from fairstream_pipeline.lib.ingestion import ingest_catalog
from fairstream_pipeline.lib.lake import MissingPartitionError
from fairstream_pipeline.lib.lake_tables import attach_month, publish_month
from fairstream_pipeline.lib.landing_zone import fingerprint
from fairstream_pipeline.lib.payout_engine import pay_payees, validate_splits
from fairstream_pipeline.lib.payout_report import cents, compare_models, percent
from fairstream_pipeline.lib.payout_rules import RULES_VERSION, PayoutRules
from fairstream_pipeline.lib.period_close import (
    ADJUSTMENTS,
    STATEMENTS,
    ClosedMonth,
    closed_month,
    draft_statements,
)

CATALOG, PAYOUTS = "catalog", "payouts"
CODE_VERSION = f"payout-rules-{RULES_VERSION}"


def _spec(key: str, description: str, deps: list, group: str = PAYOUTS, **kwargs) -> dg.AssetSpec:
    return dg.AssetSpec(
        key,
        deps=deps,
        description=description,
        group_name=group,
        owners=OWNERS,
        kinds=LAKE_KINDS,
        code_version=CODE_VERSION,
        **kwargs,
    )


def _rules_metadata(rules: PayoutRules) -> dict:
    return {"payout_rules": dg.MetadataValue.json(rules.as_dict())}


def month_rules(
    context: dg.AssetExecutionContext, payout_rules: PayoutRulesResource, closed: ClosedMonth | None
) -> PayoutRules:
    """The run's rules for an open month. A closed month is restated under the rules it was closed
    with, whatever the run asks for, so that its restatement differs from the close only by data."""
    requested = payout_rules.rules()
    if closed is None:
        return requested
    recorded = PayoutRules.from_recorded(closed.record["rules"])
    ignored = {k: v for k, v in requested.as_dict().items() if recorded.as_dict().get(k) != v}
    if ignored:
        context.log.warning(
            f"{context.partition_key} is closed: it is restated under the rules it was closed with; "
            f"this run's {ignored} are ignored"
        )
    return recorded


@dg.multi_asset(
    specs=[
        _spec(
            "track_splits",
            "The month's rights splits, each row with its track's verdict (valid, or why not). "
            "Tracks with invalid or missing splits pay __suspense__.",
            deps=["landing_month"],
            group=CATALOG,
        ),
        _spec(
            "payee_directory",
            "The payees (id, name, email) as the catalog listed them when the month was computed.",
            deps=["landing_month"],
            group=CATALOG,
        ),
    ],
    partitions_def=monthly_partitions,
    name="snapshot_catalog",
    retry_policy=READ_LANDING_ZONE,
)
def snapshot_catalog(
    context: dg.AssetExecutionContext,
    landing_zone: LandingZoneResource,
    warehouse: WarehouseResource,
    duckdb: DuckDBEngine,
):
    """Snapshot the catalog for the month and judge every track's splits."""
    month = context.partition_key
    with contract_failures(), duckdb.connect() as con:
        catalog = ingest_catalog(con, landing_zone.zone())
        validate_splits(con)
        con.execute(
            "CREATE TEMP TABLE payee_directory AS "
            "SELECT payee_id, name, email FROM catalog_payees ORDER BY payee_id"
        ).fetchall()
        rows = publish_month(
            con,
            warehouse.lake(),
            month,
            ["track_splits", "payee_directory"],
            {"input_fingerprint": fingerprint(catalog.files)},
        )
        verdicts = con.execute(
            """SELECT coalesce(problem, 'valid'), count(DISTINCT track_id) FROM track_splits
               GROUP BY ALL ORDER BY 2 DESC, 1"""
        ).fetchall()
        invalid = preview(
            con,
            "SELECT track_id, problem, list(payee_id) AS payees, list(share_ppm) AS shares "
            "FROM track_splits WHERE NOT valid GROUP BY track_id, problem ORDER BY track_id",
            limit=20,
        )
        no_email = con.execute(
            "SELECT count(*) FROM payee_directory WHERE email IS NULL OR email = ''"
        ).fetchall()[0][0]
    yield dg.MaterializeResult(
        asset_key="track_splits",
        metadata={
            "dagster/row_count": rows["track_splits"],
            "tracks_in_catalog": catalog.tracks,
            "tracks_by_verdict": dg.MetadataValue.md(markdown_table(["verdict", "tracks"], verdicts)),
            "invalid_tracks": invalid,
        },
    )
    yield dg.MaterializeResult(
        asset_key="payee_directory",
        metadata={"dagster/row_count": rows["payee_directory"], "payees_without_email": no_email},
    )


@dg.asset(
    partitions_def=monthly_partitions,
    deps=["segment_pools", "track_earnings", "track_splits"],
    group_name=PAYOUTS,
    owners=OWNERS,
    kinds=LAKE_KINDS,
    code_version=CODE_VERSION,
)
def payee_earnings(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    duckdb: DuckDBEngine,
    payout_rules: PayoutRulesResource,
) -> dg.MaterializeResult:
    """Each payee's cents per segment, user-centric (uc_cents) beside pro-rata (pr_cents).

    Track money is split by the rights splits (invalid splits pay __suspense__), then rounded to
    cents once per segment and payee so that every segment sums exactly to its target. For a closed
    month this is the restatement: the figures as they are now, under the rules of the close; the
    difference to what was closed posts as adjustments to the next open month.
    """
    month, lake = context.partition_key, warehouse.lake()
    closed = closed_month(lake, month)
    rules = month_rules(context, payout_rules, closed)
    status = {}
    if closed:
        status["status"] = f"restated: {closed.notice}"
        context.log.info(status["status"])
    with duckdb.connect() as con:
        attach_month(
            con,
            lake,
            month,
            {"segment_pools": "segment_pools", "track_earnings": "track_earnings", "track_splits": "track_splits"},
        )
        pay_payees(con)
        rows = publish_month(
            con,
            lake,
            month,
            ["payee_earnings"],
            {
                "rules": rules.as_dict(),
                # The audit of a restatement: which run computed these figures, when, from which files.
                "run_id": context.run.run_id,
                "computed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "input_fingerprint": lake.manifest("landing_month", month)["input_fingerprint"],
            },
        )
        comparison = compare_models(con)
    return dg.MaterializeResult(
        metadata={
            **status,
            "dagster/row_count": rows["payee_earnings"],
            **comparison_metadata(comparison),
            **_rules_metadata(rules),
        },
        data_version=dg.DataVersion(lake.content_hash("payee_earnings", month)),
    )


def comparison_metadata(c) -> dict:
    """User-centric beside pro-rata, as the UI shows it on payee_earnings."""
    top = markdown_table(
        ["payee", "user-centric (EUR)", "pro-rata (EUR)", "UC - PR (EUR)"],
        [(p, cents(uc), cents(pr), cents(uc - pr)) for p, uc, pr in c.top_payees],
    )
    return {
        "uc_total_cents": c.uc_total_cents,
        "pr_total_cents": c.pr_total_cents,
        "payees": c.payees,
        "top_1pct_share_uc": percent(c.uc_top_1pct_cents, c.uc_total_cents),
        "top_1pct_share_pr": percent(c.pr_top_1pct_cents, c.pr_total_cents),
        "suspense_uc_cents": c.special_cents.get("__suspense__", (0, 0))[0],
        "unallocated_uc_cents": c.special_cents.get("__unallocated__", (0, 0))[0],
        "top_payees": dg.MetadataValue.md(
            f"Top 1% = {c.top_1pct_payees} of {c.payees} payees: "
            f"{percent(c.uc_top_1pct_cents, c.uc_total_cents)} of the money user-centric, "
            f"{percent(c.pr_top_1pct_cents, c.pr_total_cents)} pro-rata.\n\n{top}"
        ),
    }


PREVIOUS_MONTH = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)
# Both assets of the step share their upstreams, so that an asset backfill always targets them
# together (it cannot run half of the step). The adjustments also read the earnings of every
# closed month before this one (restatements), which partition mappings cannot express.
STATEMENT_DEPS = ["payee_earnings", "landing_month", dg.AssetDep(STATEMENTS, partition_mapping=PREVIOUS_MONTH)]


@dg.multi_asset(
    specs=[
        _spec(
            STATEMENTS,
            "Each payee's monthly statement: opening balance, earned (UC), adjustment, pro-rata, paid, "
            "closing balance. Opening balances are last month's closings (zero in the first month); "
            "the adjustment is the sum of this month's payee_adjustments. When opening + earned + "
            "adjustment reaches payout_threshold_cents it is all paid; otherwise it carries over, "
            "negative included (a clawback). __suspense__ and __unallocated__ are never paid. "
            "Never rewritten once the month is closed.",
            deps=STATEMENT_DEPS,
        ),
        _spec(
            ADJUSTMENTS,
            "What restated closed months post to this month, per payee and source month: restated "
            "earned(K) minus what was already posted for K (K's closed earned plus the adjustments for "
            "K in closed months since). Non-zero rows only; computed with the statements, never "
            "rewritten once the month is closed.",
            deps=STATEMENT_DEPS,
        ),
    ],
    partitions_def=monthly_partitions,
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
    first_month = monthly_partitions.get_first_partition_key()
    closed = closed_month(lake, month)
    if closed:
        context.log.info(closed.notice)
        for asset in (STATEMENTS, ADJUSTMENTS):
            yield dg.MaterializeResult(
                asset_key=asset,
                metadata={
                    "status": closed.notice,
                    "closed_at": closed.record["closed_at"],
                    "dagster/row_count": lake.manifest(asset, month)["rows"],
                },
                data_version=dg.DataVersion(lake.content_hash(asset, month)),
            )
        return
    rules = payout_rules.rules()
    with duckdb.connect() as con:
        try:
            draft = draft_statements(con, lake, first_month, month, rules)
        except MissingPartitionError as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        rows, audit, opening_from = draft["rows"], draft["restatements"], draft["opening_from"]
        totals = con.execute(
            """SELECT count(*) FILTER (WHERE paid_cents > 0), coalesce(sum(paid_cents), 0)::BIGINT,
                      coalesce(sum(closing_balance_cents), 0)::BIGINT,
                      coalesce(sum(opening_balance_cents), 0)::BIGINT,
                      coalesce(sum(adjustment_cents), 0)::BIGINT,
                      count(*) FILTER (WHERE closing_balance_cents < 0)
               FROM payee_statements"""
        ).fetchall()[0]
        shown = preview(con, "SELECT * FROM payee_statements ORDER BY earned_cents DESC, payee_id", limit=15)
        by_source = con.execute(
            """SELECT source_month, count(*), sum(cents)::BIGINT, sum(cents) FILTER (WHERE cents > 0)::BIGINT,
                      sum(cents) FILTER (WHERE cents < 0)::BIGINT
               FROM payee_adjustments GROUP BY 1 ORDER BY 1"""
        ).fetchall()
        adjustments_preview = preview(
            con, "SELECT payee_id, source_month, cents FROM payee_adjustments ORDER BY abs(cents) DESC, payee_id", limit=20
        )
    common = _rules_metadata(rules)
    yield dg.MaterializeResult(
        asset_key=STATEMENTS,
        metadata={
            "status": f"draft: {month} is open until period_close closes it",
            "dagster/row_count": rows[STATEMENTS],
            "payees_paid": totals[0],
            "paid_cents": totals[1],
            "carried_over_cents": totals[2],
            "opening_balance_cents": totals[3],
            "adjustment_cents": totals[4],
            "negative_balances": totals[5],
            "opening_balances_from": opening_from,
            "preview": shown,
            **common,
        },
        data_version=dg.DataVersion(lake.content_hash(STATEMENTS, month)),
    )
    yield dg.MaterializeResult(
        asset_key=ADJUSTMENTS,
        metadata={
            "dagster/row_count": rows[ADJUSTMENTS],
            "adjustment_cents": totals[4],
            "source_months": dg.MetadataValue.md(adjustment_audit(audit, by_source)),
            "largest_adjustments": adjustments_preview,
            **common,
        },
        data_version=dg.DataVersion(lake.content_hash(ADJUSTMENTS, month)),
    )


def adjustment_audit(audit: list[dict], by_source: list[tuple]) -> str:
    """For each restated month: who restated it, the landing files that changed, what it posts."""
    if not audit:
        return "No closed month was restated: nothing to adjust."
    totals = {source: row for source, *row in by_source}
    parts = [
        markdown_table(
            ["source month", "closed at", "restated by run", "restated at", "landing at close -> now", "payees",
             "net (EUR)", "credits (EUR)", "debits (EUR)"],
            [
                (a["source_month"], a["closed_at"], f"[{a['restated_by_run'][:8]}](/runs/{a['restated_by_run']})",
                 a["restated_at"], f"{a['landing_at_close']} -> {a['landing_now']}", totals[a["source_month"]][0],
                 cents(totals[a["source_month"]][1]), cents(totals[a["source_month"]][2] or 0),
                 cents(totals[a["source_month"]][3] or 0))
                for a in audit
            ],
        )
    ]
    for a in audit:
        parts.append(f"\n**Landing files changed in {a['source_month']} since its close** (reason: late data for {a['source_month']})\n")
        parts.append(
            markdown_table(
                ["file", "change", "fingerprint at close", "fingerprint now"],
                [(f["path"], f["change"], f["at_close"], f["now"]) for f in a["changed_files"]],
            )
            if a["changed_files"]
            else "No landing file changed: the month was recomputed with other inputs (catalog or code)."
        )
    return "\n".join(parts)

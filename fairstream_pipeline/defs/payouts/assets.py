"""Payout assets: counted streams, segment pools, payee earnings (UC beside PR) and statements."""

from datetime import datetime, timezone

import dagster as dg

from fairstream_pipeline.defs.metadata import (
    contract_failures,
    lake_metadata,
    plottable,
    preview,
)
from fairstream_pipeline.defs.partitions import monthly_partitions
from fairstream_pipeline.defs.resources import (
    DuckDBEngine,
    LandingZoneResource,
    PayoutRulesResource,
    WarehouseResource,
)
from fairstream_pipeline.defs.retries import READ_LANDING_ZONE
from fairstream_pipeline.defs.specs import monthly_asset, monthly_spec
from fairstream_pipeline.lib.ingestion.monthly_tables import ingest_catalog, snapshot_payee_directory
from fairstream_pipeline.lib.lake.storage import MissingPartitionError
from fairstream_pipeline.lib.lake.tables import attach_month, publish_month
from fairstream_pipeline.lib.ingestion.landing_zone import fingerprint
from fairstream_pipeline.lib.markdown import (
    Markdown,
    markdown_table,
    md_text,
    payee_label,
)
from fairstream_pipeline.lib.payments.details import (
    PAYMENT_DETAILS,
    details_summary,
    snapshot_payment_details,
    unpayable_details,
)
from fairstream_pipeline.lib.payouts.engine import pay_payees, validate_splits
from fairstream_pipeline.lib.payouts.report import (
    MODEL_ABBREVIATIONS,
    ModelComparison,
    PayeeChange,
    StatementSummary,
    adjustments_by_source,
    attach_payee_names,
    carried_over,
    compare_models,
    held_payees,
    holds_by_reason,
    directory_without_email,
    eur,
    invalid_tracks,
    largest_adjustments,
    model_label,
    percent,
    percent_number,
    summarize_statements,
    tracks_by_verdict,
)
from fairstream_pipeline.lib.payouts.rules import PAYOUT_MODELS, RULES_VERSION, PayoutRules
from fairstream_pipeline.lib.close.period_close import (
    ADJUSTMENTS,
    STATEMENTS,
    ClosedMonth,
    closed_month,
    draft_statements,
)

CATALOG, PAYOUTS, PAYMENTS = "catalog", "payouts", "payments"
CODE_VERSION = f"payout-rules-{RULES_VERSION}"


def _spec(key: str, description: str, deps: list, group: str = PAYOUTS) -> dg.AssetSpec:
    return monthly_spec(key, description, deps, group=group, code_version=CODE_VERSION)


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
        _spec(
            PAYMENT_DETAILS,
            "The payees' bank details (optional catalog/payment_details.parquet) as the month uses them, "
            "each row validated (IBAN checksum, country and length; BIC valid and of the IBAN's country): "
            "a payee due a payment without a valid row is held (rule 10). Personal data: mode 0600, IBANs "
            "masked in the UI. Never rewritten once the month is closed: the batch pays these details.",
            deps=["landing_month"],
            group=PAYMENTS,
        ),
    ],
    name="snapshot_catalog",
    retry_policy=READ_LANDING_ZONE,
)
def snapshot_catalog(
    context: dg.AssetExecutionContext,
    landing_zone: LandingZoneResource,
    warehouse: WarehouseResource,
    duckdb: DuckDBEngine,
):
    """Snapshot the catalog for the month, judge every track's splits and every payee's bank details."""
    month, lake = context.partition_key, warehouse.lake()
    # A closed month keeps the payment details its holds were decided on (and its batch pays to).
    keep_details = closed_month(lake, month) is not None and lake.exists(PAYMENT_DETAILS, month)
    with contract_failures(), duckdb.connect() as con:
        catalog = ingest_catalog(con, landing_zone.zone())
        validate_splits(con)
        snapshot_payee_directory(con)
        if keep_details:
            attach_month(con, lake, month, {PAYMENT_DETAILS: PAYMENT_DETAILS})
        else:
            snapshot_payment_details(con, configured=catalog.payment_details is not None)
        tables = ["track_splits", "payee_directory"] + ([] if keep_details else [PAYMENT_DETAILS])
        rows = publish_month(
            con,
            lake,
            month,
            tables,
            {"input_fingerprint": fingerprint(catalog.files), "configured": catalog.payment_details is not None},
            private=frozenset({PAYMENT_DETAILS}),
        )
        verdicts = tracks_by_verdict(con)
        invalid = preview(invalid_tracks(con, limit=20))
        no_email = directory_without_email(con)
        details = details_summary(con)
        unpayable = preview(unpayable_details(con))
    yield dg.MaterializeResult(
        asset_key="track_splits",
        metadata={
            "dagster/row_count": rows["track_splits"],
            "tracks_in_catalog": catalog.tracks,
            "tracks_by_verdict": dg.MetadataValue.md(markdown_table(["verdict", "tracks"], verdicts)),
            "invalid_tracks": invalid,
            **lake_metadata(warehouse.lake(), "track_splits", month),
        },
    )
    yield dg.MaterializeResult(
        asset_key="payee_directory",
        metadata={
            "dagster/row_count": rows["payee_directory"],
            "payees_without_email": no_email,
            **lake_metadata(warehouse.lake(), "payee_directory", month),
        },
    )
    yield dg.MaterializeResult(
        asset_key=PAYMENT_DETAILS,
        metadata=payment_details_metadata(lake, month, details, unpayable, kept=keep_details),
        data_version=dg.DataVersion(lake.content_hash(PAYMENT_DETAILS, month)),
    )


def payment_details_metadata(lake, month: str, details, unpayable: dg.MetadataValue, kept: bool) -> dict:
    """What the UI shows of the month's payment details: counts, and the invalid rows with their
    reason and a masked IBAN (never a full one)."""
    configured = bool(lake.manifest(PAYMENT_DETAILS, month).get("configured"))
    if not configured:
        status = ("not configured: the landing zone has no catalog/payment_details.parquet, so nobody is "
                  "held and there is no payment batch (statements pay as under rules v2)")
    elif kept:
        status = f"{month} is closed: its payment details stay as the month was closed with them"
    else:
        status = (f"{details.valid:,} payees with valid details, {details.invalid:,} with invalid ones and "
                  f"{details.payees_without_details:,} without any: a payee due a payment without valid "
                  "details is held")
    return {
        "status": status,
        "dagster/row_count": lake.manifest(PAYMENT_DETAILS, month)["rows"],
        "valid_details": details.valid,
        "invalid_details": details.invalid,
        "payees_without_details": details.payees_without_details,
        "problems": dg.MetadataValue.md(
            markdown_table(["problem", "payees"], details.problems) if details.problems else "none"
        ),
        "invalid_rows": unpayable,
        **lake_metadata(lake, PAYMENT_DETAILS, month),
    }


@monthly_asset(
    group=PAYOUTS,
    code_version=CODE_VERSION,
    deps=["segment_pools", "track_earnings", "track_splits", "payee_directory"],
)
def payee_earnings(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    duckdb: DuckDBEngine,
    payout_rules: PayoutRulesResource,
) -> dg.MaterializeResult:
    """Each payee's cents per segment under the three models: user-centric (uc_cents), pro-rata
    (pr_cents) and artist-centric, ACPS v1 (acps_cents); payout_model chooses which one pays.

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
            {
                "segment_pools": "segment_pools",
                "track_earnings": "track_earnings",
                "track_splits": "track_splits",
                "payee_directory": "payee_directory",
            },
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
        comparison = compare_models(con, names_view="payee_directory", paying_model=rules.payout_model)
    return dg.MaterializeResult(
        metadata={
            **status,
            "dagster/row_count": rows["payee_earnings"],
            **comparison_metadata(comparison),
            **_rules_metadata(rules),
            **lake_metadata(lake, "payee_earnings", month),
        },
        data_version=dg.DataVersion(lake.content_hash("payee_earnings", month)),
    )


def _payee_changes_table(changes: list[PayeeChange], model: str = "user_centric", baseline: str = "pro_rata") -> str:
    """Payees under ``model`` against ``baseline`` (payout models, e.g. ``artist_centric``), in EUR."""
    short = MODEL_ABBREVIATIONS
    change = f"{short[model]} - {short[baseline]}"
    return markdown_table(
        ["payee", model_label(model), model_label(baseline), change, f"{change} (% of {short[baseline]})"],
        [(payee_label(c.payee_id, c.name), eur(c.cents), eur(c.baseline_cents), eur(c.change_cents), c.change_percent)
         for c in changes],
    )


def comparison_metadata(c: ModelComparison) -> dict:
    """User-centric, pro-rata and artist-centric side by side, as the UI shows them on
    payee_earnings: which model pays (``c.paying_model``), text in EUR with names, and the figures
    a reviewer plots across months as numbers."""
    paying = c.paying_model
    held = c.held_cents(paying)
    moved = c.moved_share_points
    models = markdown_table(
        ["", *(f"{model_label(m)} (pays)" if m == paying else model_label(m) for m in PAYOUT_MODELS)],
        [
            ("total", *(eur(c.total_cents(m)) for m in PAYOUT_MODELS)),
            (f"top 1% of payees ({c.top_1pct_payees:,}) hold",
             *(percent(c.top_1pct_cents(m), c.total_cents(m)) for m in PAYOUT_MODELS)),
            ("held, never paid", *(eur(c.held_cents(m)) for m in PAYOUT_MODELS)),
        ],
    )
    summary = (
        f"Paid under **{model_label(paying)}** (payout_model {md_text(paying)}): **{eur(c.total_cents(paying))}** "
        f"over {c.payees:,} payees; the other two models are comparisons.\n\n"
        f"{models}\n\n"
        f"The top 1% of payees by pro-rata ({c.top_1pct_payees:,}) hold "
        f"{percent(c.pr_top_1pct_cents, c.pr_total_cents)} of the money pro-rata and "
        f"{percent(c.pr_top_1pct_uc_cents, c.uc_total_cents)} user-centric: "
        + (f"**{moved:.2f} points** move to other payees under user-centric." if moved is not None else "no money.")
        + f"\n\nHeld, never paid ({model_label(paying)}): "
        + (", ".join(f"{md_text(p)} {eur(cents)}" for p, cents in c.special_under(paying).items()) or "nothing")
        + f" ({percent(held, c.total_cents(paying))} of the money)."
    )
    top = markdown_table(
        ["payee", "user-centric", "pro-rata", "UC - PR", "artist-centric", "ACPS - UC"],
        [(payee_label(p, c.names.get(p)), eur(uc), eur(pr), eur(uc - pr), eur(acps), eur(acps - uc))
         for p, uc, pr, acps in c.top_payees],
    )
    return {
        "summary": dg.MetadataValue.md(summary),
        "paying_model": dg.MetadataValue.text(paying),
        "uc_total_cents": dg.MetadataValue.int(c.uc_total_cents),
        "pr_total_cents": dg.MetadataValue.int(c.pr_total_cents),
        "acps_total_cents": dg.MetadataValue.int(c.acps_total_cents),
        "payees": dg.MetadataValue.int(c.payees),
        "top_1pct_share_uc": plottable(percent_number(c.uc_top_1pct_cents, c.uc_total_cents)),
        "top_1pct_share_pr": plottable(percent_number(c.pr_top_1pct_cents, c.pr_total_cents)),
        "top_1pct_share_acps": plottable(percent_number(c.acps_top_1pct_cents, c.acps_total_cents)),
        "uc_pr_moved_share_points": plottable(moved),
        "held_share": plottable(percent_number(held, c.total_cents(paying))),
        "suspense_uc_cents": dg.MetadataValue.int(c.special_cents.get("__suspense__", (0, 0, 0))[0]),
        "unallocated_uc_cents": dg.MetadataValue.int(c.special_cents.get("__unallocated__", (0, 0, 0))[0]),
        "top_payees": dg.MetadataValue.md(top),
        "winners_and_losers": dg.MetadataValue.md(
            f"**Gain most under user-centric** (EUR)\n\n{_payee_changes_table(c.winners)}\n\n"
            f"**Lose most under user-centric** (EUR)\n\n{_payee_changes_table(c.losers)}"
        ),
        "acps_winners_and_losers": dg.MetadataValue.md(
            "**Gain most under artist-centric**, against user-centric (EUR)\n\n"
            f"{_payee_changes_table(c.acps_winners, 'artist_centric', 'user_centric')}\n\n"
            "**Lose most under artist-centric**, against user-centric (EUR)\n\n"
            f"{_payee_changes_table(c.acps_losers, 'artist_centric', 'user_centric')}"
        ),
    }


PREVIOUS_MONTH = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)
# The statements open from last month's statements (a self-dependency, so a backfill runs the
# months in order). The adjustments are computed in the same step from the month's earnings and the
# closed months' records (restatements, which partition mappings cannot express), not from last
# month's statements: with that edge too, an asset backfill of M..N would add N+1 to the
# adjustments only (the child of N's statements) and Dagster refuses a backfill that targets the two
# keys of this non-subsettable step differently (it did, for 2026-09..2026-10, once 2026-11 existed).
ADJUSTMENT_DEPS = ["payee_earnings", "payee_directory", PAYMENT_DETAILS, "landing_month"]
STATEMENT_DEPS = [*ADJUSTMENT_DEPS, dg.AssetDep(STATEMENTS, partition_mapping=PREVIOUS_MONTH)]


@dg.multi_asset(
    specs=[
        _spec(
            STATEMENTS,
            "Each payee's monthly statement: opening balance, earned (under payout_model, user-centric by "
            "default), adjustment, pro-rata, ACPS, paid, "
            "closing balance, hold reason. Opening balances are last month's closings (zero in the first "
            "month); the adjustment is the sum of this month's payee_adjustments. When opening + earned + "
            "adjustment reaches payout_threshold_cents it is all paid, unless the payee is held (no or "
            "invalid payment details, or a returned payment: hold_reason); otherwise it carries over, "
            "negative included (a clawback). __suspense__ and __unallocated__ are never paid. "
            "Never rewritten once the month is closed.",
            deps=STATEMENT_DEPS,
        ),
        _spec(
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
                    **lake_metadata(lake, asset, month),
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
        names = attach_payee_names(con, lake, month)
        summary = summarize_statements(con)
        carried = carried_over(con, names)
        negative = carried_over(con, names, negative=True)
        adjustments = largest_adjustments(con, names)
        by_source = adjustments_by_source(con)
        held = held_payees(con, names)
        held_by_reason = holds_by_reason(con)
    common = _rules_metadata(rules)
    adjustments_table = dg.MetadataValue.md(
        markdown_table(
            ["payee", "source month", "reason", "adjustment"],
            [(payee_label(p, name), source, reason, eur(amount)) for p, name, source, reason, amount in adjustments],
        )
        if adjustments
        else "No adjustments this month."
    )
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
                _balances_table(carried) if carried else "Every payee with a positive balance is paid."
            ),
            **({"negative_balances_carried": dg.MetadataValue.md(_balances_table(negative))} if negative else {}),
            "payees_held": summary.due_held_payees,
            "held_for_payment_cents": summary.due_held_cents,
            "held": dg.MetadataValue.md(_held_markdown(draft["payment_details"]["configured"], held_by_reason, held)),
            "adjustments": adjustments_table,
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
            "largest_adjustments": adjustments_table,
            **lake_metadata(lake, ADJUSTMENTS, month),
            **common,
        },
        data_version=dg.DataVersion(lake.content_hash(ADJUSTMENTS, month)),
    )


def statement_summary_markdown(s: StatementSummary, threshold_cents: int) -> str:
    """The month's statements in one paragraph, in EUR."""
    return (
        f"**Paid {eur(s.paid_cents)}** to {s.paid_payees:,} of {s.payees:,} payees.\n\n"
        f"Carried over below the {eur(threshold_cents)} threshold: {eur(s.carried_cents)} "
        f"for {s.carried_payees:,} payees. Held although due (no valid payment details, or a returned "
        f"payment): {eur(s.due_held_cents)} for {s.due_held_payees:,} payees. Negative balances (clawbacks, recovered from future "
        f"earnings): {s.negative_payees:,}, {eur(s.negative_cents)}.\n\n"
        f"Opening balances {eur(s.opening_cents)}, earned {eur(s.earned_cents)}, adjustments "
        f"{eur(s.adjustment_cents)} for {s.adjusted_payees:,} payees. Held for {md_text('__suspense__')} and "
        f"{md_text('__unallocated__')}, never paid: {eur(s.held_cents)}."
    )


def _held_markdown(configured: bool, by_reason: list[tuple], held: list[tuple]) -> str:
    """Who is due a payment but held (rule 10), by reason and largest first, in EUR."""
    if not configured:
        return "Payment details are not managed for this landing zone (no catalog/payment_details.parquet): nobody is held."
    if not by_reason:
        return "Nobody is held: every payee due a payment has valid payment details."
    return (
        markdown_table(["hold reason", "payees", "held"], [(r, f"{n:,}", eur(c)) for r, n, c in by_reason])
        + "\n\n**Largest held balances** (paid once the payee's details are valid)\n\n"
        + markdown_table(["payee", "hold reason", "balance"], [(payee_label(p, name), r, eur(c)) for p, name, r, c in held])
    )


def _balances_table(rows: list[tuple]) -> str:
    return markdown_table(
        ["payee", "opening", "earned", "adjustment", "closing (carried over)"],
        [(payee_label(p, name), eur(o), eur(e), eur(a), eur(c)) for p, name, o, e, a, c in rows],
    )


def adjustment_audit(audit: list[dict], by_source: list[tuple]) -> str:
    """For each restated month: who restated it, the landing files that changed, what it posts."""
    if not audit:
        return "No closed month was restated: nothing to adjust."
    totals = {source: row for source, *row in by_source}
    parts = [
        markdown_table(
            ["source month", "closed at", "restated by run", "restated at", "landing at close -> now", "payees",
             "net", "credits", "debits"],
            [
                (a["source_month"], a["closed_at"], Markdown(f"[{a['restated_by_run'][:8]}](/runs/{a['restated_by_run']})"),
                 a["restated_at"], f"{a['landing_at_close']} -> {a['landing_now']}", totals[a["source_month"]][0],
                 eur(totals[a["source_month"]][1]), eur(totals[a["source_month"]][2]),
                 eur(totals[a["source_month"]][3]))
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

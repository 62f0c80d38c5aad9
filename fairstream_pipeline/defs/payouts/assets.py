"""Payout assets: the month's catalog (rights splits, payees, bank details) and the payee earnings
under the three models; the payouts group's code version, specs and rules. The counted streams and
segment pools are ``allocation.py``'s, the statements ``statements.py``'s."""

from datetime import datetime, timezone

import dagster as dg

from fairstream_pipeline.defs.metadata import (
    contract_failures,
    lake_metadata,
    plottable,
    preview,
)
from fairstream_pipeline.defs.resources import (
    DuckDBEngine,
    LandingZoneResource,
    PayoutRulesResource,
    WarehouseResource,
)
from fairstream_pipeline.defs.retries import READ_LANDING_ZONE
from fairstream_pipeline.defs.specs import monthly_asset, monthly_spec
from fairstream_pipeline.lib.ingestion.monthly_tables import ingest_catalog, snapshot_payee_directory
from fairstream_pipeline.lib.lake.tables import attach_month, publish_month
from fairstream_pipeline.lib.ingestion.landing_files import fingerprint
from fairstream_pipeline.lib.markdown import markdown_table
from fairstream_pipeline.lib.assets import (
    EARNINGS,
    LANDING_MONTH,
    PAYEE_DIRECTORY,
    PAYMENT_DETAILS,
    SEGMENT_POOLS,
    TRACK_EARNINGS,
    TRACK_SPLITS,
)
from fairstream_pipeline.lib.payments.details import (
    details_summary,
    snapshot_payment_details,
    unpayable_details,
)
from fairstream_pipeline.lib.payouts.earnings_markdown import (
    acps_winners_and_losers,
    models_summary,
    top_payees_table,
    winners_and_losers,
)
from fairstream_pipeline.lib.payouts.engine import pay_payees, validate_splits
from fairstream_pipeline.lib.format import percent_number
from fairstream_pipeline.lib.payouts.report import (
    ModelComparison,
    compare_models,
    directory_without_email,
    invalid_tracks,
    tracks_by_verdict,
)
from fairstream_pipeline.lib.payouts.rules import RULES_VERSION, SUSPENSE, UNALLOCATED, PayoutRules
from fairstream_pipeline.lib.close.period_close import ClosedMonth, closed_month

CATALOG, PAYOUTS, PAYMENTS = "catalog", "payouts", "payments"
CODE_VERSION = f"payout-rules-{RULES_VERSION}"


def payout_spec(key: str, description: str, deps: list, group: str = PAYOUTS) -> dg.AssetSpec:
    return monthly_spec(key, description, deps, group=group, code_version=CODE_VERSION)


def rules_metadata(rules: PayoutRules) -> dict:
    """The rules a step ran under, as the UI shows them."""
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
        payout_spec(
            TRACK_SPLITS,
            "The month's rights splits, each row with its track's verdict (valid, or why not). "
            "Tracks with invalid or missing splits pay `__suspense__`.",
            deps=[LANDING_MONTH],
            group=CATALOG,
        ),
        payout_spec(
            PAYEE_DIRECTORY,
            "The payees (id, name, email) as the catalog listed them when the month was computed.",
            deps=[LANDING_MONTH],
            group=CATALOG,
        ),
        payout_spec(
            PAYMENT_DETAILS,
            "The payees' bank details (optional catalog/payment_details.parquet) as the month uses them, "
            "each row validated (IBAN checksum, country and length; BIC valid and of the IBAN's country): "
            "a payee due a payment without a valid row is held (rule 10). Personal data: mode 0600, IBANs "
            "masked in the UI. Never rewritten once the month is closed: the batch pays these details.",
            deps=[LANDING_MONTH],
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
        tables = [TRACK_SPLITS, PAYEE_DIRECTORY] + ([] if keep_details else [PAYMENT_DETAILS])
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
        asset_key=TRACK_SPLITS,
        metadata={
            "dagster/row_count": rows[TRACK_SPLITS],
            "tracks_in_catalog": catalog.tracks,
            "tracks_by_verdict": dg.MetadataValue.md(markdown_table(["verdict", "tracks"], verdicts)),
            "invalid_tracks": invalid,
            **lake_metadata(warehouse.lake(), TRACK_SPLITS, month),
        },
    )
    yield dg.MaterializeResult(
        asset_key=PAYEE_DIRECTORY,
        metadata={
            "dagster/row_count": rows[PAYEE_DIRECTORY],
            "payees_without_email": no_email,
            **lake_metadata(warehouse.lake(), PAYEE_DIRECTORY, month),
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
    deps=[SEGMENT_POOLS, TRACK_EARNINGS, TRACK_SPLITS, PAYEE_DIRECTORY],
)
def payee_earnings(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    duckdb: DuckDBEngine,
    payout_rules: PayoutRulesResource,
) -> dg.MaterializeResult:
    """Each payee's cents per segment under the three models: user-centric (uc_cents), pro-rata
    (pr_cents) and artist-centric, ACPS v1 (acps_cents); payout_model chooses which one pays.

    Track money is split by the rights splits (invalid splits pay ``__suspense__``), then rounded to
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
                "segment_pools": SEGMENT_POOLS,
                "track_earnings": TRACK_EARNINGS,
                "track_splits": TRACK_SPLITS,
                "payee_directory": PAYEE_DIRECTORY,
            },
        )
        pay_payees(con)
        rows = publish_month(
            con,
            lake,
            month,
            [EARNINGS],
            {
                "rules": rules.as_dict(),
                # The audit of a restatement: which run computed these figures, when, from which files.
                "run_id": context.run.run_id,
                "computed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "input_fingerprint": lake.manifest(LANDING_MONTH, month)["input_fingerprint"],
            },
        )
        comparison = compare_models(con, names_view="payee_directory", paying_model=rules.payout_model)
    return dg.MaterializeResult(
        metadata={
            **status,
            "dagster/row_count": rows[EARNINGS],
            **comparison_metadata(comparison),
            **rules_metadata(rules),
            **lake_metadata(lake, EARNINGS, month),
        },
        data_version=dg.DataVersion(lake.content_hash(EARNINGS, month)),
    )


def comparison_metadata(c: ModelComparison) -> dict:
    """User-centric, pro-rata and artist-centric side by side, as the UI shows them on
    payee_earnings: which model pays (``c.paying_model``), text in EUR with names, and the figures
    a reviewer plots across months as numbers."""
    paying = c.paying_model
    held = c.held_cents(paying)
    return {
        "summary": dg.MetadataValue.md(models_summary(c)),
        "paying_model": dg.MetadataValue.text(paying),
        "uc_total_cents": dg.MetadataValue.int(c.uc_total_cents),
        "pr_total_cents": dg.MetadataValue.int(c.pr_total_cents),
        "acps_total_cents": dg.MetadataValue.int(c.acps_total_cents),
        "payees": dg.MetadataValue.int(c.payees),
        "top_1pct_share_uc": plottable(percent_number(c.uc_top_1pct_cents, c.uc_total_cents)),
        "top_1pct_share_pr": plottable(percent_number(c.pr_top_1pct_cents, c.pr_total_cents)),
        "top_1pct_share_acps": plottable(percent_number(c.acps_top_1pct_cents, c.acps_total_cents)),
        "uc_pr_moved_share_points": plottable(c.moved_share_points),
        "held_share": plottable(percent_number(held, c.total_cents(paying))),
        "suspense_uc_cents": dg.MetadataValue.int(c.special_cents.get(SUSPENSE, (0, 0, 0))[0]),
        "unallocated_uc_cents": dg.MetadataValue.int(c.special_cents.get(UNALLOCATED, (0, 0, 0))[0]),
        "top_payees": dg.MetadataValue.md(top_payees_table(c)),
        "winners_and_losers": dg.MetadataValue.md(winners_and_losers(c)),
        "acps_winners_and_losers": dg.MetadataValue.md(acps_winners_and_losers(c)),
    }

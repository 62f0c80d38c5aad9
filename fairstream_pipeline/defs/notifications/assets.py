"""Notification assets: the month's statement emails, the app-database publication, the outbox.

Without an app database (FAIRSTREAM_DATABASE_URL empty) ``published_statements`` and
``statement_outbox`` record no materialization: they log a warning and record an observation with
the status ``NOT_CONFIGURED`` instead, and the run still succeeds. ``statement_outbox`` is then
skipped in a run that also holds ``published_statements``, so that step records the outbox's
observation too. Nor does ``publish_closed_months`` request them (``publishing_condition``).
"""

from collections.abc import Iterator

import dagster as dg

from fairstream_pipeline.defs.metadata import lake_metadata, markdown_table
from fairstream_pipeline.defs.notifications.resources import DB_NOT_CONFIGURED
from fairstream_pipeline.defs.resources import (
    AppDatabaseResource,
    DuckDBEngine,
    WarehouseResource,
)
from fairstream_pipeline.defs.retries import database_write_retries
from fairstream_pipeline.defs.specs import monthly_asset
from fairstream_pipeline.lib.app_db.store import (
    ClosedStatementsDiffer,
    enqueue_messages,
    publish_closed_statements,
)
from fairstream_pipeline.lib.assets import (
    ADJUSTMENTS,
    CLOSE,
    PAYEE_DIRECTORY,
    PUBLISHED_STATEMENTS,
    STATEMENTS,
    STATEMENT_NOTIFICATIONS,
    STATEMENT_OUTBOX,
)
from fairstream_pipeline.lib.close.ledger import attach_ledger
from fairstream_pipeline.lib.close.period_close import close_record
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.lake.tables import attach_month
from fairstream_pipeline.lib.markdown import md_text
from fairstream_pipeline.lib.notifications import outbox_queue as queue
from fairstream_pipeline.lib.notifications.closed_statements import publication_sources, rendered_message_batches
from fairstream_pipeline.lib.notifications.statement_build import build_messages
from fairstream_pipeline.lib.notifications.statement_email import STATEMENT_CSV_FOLDER
from fairstream_pipeline.settings import get_settings

NOTIFICATIONS = "notifications"
# The closed month: its statements and adjustments, and its statement lines as closed (period_close
# holds payee_earnings as they were at the close; the live payee_earnings may since be restated).
STATEMENT_INPUTS = {
    "payee_statements": STATEMENTS,
    "payee_adjustments": ADJUSTMENTS,
    "closed_earnings": CLOSE,
    "payee_directory": PAYEE_DIRECTORY,
}
CLOSED_DEPS = [CLOSE, STATEMENTS, ADJUSTMENTS, PAYEE_DIRECTORY]
# A month closed by a run that did not also publish it (`--select period_close`, the UI's
# Materialize on period_close) is published by publish_closed_months, the automation sensor:
# requested when a dependency (only period_close, for the first two assets) was updated by a run
# that did not include the asset. Runs that close and publish together request nothing more.
AFTER_CLOSE = (
    dg.AutomationCondition.any_deps_updated().allow(dg.AssetSelection.assets(CLOSE)).since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after period_close")
AFTER_PUBLICATION = (
    dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
).with_label("after the statements are rendered and published")
NOT_CONFIGURED = f"{DB_NOT_CONFIGURED}, nothing was written"


def publishing_condition(spec: dg.AssetSpec, database_configured: bool) -> dg.AssetSpec:
    """``spec`` without its automation condition if it writes to the app database and there is none
    when the code location loads (the loader, ``definitions.py``, applies it): there is then nothing
    for publish_closed_months to publish or queue. (A run that skips these assets would leave
    period_close "updated since last handled", and a monthly_payout_job run records no asset
    selection for executed_with_root_target to see, so every month would get a second, empty run.)"""
    if database_configured or spec.key.to_user_string() not in (PUBLISHED_STATEMENTS, STATEMENT_OUTBOX):
        return spec
    return spec.replace_attributes(automation_condition=None)


OUTBOX_NEEDS_PUBLICATION = "statement_outbox needs published_statements, which was not written"


def not_configured(
    context: dg.AssetExecutionContext, asset: str, description: str | None = None
) -> dg.AssetObservation:
    """Warn that ``asset`` wrote nothing, and the observation that says so in its history."""
    context.log.warning(f"{asset}: {NOT_CONFIGURED}; no materialization recorded")
    return dg.AssetObservation(
        asset_key=asset,
        partition=context.partition_key,
        description=description or NOT_CONFIGURED,
        metadata={"status": NOT_CONFIGURED},
    )


def _closed(context: dg.AssetExecutionContext, lake: Lake) -> dict:
    """The close record of the month; statements are published and emailed only once it is closed."""
    record = close_record(lake, context.partition_key)
    if record is None:
        raise dg.Failure(
            description=(
                f"{context.partition_key} is open (a draft): its statements are published and emailed only "
                f"once it is closed; close it first (period_close)"
            ),
            allow_retries=False,
        )
    return record


@monthly_asset(
    group=NOTIFICATIONS,
    code_version="statement-email-v3",
    deps=CLOSED_DEPS,
    automation_condition=AFTER_CLOSE,
)
def statement_notifications(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, duckdb: DuckDBEngine
) -> dg.MaterializeResult:
    """One statement email per payee with a statement in the closed month: text and HTML bodies
    with the amount earned and the model that paid it, the other two models' figures beside it,
    opening and closing balances, each adjustment with its source month, and whether a payment was
    made, plus a CSV of the statement lines. Payees without an email are no_address. Rendered once,
    at the close, a batch of payees at a time, the batches shared out among a process per core
    (``statement_build``): memory never holds the month's messages."""
    month, lake = context.partition_key, warehouse.lake()
    record = _closed(context, lake)
    if lake.exists(STATEMENT_NOTIFICATIONS, month) and (
        lake.manifest(STATEMENT_NOTIFICATIONS, month).get("closed_at") == record["closed_at"]
    ):
        status = f"{month} is closed (at {record['closed_at']}): its statement emails were rendered at the close"
        context.log.info(status)
        return dg.MaterializeResult(
            metadata={
                "status": status,
                "dagster/row_count": lake.manifest(STATEMENT_NOTIFICATIONS, month)["rows"],
                **lake_metadata(lake, STATEMENT_NOTIFICATIONS, month),
            },
            data_version=dg.DataVersion(lake.content_hash(STATEMENT_NOTIFICATIONS, month)),
        )
    threshold = record["rules"]["payout_threshold_cents"]
    domain = get_settings().message_id_domain
    with duckdb.connect() as con:
        attach_month(con, lake, month, STATEMENT_INPUTS)
        attach_ledger(con, lake, month)
        with lake.write_partition(STATEMENT_NOTIFICATIONS, month) as out:
            built = build_messages(con, month, threshold, domain, out.file(), out.staging_dir)
            out.manifest.update(rows=built.rows, closed_at=record["closed_at"])
    example = built.example
    return dg.MaterializeResult(
        metadata={
            "status": f"rendered at the close of {month}",
            "dagster/row_count": built.rows,
            "to_send": built.to_send,
            "no_address": built.no_address,
            "example": dg.MetadataValue.md(
                f"**{md_text(example.subject)}** to `{example.payee_id}`\n\n```\n{example.body_text}\n```"
                if example
                else "none"
            ),
            **lake_metadata(lake, STATEMENT_NOTIFICATIONS, month),
            "statement_csvs": dg.MetadataValue.path(
                str(lake.partition_dir(STATEMENT_NOTIFICATIONS, month) / STATEMENT_CSV_FOLDER)
            ),
        },
        data_version=dg.DataVersion(lake.content_hash(STATEMENT_NOTIFICATIONS, month)),
    )


@monthly_asset(
    group=NOTIFICATIONS,
    code_version="published-statements-v3",
    kinds={"postgres"},
    deps=CLOSED_DEPS,
    automation_condition=AFTER_CLOSE,
    output_required=False,
)
def published_statements(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    duckdb: DuckDBEngine,
    app_database: AppDatabaseResource,
) -> Iterator[dg.MaterializeResult | dg.AssetObservation]:
    """The closed month's statements, statement lines and adjustment lines (with their source
    month) in the application database, for the artist dashboard. Written once, at the close:
    closed statements never change, and the database refuses to update or delete them. Streamed
    from DuckDB and bulk-loaded with COPY. Without an app database: no materialization, an
    observation "not configured" (here and on the outbox)."""
    with database_write_retries(context):
        month, lake = context.partition_key, warehouse.lake()
        record = _closed(context, lake)
        if not app_database.configured:
            yield not_configured(context, PUBLISHED_STATEMENTS)
            yield not_configured(context, STATEMENT_OUTBOX, f"{NOT_CONFIGURED} ({OUTBOX_NEEDS_PUBLICATION})")
            return
        with duckdb.connect() as con:
            attach_month(con, lake, month, STATEMENT_INPUTS)
            attach_ledger(con, lake, month)
            sources = publication_sources(
                con, month, record["closed_at"], record["statements_hash"], record["rules"]["rules_version"]
            )
            revision = app_database.ensure_schema()
            try:
                with app_database.transaction() as cursor:
                    counts = publish_closed_statements(cursor, month, record["statements_hash"], *sources)
            except ClosedStatementsDiffer as exc:
                raise dg.Failure(description=str(exc), allow_retries=False) from exc
        status = (
            f"{month} is closed (at {record['closed_at']}): already published at the close, nothing was written"
            if counts["already_published"]
            else f"published the statements closed at {record['closed_at']}"
        )
        yield dg.MaterializeResult(
            metadata={
                "status": status,
                "statements": counts["statements"],
                "statement_lines": counts["lines"],
                "adjustment_lines": counts["adjustments"],
                "replaced_draft_rows": counts["replaced_drafts"],
                "schema_revision": revision,
            }
        )


@monthly_asset(
    group=NOTIFICATIONS,
    code_version="statement-outbox-v1",
    kinds={"postgres"},
    deps=[STATEMENT_NOTIFICATIONS, PUBLISHED_STATEMENTS],
    automation_condition=AFTER_PUBLICATION,
    output_required=False,
)
def statement_outbox(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    app_database: AppDatabaseResource,
) -> Iterator[dg.MaterializeResult | dg.AssetObservation]:
    """The closed month's statement emails queued in the application database's outbox, one per
    payee and kind. Re-materializing never queues a message twice; the send_statement_emails job,
    started by outbox_sensor, delivers them outside the payout run. A draft is never queued.
    Streamed from the Parquet file and bulk-loaded with COPY. Without an app database: no
    materialization, an observation "not configured"."""
    with database_write_retries(context):
        month, lake = context.partition_key, warehouse.lake()
        _closed(context, lake)
        if not app_database.configured:
            yield not_configured(context, STATEMENT_OUTBOX)
            return
        rows = lake.row_count(STATEMENT_NOTIFICATIONS, month)
        app_database.ensure_schema()
        with app_database.transaction() as cursor:
            new = enqueue_messages(cursor, rendered_message_batches(lake, month))
            by_status = queue.month_counts(cursor, month)
        statuses_present = sorted((status, n) for status, n in by_status.items() if n)
        yield dg.MaterializeResult(
            metadata={
                "status": "queued",
                "enqueued": new,
                "already_queued": rows - new,
                "no_address": by_status["no_address"],
                "by_status": dg.MetadataValue.md(markdown_table(["status", "messages"], statuses_present)),
            }
        )


publish_closed_months = dg.AutomationConditionSensorDefinition(
    "publish_closed_months",
    target=dg.AssetSelection.groups(NOTIFICATIONS),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description=(
        "Publishes and emails a month closed by a run that did not publish it (`dagster asset "
        "materialize --select period_close`, or Materialize on period_close in the UI): renders its "
        "statement emails, writes the app database and queues the outbox. Runs that close and "
        "publish together (monthly_payout_job, close_month_job, --select '*') request nothing."
    ),
)

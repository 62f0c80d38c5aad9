"""Notification assets: the month's statement emails, the app-database publication, the outbox."""

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from fairstream_pipeline.defs.metadata import OWNERS, markdown_table
from fairstream_pipeline.defs.partitions import monthly_partitions
from fairstream_pipeline.defs.resources import AppDatabaseResource, DuckDBEngine, WarehouseResource
from fairstream_pipeline.defs.retries import WRITE_DATABASE
from fairstream_pipeline.lib.app_db.store import (
    OUTBOX_COLUMNS,
    enqueue_messages,
    outbox_counts,
    publish_statements,
)
from fairstream_pipeline.lib.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake_tables import attach_month
from fairstream_pipeline.lib.notifications import Statement, render_statement
from fairstream_pipeline.lib.payout_rules import RULES_VERSION, SPECIAL_PAYEES
from fairstream_pipeline.settings import setting

NOTIFICATIONS = "notifications"
STATEMENT_INPUTS = {name: name for name in ("payee_statements", "payee_earnings", "payee_directory")}
MESSAGE_COLUMNS = OUTBOX_COLUMNS  # the lake table has the outbox's columns, in the same order
NOT_CONFIGURED = "not configured: FAIRSTREAM_DATABASE_URL is empty, nothing was written"


def _statements(con) -> list[tuple]:
    """The month's statements of real payees: id, name, email, the five amounts, and the lines."""
    special = ", ".join(f"'{p}'" for p in SPECIAL_PAYEES)
    rows = con.execute(
        f"""
        SELECT s.payee_id, d.name, d.email, s.opening_balance_cents, s.earned_cents, s.pro_rata_cents,
               s.paid_cents, s.closing_balance_cents,
               coalesce(list((e.country, e.tier, e.uc_cents, e.pr_cents) ORDER BY e.country, e.tier)
                        FILTER (WHERE e.payee_id IS NOT NULL), [])
        FROM payee_statements s
        LEFT JOIN payee_directory d USING (payee_id)
        LEFT JOIN payee_earnings e USING (payee_id)
        WHERE s.payee_id NOT IN ({special})
        GROUP BY ALL ORDER BY s.payee_id
        """
    ).fetchall()
    return rows


@dg.asset(
    partitions_def=monthly_partitions,
    deps=["payee_statements", "payee_earnings", "payee_directory"],
    group_name=NOTIFICATIONS,
    owners=OWNERS,
    kinds={"duckdb", "parquet"},
    code_version="statement-email-v1",
)
def statement_notifications(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, duckdb: DuckDBEngine
) -> dg.MaterializeResult:
    """One statement email per payee with a statement this month: text and HTML bodies with the
    amount earned, the pro-rata figure beside it, opening and closing balances and whether a
    payment was made, plus a CSV of the statement lines. Payees without an email are no_address."""
    month, lake = context.partition_key, warehouse.lake()
    threshold = lake.manifest("payee_statements", month)["rules"]["payout_threshold_cents"]
    domain = setting("FAIRSTREAM_MESSAGE_ID_DOMAIN")
    with duckdb.connect() as con:
        attach_month(con, lake, month, STATEMENT_INPUTS)
        messages = [
            render_statement(
                Statement(month, payee, name, email, *amounts, lines=tuple(tuple(line) for line in lines)),
                threshold,
                domain,
            )
            for payee, name, email, *amounts, lines in _statements(con)
        ]
        columns = list(zip(*[m.as_row() for m in messages])) if messages else [[] for _ in MESSAGE_COLUMNS]
        table = pa.table({name: pa.array(values, pa.string()) for name, values in zip(MESSAGE_COLUMNS, columns)})
        with lake.write_partition("statement_notifications", month) as out:
            pq.write_table(table, out.file(), compression="zstd")
            out.manifest.update(rows=len(messages))
    no_address = sum(1 for m in messages if m.recipient is None)
    example = next((m for m in messages if m.recipient), None)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(messages),
            "to_send": len(messages) - no_address,
            "no_address": no_address,
            "example": dg.MetadataValue.md(
                f"**{example.subject}** to `{example.payee_id}`\n\n```\n{example.body_text}\n```" if example else "none"
            ),
        }
    )


@dg.asset(
    partitions_def=monthly_partitions,
    deps=["payee_statements", "payee_earnings", "payee_directory"],
    group_name=NOTIFICATIONS,
    owners=OWNERS,
    kinds={"postgres"},
    retry_policy=WRITE_DATABASE,
    code_version="published-statements-v1",
)
def published_statements(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    duckdb: DuckDBEngine,
    app_database: AppDatabaseResource,
) -> dg.MaterializeResult:
    """The month's statements and statement lines in the application database, for the artist
    dashboard. Upserted by (month, payee): re-running a month replaces its rows, never duplicates."""
    month, lake = context.partition_key, warehouse.lake()
    if not app_database.configured:
        context.log.warning(f"published_statements: {NOT_CONFIGURED}")
        return dg.MaterializeResult(metadata={"status": NOT_CONFIGURED})
    with duckdb.connect() as con:
        attach_month(con, lake, month, STATEMENT_INPUTS)
        statements = con.execute(
            f"""SELECT '{month}', s.payee_id, d.name, d.email, s.opening_balance_cents, s.earned_cents,
                       s.pro_rata_cents, s.paid_cents, s.closing_balance_cents, '{RULES_VERSION}'
                FROM payee_statements s LEFT JOIN payee_directory d USING (payee_id) ORDER BY s.payee_id"""
        ).fetchall()
        lines = con.execute(
            f"""SELECT '{month}', e.payee_id, country, tier, uc_cents, pr_cents
                FROM payee_earnings e SEMI JOIN payee_statements s USING (payee_id)
                ORDER BY e.payee_id, country, tier"""
        ).fetchall()
    revision = app_database.ensure_schema()
    with app_database.transaction() as cursor:
        counts = publish_statements(cursor, month, statements, lines)
    return dg.MaterializeResult(
        metadata={
            "status": "published",
            "statements": counts["statements"],
            "statement_lines": counts["lines"],
            "removed_payees": counts["removed"],
            "schema_revision": revision,
        }
    )


@dg.asset(
    partitions_def=monthly_partitions,
    deps=["statement_notifications", "published_statements"],
    group_name=NOTIFICATIONS,
    owners=OWNERS,
    kinds={"postgres"},
    retry_policy=WRITE_DATABASE,
    code_version="statement-outbox-v1",
)
def statement_outbox(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    duckdb: DuckDBEngine,
    app_database: AppDatabaseResource,
) -> dg.MaterializeResult:
    """The month's statement emails queued in the application database's outbox, one per payee
    and kind. Re-materializing never queues a message twice; the send_statement_emails job,
    started by outbox_sensor, delivers them outside the payout run."""
    month, lake = context.partition_key, warehouse.lake()
    if not app_database.configured:
        context.log.warning(f"statement_outbox: {NOT_CONFIGURED}")
        return dg.MaterializeResult(metadata={"status": NOT_CONFIGURED})
    with duckdb.connect() as con:
        rows = con.execute(
            f"SELECT * FROM {read_parquet(lake.parquet_glob('statement_notifications', month))} ORDER BY payee_id"
        ).fetchall()
    app_database.ensure_schema()
    with app_database.transaction() as cursor:
        new = enqueue_messages(cursor, rows)
        by_status = outbox_counts(cursor, month)
    return dg.MaterializeResult(
        metadata={
            "status": "queued",
            "enqueued": new,
            "already_queued": len(rows) - new,
            "no_address": by_status.get("no_address", 0),
            "by_status": dg.MetadataValue.md(markdown_table(["status", "messages"], sorted(by_status.items()))),
        }
    )

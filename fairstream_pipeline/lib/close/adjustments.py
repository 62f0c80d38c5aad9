"""The adjustments that closed months post to the next open month.

Recomputing a closed month K (a late file, a re-run) restates ``payee_earnings/month=K``. The next
statements computed for an open month N post, per payee and closed month K < N:

    adjustment = restated earned(K) - posted(K)
    posted(K)  = K's closed earned_cents + every adjustment for K posted in closed months between K and N

so each difference is posted once, and a re-run without new data posts nothing. A payment of a
closed month K that the bank returned posts the same way, once: its amount back to the payee, in the
next open month, with the reason ``returned_payment`` (the late-data ones have ``late_data``).
"""

from __future__ import annotations

import duckdb

from fairstream_pipeline.lib.assets import ADJUSTMENTS, CLOSE, EARNINGS, STATEMENTS
from fairstream_pipeline.lib.close.ledger import LATE_DATA, RETURNED_PAYMENT, earned_column, posted_adjustments_sql
from fairstream_pipeline.lib.close.period_close import closed_months_before
from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet, sql_string
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.payments.standing import months_with_payment_status, returned_payments_sql


def adjustment_sources(lake: Lake, closed: list[str], posted_for: dict[str, list[str]]) -> list[str]:
    """The closed months K whose adjustment may be non-zero: those whose earnings changed since
    their close, and those already adjusted once (a restatement can come back to the closed
    figures, which then needs a reversal). ``posted_for`` maps each closed month to the source
    months its adjustments posted. Every other closed month has restated == posted: only zeros."""
    adjusted = {k for sources in posted_for.values() for k in sources}
    return [
        k
        for k in closed
        if k in adjusted or lake.content_hash(EARNINGS, k) != lake.manifest(CLOSE, k)["earnings_hash"]
    ]


def post_adjustments(con: duckdb.DuckDBPyConnection, lake: Lake, first_month: str, month: str) -> None:
    """Create ``payee_adjustments(payee_id, source_month, cents, reason)`` for the open ``month``: only
    non-zero rows, from the closed months before it (one read of each one's manifests).

    ``late_data``: a restated closed month's earnings minus what was posted for it. ``returned_payment``:
    a closed month's payments the bank returned minus what was already credited back for them."""
    closed = closed_months_before(lake, first_month, month)
    posted_for = {
        c: lake.manifest(ADJUSTMENTS, c).get("source_months", []) for c in closed if lake.exists(ADJUSTMENTS, c)
    }
    sources = adjustment_sources(lake, closed, posted_for)
    returned_sources = months_with_payment_status(lake, closed)
    restated = [
        f"SELECT {sql_string(k)} AS source_month, payee_id, sum({earned_column(lake, k)})::BIGINT AS cents "
        f"FROM {read_parquet(lake.parquet_glob(EARNINGS, k))} GROUP BY payee_id"
        for k in sources
    ]
    returned = [
        f"SELECT {sql_string(k)} AS source_month, payee_id, sum(cents)::BIGINT AS cents "
        f"FROM ({returned_payments_sql(lake, k)}) GROUP BY payee_id"
        for k in returned_sources
    ]
    posted = [
        f"SELECT {sql_string(k)} AS source_month, payee_id, earned_cents::BIGINT AS cents, '{LATE_DATA}' AS reason "
        f"FROM {read_parquet(lake.parquet_glob(STATEMENTS, k))}"
        for k in sources
    ]
    wanted = set(sources) | set(returned_sources)
    posted += [
        f"SELECT source_month, payee_id, cents, reason FROM ({posted_adjustments_sql(lake, c)}) "
        f"WHERE source_month IN ({', '.join(sql_string(k) for k in sorted(wanted))})"
        for c, posted_sources in posted_for.items()
        if set(posted_sources) & wanted
    ]
    empty = "SELECT NULL::VARCHAR AS source_month, NULL::VARCHAR AS payee_id, NULL::BIGINT AS cents WHERE false"
    empty_posted = empty.replace(" WHERE false", ", NULL::VARCHAR AS reason WHERE false")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE payee_adjustments AS
        WITH due AS (
            SELECT source_month, payee_id, cents, '{LATE_DATA}' AS reason FROM ({' UNION ALL '.join(restated) or empty})
            UNION ALL
            SELECT source_month, payee_id, cents, '{RETURNED_PAYMENT}' FROM ({' UNION ALL '.join(returned) or empty})
        ),
        posted AS (
            SELECT source_month, payee_id, reason, sum(cents) AS cents
            FROM ({' UNION ALL '.join(posted) or empty_posted}) GROUP BY ALL
        )
        SELECT payee_id, source_month, cents, reason FROM (
            SELECT payee_id, source_month, reason,
                   (coalesce(d.cents, 0) - coalesce(p.cents, 0))::BIGINT AS cents
            FROM (SELECT source_month, payee_id, reason, sum(cents) AS cents FROM due GROUP BY ALL) d
            FULL OUTER JOIN posted p USING (source_month, payee_id, reason)
        )
        WHERE cents <> 0
        ORDER BY payee_id, source_month, reason
        """
    ).fetchall()

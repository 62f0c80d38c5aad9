"""Ledger invariants of period close, for any sequence of closes, late files and re-runs.

Earnings are written straight into the lake (the payout engine has its own tests); the statements
are rolled by the real ``roll_statements`` asset, invoked directly, and months are closed by the
same library call that ``period_close`` makes.
"""

from __future__ import annotations

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairstream_pipeline.defs.payouts.statements import roll_statements_month
from fairstream_pipeline.defs.resources import DuckDBEngine, PayoutRulesResource, WarehouseResource
from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.months import following_month
from fairstream_pipeline.lib.close.period_close import close_month

FIRST = "2024-01"  # the first partition (FAIRSTREAM_FIRST_MONTH is unset in tests)
PAYEES = ("A", "B", "C", "__suspense__")
earnings_strategy = st.dictionaries(st.sampled_from(PAYEES), st.integers(0, 3_000), max_size=len(PAYEES))


class Books:
    """A lake whose months are computed, closed and restated by the real code."""

    def __init__(self, root, threshold: int):
        self.lake = Lake(root)
        self.resources = {
            "warehouse": WarehouseResource(root=str(root)),
            "duckdb": DuckDBEngine(memory_limit="512MB", threads=1),
            "payout_rules": PayoutRulesResource(payout_threshold_cents=threshold),
        }
        self.versions: dict[str, int] = {}

    def deliver(self, month: str, earnings: dict[str, int]) -> None:
        """New landing files for the month, and the earnings computed from them."""
        version = self.versions[month] = self.versions.get(month, 0) + 1
        with self.lake.write_partition("landing_month", month) as out:
            files = pa.table({"relative_path": [f"listening_events/date={month}-01/v{version}.parquet"],
                              "num_rows": [1], "size_bytes": [version], "mtime_ns": [version]})
            pq.write_table(files, out.file())
            out.manifest.update(rows=1, input_fingerprint=f"{month}-v{version}")
        rows = [("FR", "paid", payee, cents, cents) for payee, cents in sorted(earnings.items()) if cents]
        table = pa.table(
            {name: pa.array([r[i] for r in rows], kind) for i, (name, kind) in enumerate(
                [("country", pa.string()), ("tier", pa.string()), ("payee_id", pa.string()),
                 ("uc_cents", pa.int64()), ("pr_cents", pa.int64())])}
        )
        with self.lake.write_partition("payee_earnings", month) as out:
            pq.write_table(table, out.file())
            out.manifest.update(rows=len(rows), run_id=f"run-{month}-v{version}", computed_at="",
                                input_fingerprint=f"{month}-v{version}")

    def roll(self, month: str) -> None:
        """What `--select payee_statements` does for the month (a no-op once it is closed)."""
        list(roll_statements_month(dg.build_asset_context(partition_key=month), **self.resources))

    def close(self, month: str) -> None:
        with duckdb.connect() as con:
            close_month(con, self.lake, month, {"closed_at": f"{month}-close", "closed_by_run": "test",
                                                "rules": {}, "checks_verified": []})

    def table(self, asset: str, month: str, columns: str) -> list[tuple]:
        return duckdb.sql(f"SELECT {columns} FROM {read_parquet(self.lake.parquet_glob(asset, month))} ORDER BY ALL").fetchall()

    def statements(self, month: str) -> dict[str, tuple[int, int, int, int, int]]:
        rows = self.table("payee_statements", month, "payee_id, opening_balance_cents, earned_cents, "
                          "adjustment_cents, paid_cents, closing_balance_cents")
        return {payee: tuple(rest) for payee, *rest in rows}

    def earned(self, month: str) -> dict[str, int]:
        return dict(
            duckdb.sql(
                f"SELECT payee_id, sum(uc_cents)::BIGINT FROM {read_parquet(self.lake.parquet_glob('payee_earnings', month))} "
                "GROUP BY payee_id"
            ).fetchall()
        )


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), threshold=st.integers(0, 2_500), closed_months=st.integers(1, 4))
def test_every_difference_is_posted_once_and_closed_months_never_change(tmp_path_factory, data, threshold, closed_months):
    books = Books(tmp_path_factory.mktemp("lake"), threshold)
    months = [FIRST]
    for _ in range(closed_months):
        months.append(following_month(months[-1]))
    closed: list[str] = []
    as_closed: dict[str, tuple[dict, bytes]] = {}
    for month in months:
        # Late files for some closed months, and re-runs of others, before this month is computed.
        for late in data.draw(st.lists(st.sampled_from(closed), unique=True), label="restated") if closed else []:
            books.deliver(late, data.draw(earnings_strategy, label=f"restated {late}"))
            books.roll(late)  # a re-run of a closed month changes nothing of its statements
        books.deliver(month, data.draw(earnings_strategy, label=f"earnings {month}"))
        books.roll(month)
        if month == months[-1]:
            break  # the last month stays open: the draft that posts the final adjustments
        books.close(month)
        closed.append(month)
        as_closed[month] = (
            books.statements(month),
            (books.lake.partition_dir("payee_statements", month) / "part-00000.parquet").read_bytes(),
        )

    for month, (statements, raw) in as_closed.items():
        assert books.statements(month) == statements, month
        assert (books.lake.partition_dir("payee_statements", month) / "part-00000.parquet").read_bytes() == raw

    for payee in PAYEES:
        posted = sum(
            books.statements(m).get(payee, (0, 0, 0, 0, 0))[1] + books.statements(m).get(payee, (0, 0, 0, 0, 0))[2]
            for m in months
        )
        assert posted == sum(books.earned(m).get(payee, 0) for m in months), payee

    # Balances roll: each statement opens with the previous closing, and special payees are never paid.
    previous: dict[str, int] = {}
    for month in months:
        statements = books.statements(month)
        for payee, (opening, earned, adjustment, paid, closing) in statements.items():
            assert opening == previous.get(payee, 0)
            assert opening + earned + adjustment - paid == closing
            assert paid == 0 or (payee != "__suspense__" and closing == 0 and paid >= max(threshold, 1))
        previous = {payee: s[4] for payee, s in statements.items()}

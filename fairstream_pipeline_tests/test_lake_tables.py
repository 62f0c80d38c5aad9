"""The lake's table helpers: pico-cent columns kept exact, tables written and read back, previews."""

from __future__ import annotations

import ast
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

import fairstream_pipeline.lib.lake as lake_package
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.lake.tables import (
    PICO_COLUMNS,
    Rows,
    attach_month,
    file_rows,
    first_rows,
    lake_columns,
    lake_view,
    publish_month,
    write_table,
)

MONTH = "2024-01"
BIG_PICO = 123_456_789_012_345_678_901_234  # beyond BIGINT: HUGEINT in DuckDB, DECIMAL(38,0) on disk


def test_the_column_map_names_the_pico_cent_columns():
    assert lake_columns("track_earnings") == (
        "* REPLACE (CAST(uc_pico AS DECIMAL(38,0)) AS uc_pico, CAST(pr_pico AS DECIMAL(38,0)) AS pr_pico, "
        "CAST(acps_pico AS DECIMAL(38,0)) AS acps_pico, CAST(acps_weight AS DECIMAL(38,0)) AS acps_weight)"
    )
    # a month written before ACPS v1 has no acps columns: only the pico columns it has are cast
    assert lake_view("track_earnings", {"track_id", "uc_pico", "pr_pico"}) == (
        "* REPLACE (CAST(uc_pico AS HUGEINT) AS uc_pico, CAST(pr_pico AS HUGEINT) AS pr_pico)"
    )
    assert lake_columns("payee_earnings") == lake_view("payee_earnings") == "*"
    assert PICO_COLUMNS["user_streams"] == ("contribution_pico",)
    assert sorted(PICO_COLUMNS) == ["segment_pools", "track_earnings", "track_shares", "user_streams"]


def test_the_lake_does_not_import_the_payout_engine():
    for path in Path(lake_package.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        modules |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not any(m and m.startswith("fairstream_pipeline.lib.payouts") for m in modules), path.name


def test_write_table_keeps_pico_cents_exact_and_counts_rows(tmp_path):
    con = duckdb.connect()
    con.execute(
        f"""CREATE TABLE track_shares AS SELECT * FROM (VALUES
               ('FR', 'paid', 't2', 3::BIGINT, {BIG_PICO}::HUGEINT),
               ('FR', 'paid', 't1', 1, 7)) t(country, tier, track_id, streams, direct_pico)"""
    )
    assert write_table(con, "track_shares", tmp_path / "shares.parquet") == 2
    table = pq.read_table(tmp_path / "shares.parquet")
    assert table.schema.field("direct_pico").type == pa.decimal128(38, 0)
    assert table.column("track_id").to_pylist() == ["t1", "t2"]  # ORDER BY ALL
    assert [int(v) for v in table.column("direct_pico").to_pylist()] == [7, BIG_PICO]


def test_publish_month_then_attach_month_round_trips(tmp_path):
    lake = Lake(tmp_path / "warehouse")
    con = duckdb.connect()
    con.execute(
        f"""CREATE TABLE track_earnings AS SELECT * FROM (VALUES
               ('FR', 'paid', 't1', 2::BIGINT, {BIG_PICO}::HUGEINT, 5::HUGEINT))
           t(country, tier, track_id, streams, uc_pico, pr_pico)"""
    )
    con.execute("CREATE TABLE flagged_users AS SELECT 'bot' AS user_id, 6::BIGINT AS worst_day_streams")
    rows = publish_month(con, lake, MONTH, ["track_earnings", "flagged_users"], {"note": "test"})
    assert rows == {"track_earnings": 1, "flagged_users": 1}
    assert lake.manifest("track_earnings", MONTH)["note"] == "test"
    assert lake.manifest("flagged_users", MONTH)["rows"] == 1
    reader = duckdb.connect()
    attach_month(reader, lake, MONTH, {"earnings": "track_earnings"})
    assert reader.execute("SELECT track_id, uc_pico, typeof(uc_pico) FROM earnings").fetchall() == [
        ("t1", BIG_PICO, "HUGEINT")
    ]


def test_first_rows_and_file_rows(tmp_path):
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES (2, 'b'), (1, 'a'), (3, 'c')) v(n, s)")
    assert first_rows(con, "SELECT * FROM t ORDER BY n", limit=2) == Rows(["n", "s"], [(1, "a"), (2, "b")])
    assert first_rows(con, "SELECT s FROM t WHERE n > 5") == Rows(["s"], [])
    pq.write_table(pa.table({"country": ["DE", "FR"], "net_cents": [5, 7]}), tmp_path / "part.parquet")
    assert file_rows(con, tmp_path / "part.parquet") == Rows(["country", "net_cents"], [("DE", 5), ("FR", 7)])
    assert file_rows(con, tmp_path / "part.parquet", limit=1).rows == [("DE", 5)]

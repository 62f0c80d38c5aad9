"""What a finance reviewer reads in the UI: money in EUR, names beside ids, ids read literally,
winners and losers of user-centric, carried-over payees, and numbers that plot."""

from __future__ import annotations

import dagster as dg
import pytest

from fairstream_pipeline.lib.markdown import Markdown, markdown_table, md_text, payee_label
from fairstream_pipeline.lib.payouts.report import eur, percent_number
from fairstream_pipeline.defs.payments.resources import PaymentsResource
from fairstream_pipeline.defs.resources import (
    AppDatabaseResource,
    DuckDBEngine,
    LandingZoneResource,
    PayoutRulesResource,
    WarehouseResource,
)
from fairstream_pipeline_tests.landing_builders import Landing
from fairstream_pipeline_tests.payout_cases import MonthCase, Plays

MONTH = "2024-01"

# A heavy listener (u1) of the hit, a devoted fan (u2) of a niche artist, a light listener (u3) of
# a gem, and a track whose splits are invalid (half its rights), which pays __suspense__.
# User-centric: u1's 7,000 cents over 10 streams: hit 6,300, orphan 700 (suspense); u2: niche 7,000;
# u3: gem 700. Pro-rata: 14,700 cents over 12 streams = 1,225 a stream: hit 11,025, the rest 1,225.
CASE = MonthCase(
    users=[("u1", "paid", "FR", 10_000), ("u2", "paid", "FR", 10_000), ("u3", "paid", "FR", 1_000)],
    plays=[Plays("u1", "hit", 9), Plays("u1", "orphan", 1), Plays("u2", "niche", 1), Plays("u3", "gem", 1)],
    splits={
        "hit": [("P_HIT", 1_000_000)],
        "niche": [("P_NICHE", 1_000_000)],
        "gem": [("P_GEM", 1_000_000)],
        "orphan": [("P_ORPHAN", 500_000)],
    },
)


def test_markdown_reads_ids_literally():
    assert md_text("__suspense__") == r"\_\_suspense\_\_"
    assert md_text("a|b\nc") == r"a\|b c"
    assert md_text(Markdown("[run](/runs/1)")) == "[run](/runs/1)"
    assert payee_label("P1", "Nina Sky") == "Nina Sky (P1)"
    assert payee_label("P1", None) == "P1"
    assert markdown_table(["payee", "EUR"], [("__unallocated__", eur(-1_500))]) == (
        "| payee | EUR |\n|---|---|\n| \\_\\_unallocated\\_\\_ | -15.00 EUR |"
    )


def test_money_and_percentages():
    assert eur(2_164_657) == "21,646.57 EUR"
    assert eur(-5) == "-0.05 EUR"
    assert eur(0) == "0.00 EUR"
    assert percent_number(5_193, 10_000) == 51.93
    assert percent_number(1, 3) == 33.33  # truncated, like the text
    assert percent_number(-1, 3) == -33.33
    assert percent_number(1, 0) is None


@pytest.fixture(scope="module")
def reviewed_month(tmp_path_factory, definitions):
    """The case's month materialized once for every test of the module (they only read it)."""
    root = tmp_path_factory.mktemp("reviewed")
    CASE.write(Landing(root / "landing"), MONTH)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        assets=[*definitions.assets, *definitions.asset_checks],
        partition_key=MONTH,
        resources={
            "landing_zone": LandingZoneResource(root=str(root / "landing")),
            "warehouse": WarehouseResource(root=str(root / "warehouse")),
            "duckdb": DuckDBEngine(memory_limit="1GB", threads=2, temp_directory=str(root / "spill")),
            "payout_rules": PayoutRulesResource(),
            "app_database": AppDatabaseResource(),
            "payments": PaymentsResource(),
        },
        instance=instance,
        raise_on_error=False,
    )
    assert result.success
    yield result
    instance.dispose()


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    (event,) = [
        e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)
    ]
    return event.materialization.metadata


def test_payee_earnings_shows_money_names_and_winners(reviewed_month):
    metadata = _metadata(reviewed_month, "payee_earnings")
    # Numbers that plot across months.
    assert metadata["uc_total_cents"] == dg.IntMetadataValue(14_700)
    assert metadata["top_1pct_share_pr"] == dg.FloatMetadataValue(75.0)  # P_HIT: 11,025 of 14,700
    assert metadata["top_1pct_share_uc"] == dg.FloatMetadataValue(47.61)  # P_NICHE: 7,000 of 14,700
    assert metadata["uc_pr_moved_share_points"] == dg.FloatMetadataValue(32.15)  # 75.00 - 42.85 (P_HIT's 6,300)
    assert metadata["held_share"] == dg.FloatMetadataValue(4.76)  # 700 in suspense
    summary = metadata["summary"].value
    assert "**147.00 EUR** over 3 payees" in summary
    assert "**32.15 points** move to other payees" in summary
    assert r"\_\_suspense\_\_ 7.00 EUR" in summary
    winners = metadata["winners_and_losers"].value
    gain, lose = winners.split("**Lose most under user-centric**")
    assert "| Payee P\\_NICHE (P\\_NICHE) | 70.00 EUR | 12.25 EUR | 57.75 EUR | 471.42% |" in gain
    assert lose.index("Payee P\\_HIT (P\\_HIT) | 63.00 EUR | 110.25 EUR | -47.25 EUR | -42.85% |") < lose.index(
        "Payee P\\_GEM (P\\_GEM) | 7.00 EUR | 12.25 EUR | -5.25 EUR | -42.85% |"
    )
    assert "| Payee P\\_NICHE (P\\_NICHE) | 70.00 EUR | 12.25 EUR | 57.75 EUR |" in metadata["top_payees"].value


def test_statements_show_paid_carried_over_and_held(reviewed_month):
    metadata = _metadata(reviewed_month, "payee_statements")
    assert metadata["paid_cents"] == dg.IntMetadataValue(13_300)  # P_HIT 6,300 + P_NICHE 7,000
    assert metadata["payees_carried_over"] == dg.IntMetadataValue(1)
    assert metadata["carried_over_cents"] == dg.IntMetadataValue(700)
    assert metadata["held_cents"] == dg.IntMetadataValue(700)
    summary = metadata["summary"].value
    assert "**Paid 133.00 EUR** to 2 of 3 payees." in summary
    assert "below the 10.00 EUR threshold: 7.00 EUR for 1 payees" in summary
    assert "| Payee P\\_GEM (P\\_GEM) | 0.00 EUR | 7.00 EUR | 0.00 EUR | 7.00 EUR |" in metadata["carried_over"].value
    assert metadata["adjustments"].value == "No adjustments this month."


def test_every_lake_asset_shows_its_columns_and_files(reviewed_month):
    events = reviewed_month.get_asset_materialization_events()
    lake_assets = {e.asset_key.path[-1] for e in events} - {"published_statements", "statement_outbox"}
    assert {"clean_plays", "payee_earnings", "payee_statements", "period_close", "statement_notifications"} <= lake_assets
    for asset in sorted(lake_assets):
        metadata = _metadata(reviewed_month, asset)
        assert isinstance(metadata["dagster/column_schema"], dg.TableSchemaMetadataValue), asset
        assert isinstance(metadata["parquet"], dg.PathMetadataValue), asset
        assert f"/{asset}/month={MONTH}/v-" in metadata["parquet"].path, asset
    columns = {c.name: c for c in _metadata(reviewed_month, "payee_earnings")["dagster/column_schema"].schema.columns}
    assert list(columns) == ["country", "tier", "payee_id", "uc_cents", "pr_cents"]
    assert columns["uc_cents"].type == "BIGINT"
    assert columns["uc_cents"].description == "User-centric earnings in cents."
    plays = [c.name for c in _metadata(reviewed_month, "clean_plays")["dagster/column_schema"].schema.columns]
    assert plays == ["user_index", "track_index", "uncatalogued_track_id", "ms_played", "bucket", "day"]


def test_suspense_share_shows_threshold_and_tracks(reviewed_month):
    (evaluation,) = [
        e for e in reviewed_month.get_asset_check_evaluations() if e.check_name == "suspense_share"
    ]
    assert not evaluation.passed  # 7.00 of 147.00 EUR = 4.76% > 1%
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    assert evaluation.description == (
        r"7.00 EUR in \_\_suspense\_\_: 4.76% of the month's user-centric money (warns above 1%)"
    )
    metadata = evaluation.metadata
    assert metadata["suspense_share"] == dg.FloatMetadataValue(4.76)
    assert metadata["threshold"] == dg.TextMetadataValue("1%")
    assert "| orphan | shares sum to 500000, not 1000000 | 1 | 7.00 EUR |" in metadata["biggest_tracks_in_suspense"].value


def test_statement_csvs_are_files_beside_the_emails(reviewed_month):
    from pathlib import Path

    import duckdb

    metadata = _metadata(reviewed_month, "statement_notifications")
    folder = Path(metadata["statement_csvs"].path)
    parquet = Path(metadata["parquet"].path)
    attachments = dict(
        duckdb.sql(
            f"SELECT attachment_name, attachment_csv FROM read_parquet('{parquet}/*.parquet', hive_partitioning = false)"
        ).fetchall()
    )
    assert sorted(p.name for p in folder.iterdir()) == sorted(attachments) == [
        f"fairstream-statement-{MONTH}-P_{name}.csv" for name in ("GEM", "HIT", "NICHE")  # P_ORPHAN earns nothing: no statement
    ]
    for name, text in attachments.items():
        assert (folder / name).read_text(encoding="utf-8") == text
    assert attachments[f"fairstream-statement-{MONTH}-P_HIT.csv"] == (
        "month,payee_id,line,source_month,country,tier,uc_cents,pr_cents,reason\n"
        "2024-01,P_HIT,earned,2024-01,FR,paid,6300,11025,\n"
    )

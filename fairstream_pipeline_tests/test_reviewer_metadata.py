"""What a finance reviewer reads in the UI: money in EUR, names beside ids, ids read literally,
the three models side by side and the one that pays, winners and losers of user-centric (against
pro-rata) and of artist-centric (against user-centric), carried-over payees, and numbers that plot."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest

from fairstream_pipeline.lib.markdown import Markdown, markdown_table, md_text, payee_label
from fairstream_pipeline.lib.format import eur, percent_number
from fairstream_pipeline.lib.payouts.report import compare_models
from fairstream_pipeline.defs.payouts.assets import comparison_metadata
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
    # The three models side by side. No artist attributes, no active plays, every user under the
    # cap: ACPS weighs streams as pro-rata does, so it pays as pro-rata here.
    assert metadata["paying_model"] == dg.TextMetadataValue("user_centric")
    assert metadata["pr_total_cents"] == dg.IntMetadataValue(14_700)
    assert metadata["acps_total_cents"] == dg.IntMetadataValue(14_700)
    assert metadata["top_1pct_share_acps"] == dg.FloatMetadataValue(75.0)  # P_HIT: 11,025 of 14,700
    assert "Paid under **user-centric** (payout_model user\\_centric): **147.00 EUR** over 3 payees" in summary
    assert "|  | user-centric (pays) | pro-rata | artist-centric |" in summary
    assert "| total | 147.00 EUR | 147.00 EUR | 147.00 EUR |" in summary
    assert "| top 1% of payees (1) hold | 47.61% | 75.00% | 75.00% |" in summary
    assert "| held, never paid | 7.00 EUR | 12.25 EUR | 12.25 EUR |" in summary
    acps = metadata["acps_winners_and_losers"].value
    gain, lose = acps.split("**Lose most under artist-centric**")
    assert "| payee | artist-centric | user-centric | ACPS - UC | ACPS - UC (% of UC) |" in gain
    assert gain.index("| Payee P\\_HIT (P\\_HIT) | 110.25 EUR | 63.00 EUR | 47.25 EUR | 75.00% |") < gain.index(
        "| Payee P\\_GEM (P\\_GEM) | 12.25 EUR | 7.00 EUR | 5.25 EUR | 75.00% |"
    )
    assert "| Payee P\\_NICHE (P\\_NICHE) | 12.25 EUR | 70.00 EUR | -57.75 EUR | -82.50% |" in lose
    assert "P\\_NICHE" not in gain and "P\\_HIT" not in lose


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
    assert list(columns) == ["country", "tier", "payee_id", "uc_cents", "pr_cents", "acps_cents"]
    assert columns["uc_cents"].type == "BIGINT"
    assert columns["uc_cents"].description == "User-centric earnings in cents."
    plays = [c.name for c in _metadata(reviewed_month, "clean_plays")["dagster/column_schema"].schema.columns]
    assert plays == ["user_index", "track_index", "uncatalogued_track_id", "ms_played", "active", "bucket", "day"]


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
        "month,payee_id,line,source_month,country,tier,uc_cents,pr_cents,acps_cents,reason\n"
        "2024-01,P_HIT,earned,2024-01,FR,paid,6300,11025,11025,\n"
    )


def test_the_three_models_side_by_side_under_the_paying_model():
    """compare_models and comparison_metadata on hand-made payee_earnings, paid artist-centric:
    every figure exact, money in EUR with names, the plotted ones numbers."""
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE payee_earnings AS SELECT * FROM (VALUES
               ('FR', 'paid', 'A', 5000::BIGINT, 3000::BIGINT, 4000::BIGINT),
               ('DE', 'paid', 'A', 1000, 1000, 1000),
               ('FR', 'paid', 'B', 1000, 4000, 3000),
               ('FR', 'paid', 'C', 2000, 1000, 500),
               ('FR', 'paid', 'D', 0, 0, 2500),
               ('FR', 'paid', '__suspense__', 1000, 1000, 1000),
               ('FR', 'paid', '__unallocated__', 0, 0, 10))
           t(country, tier, payee_id, uc_cents, pr_cents, acps_cents)"""
    )
    con.execute("CREATE TABLE names AS SELECT * FROM (VALUES ('A', 'Ana'), ('D', 'Dee')) t(payee_id, name)")
    c = compare_models(con, top=3, names_view="names", paying_model="artist_centric")
    assert (c.uc_total_cents, c.pr_total_cents, c.acps_total_cents) == (10_000, 10_000, 12_010)
    assert (c.payees, c.top_1pct_payees) == (4, 1)
    # The top 1% (one payee) under each model: A by UC (6,000), B by PR (4,000), A by ACPS (5,000).
    assert (c.uc_top_1pct_cents, c.pr_top_1pct_cents, c.acps_top_1pct_cents) == (6_000, 4_000, 5_000)
    assert c.special_cents == {"__suspense__": (1000, 1000, 1000), "__unallocated__": (0, 0, 10)}
    assert c.top_payees == [("A", 6000, 4000, 5000), ("B", 1000, 4000, 3000), ("D", 0, 0, 2500)]  # by ACPS
    assert [(w.payee_id, w.name, w.cents, w.baseline_cents) for w in c.acps_winners] == [
        ("D", "Dee", 2500, 0), ("B", None, 3000, 1000)
    ]
    assert [(w.payee_id, w.cents, w.baseline_cents) for w in c.acps_losers] == [("C", 500, 2000), ("A", 5000, 6000)]
    assert [(w.payee_id, w.cents, w.baseline_cents) for w in c.winners] == [("A", 6000, 4000), ("C", 2000, 1000)]

    metadata = comparison_metadata(c)
    assert metadata["paying_model"] == dg.MetadataValue.text("artist_centric")
    for key, cents in (("uc_total_cents", 10_000), ("pr_total_cents", 10_000), ("acps_total_cents", 12_010)):
        assert metadata[key] == dg.IntMetadataValue(cents), key
    assert metadata["top_1pct_share_uc"] == dg.FloatMetadataValue(60.0)
    assert metadata["top_1pct_share_pr"] == dg.FloatMetadataValue(40.0)
    assert metadata["top_1pct_share_acps"] == dg.FloatMetadataValue(41.63)  # 5,000 of 12,010, truncated
    assert metadata["held_share"] == dg.FloatMetadataValue(8.40)  # ACPS pays: 1,010 of 12,010
    summary = metadata["summary"].value
    assert summary.startswith(
        "Paid under **artist-centric** (payout_model artist\\_centric): **120.10 EUR** over 4 payees; "
        "the other two models are comparisons."
    )
    assert "|  | user-centric | pro-rata | artist-centric (pays) |" in summary
    assert "| total | 100.00 EUR | 100.00 EUR | 120.10 EUR |" in summary
    assert "| top 1% of payees (1) hold | 60.00% | 40.00% | 41.63% |" in summary
    assert "| held, never paid | 10.00 EUR | 10.00 EUR | 10.10 EUR |" in summary
    assert "Held, never paid (artist-centric): \\_\\_suspense\\_\\_ 10.00 EUR, \\_\\_unallocated\\_\\_ 0.10 EUR (8.40% of the money)." in summary
    assert metadata["top_payees"].value.splitlines()[2] == (
        "| Ana (A) | 60.00 EUR | 40.00 EUR | 20.00 EUR | 50.00 EUR | -10.00 EUR |"
    )
    gain, lose = metadata["acps_winners_and_losers"].value.split("**Lose most under artist-centric**")
    assert "| Dee (D) | 25.00 EUR | 0.00 EUR | 25.00 EUR | n/a |" in gain
    assert "| B | 30.00 EUR | 10.00 EUR | 20.00 EUR | 200.00% |" in gain
    assert lose.index("| C | 5.00 EUR | 20.00 EUR | -15.00 EUR | -75.00% |") < lose.index(
        "| Ana (A) | 50.00 EUR | 60.00 EUR | -10.00 EUR | -16.66% |"
    )
    assert "| Ana (A) | 60.00 EUR | 40.00 EUR | 20.00 EUR | 50.00% |" in metadata["winners_and_losers"].value
    with pytest.raises(ValueError, match="paying_model must be one of"):
        compare_models(con, paying_model="fair")


def test_fairstream_summary_prints_the_three_models_and_the_one_that_paid(reviewed_month, tmp_path):
    """``fairstream summary``'s text; a month computed before rules v4 (no acps_cents) says n/a."""
    import shutil
    from pathlib import Path

    import pyarrow.parquet as pq

    from fairstream_pipeline.lib.lake.storage import Lake
    from fairstream_pipeline.lib.close.month_summary import summarize_month

    parquet = Path(_metadata(reviewed_month, "payee_earnings")["parquet"].path)
    warehouse = next(p for p in parquet.parents if p.name == "payee_earnings").parent
    lines = summarize_month(Lake(warehouse), MONTH).splitlines()
    assert lines[3:5] == [
        "paid under: user-centric",
        "money: user-centric 147.00 EUR, pro-rata 147.00 EUR, artist-centric 147.00 EUR over 3 payees; "
        "top 1% (1) take 47.61% UC vs 75.00% PR vs 75.00% ACPS",
    ]
    top = lines.index("top payees by user-centric (UC / PR / ACPS, EUR):")
    assert lines[top - 1] == "held: __suspense__ 7.00 EUR (user-centric)"
    assert lines[top + 1] == f"  {'Payee P_NICHE (P_NICHE)':<40} {'70.00':>12} / {'12.25':>12} / {'12.25':>12}"
    assert lines[top + 2] == f"  {'Payee P_HIT (P_HIT)':<40} {'63.00':>12} / {'110.25':>12} / {'110.25':>12}"

    # The same month as rules v3 wrote it: payee_earnings without acps_cents.
    old = tmp_path / "warehouse"
    shutil.copytree(warehouse, old)
    for file in (old / parquet.relative_to(warehouse)).glob("*.parquet"):
        pq.write_table(pq.read_table(file).drop_columns(["acps_cents"]), file)
    lines = summarize_month(Lake(old), MONTH).splitlines()
    assert lines[3:5] == [
        "paid under: user-centric",
        "money: user-centric 147.00 EUR, pro-rata 147.00 EUR, artist-centric n/a (computed before rules v4) over "
        "3 payees; top 1% (1) take 47.61% UC vs 75.00% PR vs n/a ACPS",
    ]
    assert lines[top + 1] == f"  {'Payee P_NICHE (P_NICHE)':<40} {'70.00':>12} / {'12.25':>12} / {'n/a':>12}"

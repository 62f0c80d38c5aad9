"""The code location loads, validates, and has the expected shape."""

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from fairstream_pipeline.defs.partitions import monthly_partitions, partitions_from_settings


def test_definitions_load_and_validate(definitions):
    dg.Definitions.validate_loadable(definitions)


def test_expected_asset_keys(definitions):
    assert sorted(k.to_user_string() for k in definitions.resolve_all_asset_keys()) == [
        "ad_revenue",
        "billed_users",
        "clean_plays",
        "flagged_users",
        "landing_month",
        "payee_adjustments",
        "payee_directory",
        "payee_earnings",
        "payee_statements",
        "payment_batch",
        "payment_details",
        "payment_release",
        "payment_status",
        "period_close",
        "play_quarantine",
        "professional_artists",
        "published_statements",
        "segment_pools",
        "statement_notifications",
        "statement_outbox",
        "track_earnings",
        "track_splits",
        "user_streams",
    ]


def test_every_asset_shares_the_monthly_partitions_and_has_owner_kinds_and_description(definitions):
    graph = definitions.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.partitions_def == partitions_from_settings() == monthly_partitions, key
        assert node.owners == ["team:royalties"], key
        assert node.kinds, key
        assert node.description, key
        assert node.code_version, key


def test_the_monthly_job_computes_every_asset_and_check(definitions):
    """Every asset is in a named group, and monthly_payout_job runs them all with all their checks,
    but for the payment run's release and bank reports, which have jobs of their own."""
    graph = definitions.resolve_asset_graph()
    groups = {graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == {"ingestion", "catalog", "payouts", "close", "payments", "notifications"}
    job = definitions.resolve_job_def("monthly_payout_job")
    release, status = dg.AssetKey("payment_release"), dg.AssetKey("payment_status")
    assert job.asset_layer.selected_asset_keys == graph.get_all_asset_keys() - {release, status}
    assert job.asset_layer.asset_graph.asset_check_keys == graph.asset_check_keys
    for name, key in (("approve_payment_batch", release), ("ingest_payment_report", status)):
        assert definitions.resolve_job_def(name).asset_layer.selected_asset_keys == {key}
    assert release not in definitions.resolve_job_def("close_month_job").asset_layer.selected_asset_keys


def test_the_loader_puts_every_asset_check_job_and_schedule_on_the_first_month(monkeypatch):
    """FAIRSTREAM_FIRST_MONTH is read when the code location loads, not when a module is imported."""
    from fairstream_pipeline.definitions import defs

    monkeypatch.setenv("FAIRSTREAM_FIRST_MONTH", "2026-09")
    loaded = defs()
    graph = loaded.resolve_asset_graph()
    firsts = {graph.get(k).partitions_def.get_first_partition_key() for k in graph.get_all_asset_keys()}
    check_firsts = {graph.get_check_spec(k).partitions_def.get_first_partition_key() for k in graph.asset_check_keys
                    if graph.get_check_spec(k).partitions_def is not None}
    job = loaded.resolve_job_def("monthly_payout_job")
    schedule = loaded.resolve_schedule_def("monthly_payout_schedule")
    assert firsts == check_firsts == {"2026-09"}
    assert len([k for k in graph.asset_check_keys if graph.get_check_spec(k).partitions_def is not None]) >= 10
    assert job.partitions_def.get_first_partition_key() == "2026-09"
    assert schedule.job.partitions_def.get_first_partition_key() == "2026-09"
    assert monthly_partitions.get_first_partition_key() == "2024-01"  # the declaration is untouched


def test_partition_keys_are_closed_utc_months():
    keys = monthly_partitions.get_partition_keys()
    assert keys[0] == "2024-01"
    assert "2026-10" in keys
    assert all(len(k) == 7 and k[4] == "-" for k in keys)
    assert monthly_partitions.timezone == "UTC"


def test_first_month_must_be_a_month_key(monkeypatch):
    from fairstream_pipeline.lib.months import first_month

    monkeypatch.setenv("FAIRSTREAM_FIRST_MONTH", "2026-13")
    with pytest.raises(ValueError, match="FAIRSTREAM_FIRST_MONTH: '2026-13' is not a month key"):
        first_month()
    monkeypatch.setenv("FAIRSTREAM_FIRST_MONTH", "2025-02")
    assert first_month() == "2025-02"


def test_dg_check_defs_accepts_the_project(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    check = subprocess.run(
        [str(Path(sys.executable).parent / "dg"), "check", "defs"],
        cwd=Path(__file__).resolve().parents[1],
        env={"PATH": str(Path(sys.executable).parent), "DAGSTER_HOME": str(home), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "All definitions loaded successfully." in check.stdout + check.stderr


def test_months_must_be_closed_by_the_third(definitions):
    policy = definitions.resolve_asset_graph().get(dg.AssetKey("period_close")).freshness_policy
    assert policy.deadline_cron == "0 0 3 * *"
    assert policy.lower_bound_delta.days == 2
    assert policy.timezone == "UTC"


def test_resolving_the_sensors_does_not_warn_about_owners():
    """Dagster re-creates job-targeting sensors with ``owners=[]`` at every tick; the beta warning
    that causes is filtered, and no other warning comes from our definitions."""
    import warnings

    from fairstream_pipeline.definitions import defs as load_definitions

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        repository = load_definitions().get_repository_def()
        assert repository.sensor_defs
    assert [str(w.message) for w in caught if "owners" in str(w.message)] == []


def test_descriptions_show_special_payee_ids_literally(definitions):
    """The UI renders descriptions as Markdown, where ``__suspense__`` reads as a bold "suspense": in
    every asset, check, job, sensor and schedule description a ``__word__`` stands in backticks."""
    import re

    graph = definitions.resolve_asset_graph()
    repository = definitions.get_repository_def()
    descriptions = {
        **{f"asset {key.to_user_string()}": graph.get(key).description for key in graph.get_all_asset_keys()},
        **{f"check {key.to_user_string()}": graph.get(key).description for key in graph.asset_check_keys},
        **{f"job {job.name}": job.description for job in repository.get_all_jobs()},
        **{f"sensor {sensor.name}": sensor.description for sensor in repository.sensor_defs},
        **{f"schedule {schedule.name}": schedule.description for schedule in repository.schedule_defs},
    }
    assert len(descriptions) > 30
    code_span = re.compile(r"(`+).*?(?<!`)\1(?!`)", re.DOTALL)
    emphasized = {
        name: re.findall(r"__\w+__", code_span.sub("", text or "")) for name, text in descriptions.items()
    }
    assert {name: words for name, words in emphasized.items() if words} == {}

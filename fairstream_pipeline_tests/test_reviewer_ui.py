"""The reviewer's view in a real browser: Debian's Chromium driven by Playwright over the real
`dagster-webserver`, on a month run with the real `fairstream run` command.

Chromium is installed by `make test` (Debian's package ``chromium``); a missing browser fails
these tests, it never skips them.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import duckdb
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.markdown import payee_label
from fairstream_pipeline.sample import generate_month
from fairstream_pipeline_tests.dagster_services import BIN, GraphQL, GraphQLError, Service, free_port
from fairstream_pipeline_tests.test_cli_end_to_end import project_env

MONTH = "2026-09"
CHROMIUM = Path("/usr/bin/chromium")
EUR_WITH_SEPARATORS = re.compile(r"\b\d{1,3}(,\d{3})+\.\d{2} EUR\b")


@pytest.fixture(scope="module")
def reviewed_instance(tmp_path_factory):
    """A month run by `fairstream run` into an embedded instance, and a webserver on it."""
    root = tmp_path_factory.mktemp("reviewer-ui")
    generate_month(root / "landing", MONTH, users=300, seed=7)
    home = root / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = project_env(root / "landing", root / "warehouse", home)  # the first month is MONTH
    run = subprocess.run(
        [str(BIN / "fairstream"), "run", MONTH], env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    port = free_port()
    webserver = Service(
        "dagster-webserver",
        [str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        root / "webserver.log",
    )
    webserver.start(env)
    base = f"http://127.0.0.1:{port}"
    graphql = GraphQL(base)
    try:
        _wait(lambda: graphql("{ version }", timeout=5)["version"], webserver)
        graphql("mutation { setNuxSeen }")  # no "Join the Dagster community" dialog over the pages
        yield {"base": base, "graphql": graphql, "lake": Lake(root / "warehouse")}
    finally:
        webserver.stop()


def _wait(probe, service: Service, timeout: float = 90.0):
    import time

    started = time.monotonic()
    while True:
        assert service.exit_code() is None, service.tail(60)
        try:
            if probe():
                return
        except (OSError, GraphQLError):
            pass
        assert time.monotonic() - started < timeout, f"the webserver did not answer\n{service.tail(60)}"
        time.sleep(1)


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM.is_file(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium package"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser) -> Page:
    page = browser.new_page(viewport={"width": 1600, "height": 1400})
    yield page
    page.close()


def _open_events(page: Page, base: str, asset: str) -> None:
    """The asset's events for the month, with the latest materialization's metadata shown."""
    page.goto(f"{base}/assets/{asset}?view=events&partition={MONTH}")
    expect(page.get_by_text(re.compile(f"Partition {MONTH} materialized in run"))).to_be_visible(timeout=60_000)
    expect(page.get_by_text("dagster/row_count", exact=True).first).to_be_visible()


def _markdown_entry(page: Page, label: str) -> str:
    """The text of a metadata entry: inline, or in its "[Show Markdown]" dialog when long."""
    row = page.locator("tr").filter(has=page.get_by_text(label, exact=True)).first
    show = row.get_by_text("[Show Markdown]")
    if not show.count():
        return row.inner_text()
    show.first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    text = dialog.inner_text()
    page.keyboard.press("Escape")
    return text


def test_payee_earnings_reads_as_money(reviewed_instance, page):
    _open_events(page, reviewed_instance["base"], "payee_earnings")
    body = page.inner_text("body")
    assert "__suspense__" in body  # literally: not eaten by Markdown
    assert EUR_WITH_SEPARATORS.search(body), body[:3000]
    winners = _markdown_entry(page, "winners_and_losers")
    assert "Gain most under user-centric" in winners and "Lose most under user-centric" in winners
    assert re.search(r"\(artist-\d+\)\s+[\d,]+\.\d{2} EUR", winners), winners[:2000]


def test_statements_show_a_carried_over_payee(reviewed_instance, page):
    lake = reviewed_instance["lake"]
    (payee, name), = duckdb.sql(
        f"""SELECT s.payee_id, d.name
            FROM read_parquet('{lake.parquet_glob("payee_statements", MONTH)}', hive_partitioning = false) s
            JOIN read_parquet('{lake.parquet_glob("payee_directory", MONTH)}', hive_partitioning = false) d
            USING (payee_id)
            WHERE s.paid_cents = 0 AND s.closing_balance_cents > 0 AND s.payee_id NOT LIKE '\\_\\_%' ESCAPE '\\'
              AND s.hold_reason IS NULL
            ORDER BY s.closing_balance_cents DESC, s.payee_id LIMIT 1"""
    ).fetchall()
    _open_events(page, reviewed_instance["base"], "payee_statements")
    assert payee_label(payee, name) in _markdown_entry(page, "carried_over")


def test_statements_show_the_held_payees_with_their_reason(reviewed_instance, page):
    """Rule 10: the sample's payees without valid bank details who are due a payment are held."""
    lake = reviewed_instance["lake"]
    (payee, name, reason), = duckdb.sql(
        f"""SELECT s.payee_id, d.name, s.hold_reason
            FROM read_parquet('{lake.parquet_glob("payee_statements", MONTH)}', hive_partitioning = false) s
            JOIN read_parquet('{lake.parquet_glob("payee_directory", MONTH)}', hive_partitioning = false) d
            USING (payee_id)
            WHERE s.hold_reason IS NOT NULL
            ORDER BY s.closing_balance_cents DESC, s.payee_id LIMIT 1"""
    ).fetchall()
    _open_events(page, reviewed_instance["base"], "payee_statements")
    held = _markdown_entry(page, "held")
    assert payee_label(payee, name) in held and reason in held


def test_monthly_payout_job_has_the_run(reviewed_instance, page):
    page.goto(f"{reviewed_instance['base']}/locations/fairstream_pipeline/jobs/monthly_payout_job/runs")
    expect(page.get_by_text("Success").first).to_be_visible(timeout=60_000)
    assert "No runs found" not in page.inner_text("body")


def test_numeric_metadata_are_numbers(reviewed_instance):
    """Through GraphQL, as the UI reads it: the figures a reviewer plots are numbers, not text."""
    data = reviewed_instance["graphql"](
        """query ($partition: String!) {
             assetNodes(assetKeys: [{path: ["payee_earnings"]}, {path: ["payee_statements"]}]) {
               assetKey { path }
               assetMaterializations(partitions: [$partition]) {
                 metadataEntries { label __typename } } } }""",
        {"partition": MONTH},
    )
    kinds = {
        (node["assetKey"]["path"][-1], entry["label"]): entry["__typename"]
        for node in data["assetNodes"]
        for materialization in node["assetMaterializations"][:1]
        for entry in materialization["metadataEntries"]
    }
    for label in ("top_1pct_share_uc", "top_1pct_share_pr", "uc_pr_moved_share_points", "held_share"):
        assert kinds[("payee_earnings", label)] == "FloatMetadataEntry", label
    for label in ("uc_total_cents", "payees"):
        assert kinds[("payee_earnings", label)] == "IntMetadataEntry", label
    for label in ("paid_cents", "carried_over_cents", "payees_carried_over", "negative_balances"):
        assert kinds[("payee_statements", label)] == "IntMetadataEntry", label

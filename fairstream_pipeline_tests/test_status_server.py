"""`fairstream serve-status`: /metrics and /health over real HTTP, from a real instance, app database and lake."""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fairstream_pipeline.lib.app_db.schema import upgrade
from fairstream_pipeline.lib.app_db.store import dispose_engines
from fairstream_pipeline.lib.alerting.health import last_closed_month, months_between
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.payments.lifecycle import Payment
from fairstream_pipeline.lib.payments.reports import publish_status
from fairstream_pipeline_tests.postgres import PG

FIRST = "2026-09"


@dg.asset
def works() -> None:
    """A run that succeeds."""


@dg.asset
def breaks() -> None:
    """A run that fails."""
    raise RuntimeError("broken on purpose")


@pytest.fixture
def deployment(tmp_path, fresh_database, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        for _ in range(2):
            assert dg.materialize([works], instance=instance).success
        assert not dg.materialize([breaks], instance=instance, raise_on_error=False).success

    url = f"postgresql://{PG.user}:{PG.password}@{PG.host}:{PG.port}/{fresh_database}"
    upgrade(url)
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        for month, payee, status in [("2026-10", "a", "pending"), ("2026-10", "b", "pending"),
                                     ("2026-10", "c", "sent"), ("2026-09", "d", "dead")]:
            cursor.execute(
                "INSERT INTO notification_outbox (month, payee_id, kind, recipient, subject, body_text, body_html, "
                "attachment_name, attachment_csv, message_id, status, created_at) VALUES "
                "(%s, %s, 'monthly_statement', 'x@example.org', 's', 't', 'h', 'a.csv', '', %s, %s, "
                "now() - interval '1 hour')",
                (month, payee, f"<{month}.{payee}@test>", status),
            )
    connection.close()
    dispose_engines()

    lake = Lake(tmp_path / "warehouse")
    closed = months_between(FIRST, last_closed_month(datetime.now(timezone.utc)))
    for month in closed:  # every ended month is closed: nothing overdue
        with lake.write_partition("period_close", month):
            pass
    # September's batch was released; the bank settled one payment and returned another.
    with lake.write_partition("payment_batch", FIRST) as out:
        out.manifest.update(rows=3, batch_id="FS-2026-09-0badcafe", control_sum_cents=12_345, payees_held=1,
                            held_cents=1_500)
    with lake.write_partition("payment_release", FIRST) as out:
        out.manifest.update(approver="Ines", released_at="2026-10-03T09:00:00+00:00", file_name="FS-2026-09-0badcafe.xml",
                            file_sha256="ab" * 32, file_path="/bank/FS-2026-09-0badcafe.xml")
    publish_status(lake, FIRST, [Payment("e1", "a", 10_000, "h1", "settled", "ACSC"),
                                 Payment("e2", "b", 2_000, "h2", "returned", "RJCT", "AC04", "r.xml"),
                                 Payment("e3", "c", 345, "h3")], [], "FS-2026-09-0badcafe")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAIRSTREAM_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), FAIRSTREAM_DATABASE_URL=url, FAIRSTREAM_FIRST_MONTH=FIRST,
               FAIRSTREAM_WAREHOUSE_DIR=str(tmp_path / "warehouse"))
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "fairstream"), "serve-status", "--port", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = server.stdout.readline()
        assert line.startswith("fairstream status on http://127.0.0.1:"), (line, server.stderr.read() if server.poll() else "")
        yield line.split()[3], closed[-1]
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            _, stderr = server.communicate()
            raise AssertionError(f"serve-status did not stop on SIGTERM within 30 s:\n{stderr[-3000:]}") from None


def get(base: str, path: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(base + path, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_report_runs_outbox_months_and_sources(deployment):
    base, last_closed = deployment
    status, content_type, body = get(base, "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    metrics = samples(body.decode())
    job = "__ephemeral_asset_job__"
    assert metrics[("fairstream_dagster_runs", (("job", job), ("status", "SUCCESS")))] == 2
    assert metrics[("fairstream_dagster_runs", (("job", job), ("status", "FAILURE")))] == 1
    assert metrics[("fairstream_dagster_run_duration_seconds_count", (("job", job), ("status", "SUCCESS")))] == 2
    assert metrics[("fairstream_dagster_run_duration_seconds_sum", (("job", job), ("status", "SUCCESS")))] > 0
    assert metrics[("fairstream_outbox_messages", (("month", "2026-10"), ("status", "pending")))] == 2
    assert metrics[("fairstream_outbox_messages", (("month", "2026-10"), ("status", "sent")))] == 1
    assert metrics[("fairstream_outbox_messages", (("month", "2026-09"), ("status", "dead")))] == 1
    assert metrics[("fairstream_outbox_dead_letters", ())] == 1
    assert 3500 < metrics[("fairstream_outbox_oldest_pending_age_seconds", ())] < 7200
    assert metrics[("fairstream_last_closed_month_info", (("month", last_closed),))] == 1
    assert metrics[("fairstream_payout_overdue", ())] == 0
    assert metrics[("fairstream_payments_released_cents", (("month", FIRST),))] == 12_345
    assert metrics[("fairstream_payments_released", (("month", FIRST),))] == 3
    assert metrics[("fairstream_payments_returned", (("month", FIRST),))] == 1
    assert metrics[("fairstream_payments_returned_cents", (("month", FIRST),))] == 2_000
    for source in ("instance", "instance_daemons", "app_database", "lake", "lake_payments"):
        assert metrics[("fairstream_metrics_source_up", (("source", source),))] == 1
    assert not [name for name, _ in metrics if name == "fairstream_daemon_heartbeat_age_seconds"]  # no daemon


def test_health_is_503_with_the_health_json_while_no_daemon_beats(deployment):
    base, _ = deployment
    status, content_type, body = get(base, "/health")
    assert (status, content_type) == (503, "application/json")
    report = json.loads(body)
    assert report["ok"] is False
    assert report["checks"]["daemon"]["ok"] is False
    assert report["checks"]["payout"]["ok"] is True
    assert get(base, "/nothing")[0] == 404


def test_the_documented_alert_rules_use_metrics_the_server_exposes():
    import re

    import yaml

    docs = Path(__file__).resolve().parents[1] / "docs" / "prometheus"
    rules = yaml.safe_load((docs / "alerts.yml").read_text())["groups"][0]["rules"]
    assert {r["alert"] for r in rules} >= {"FairStreamPayoutOverdue", "FairStreamDeadLetters", "FairStreamDaemonDown"}
    exposed = set(re.findall(r'"(fairstream_[a-z_]+)"', (Path(__file__).resolve().parents[1] / "fairstream_pipeline"
                                                         / "status_server.py").read_text()))
    for rule in rules:
        used = set(re.findall(r"fairstream_[a-z_]+", rule["expr"]))
        assert used and used <= exposed, (rule["alert"], used - exposed)
    scrape = yaml.safe_load((docs / "scrape.yml").read_text())
    assert scrape["scrape_configs"][0]["metrics_path"] == "/metrics"

"""The application database restarts in the middle of a send and of a payout run: nothing is lost,
duplicated or left in `sending`. Against a throwaway PostgreSQL server of the test's own."""

import threading
import time

import dagster as dg
import pytest
import yaml

from fairstream_pipeline.defs.resources import AppDatabaseResource
from fairstream_pipeline.lib.app_db.schema import upgrade
from fairstream_pipeline.lib.app_db.store import dispose_engines
from fairstream_pipeline.lib.notifications.mail_sender import SenderSettings, send_outbox
from fairstream_pipeline_tests.postgres import PG
from fairstream_pipeline_tests.test_mail_sender import expected_ids, query, relay_settings, run_send_job, seed, statuses
from fairstream_pipeline_tests.test_period_close_end_to_end import c10_month
from fairstream_pipeline_tests.throwaway_postgres import throwaway_postgres  # noqa: F401 (a fixture)


@pytest.fixture
def app_url(throwaway_postgres):  # noqa: F811
    upgrade(throwaway_postgres.url)
    yield throwaway_postgres.url
    dispose_engines()


@pytest.mark.parametrize("outage_seconds", [5, 30])
def test_a_send_rides_out_a_restart_of_the_application_database(app_url, throwaway_postgres, relay, outage_seconds):  # noqa: F811
    payees = seed(app_url, range(40))
    reports = {}

    def sender() -> None:
        reports["run"] = send_outbox(app_url, relay_settings(relay), SenderSettings(batch_size=10, rate_per_second=8),
                                     worker="sender-a")

    thread = threading.Thread(target=sender)
    thread.start()
    deadline = time.monotonic() + 30
    while relay.count() < 8:  # in the middle of the send
        assert time.monotonic() < deadline
        time.sleep(0.05)
    throwaway_postgres.outage(outage_seconds)
    thread.join(timeout=outage_seconds + 120)
    assert not thread.is_alive()

    assert relay.message_ids() == expected_ids(payees)  # every message once: none lost, none twice
    assert statuses(app_url) == {"sent": 40}  # none left in 'sending'
    assert reports["run"].sent == 40


def test_a_payout_run_publishes_once_the_application_database_is_back(
    landing, materialize_month, app_url, throwaway_postgres  # noqa: F811
):
    """The database is down when the run reaches publication: the step's retry policy (5 s, then
    doubling) waits it out, and the month is published and queued exactly once."""
    c10_month(2000).write(landing, "2024-01")
    config = {"resources": {"payout_rules": {"config": {"royalty_share_ppm": 1_000_000}}}}
    throwaway_postgres.stop()
    restart = threading.Timer(5.0, throwaway_postgres.start)
    restart.start()
    try:
        result = materialize_month("2024-01", run_config=config, resources={"app_database": AppDatabaseResource(url=app_url)})
    finally:
        restart.join()
    assert result.success
    retried = {e.step_key for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"}
    assert retried & {"published_statements", "statement_outbox"}  # the outage was met, and waited out
    assert query(app_url, "SELECT payee_id, earned_cents, paid_cents FROM statements ORDER BY 1") == [
        ("X", 2000, 2000), ("Y", 600, 0)
    ]
    assert query(app_url, "SELECT payee_id, count(*) FROM notification_outbox GROUP BY 1 ORDER BY 1") == [
        ("X", 1), ("Y", 1)
    ]


# 30 s only: a 5 s restart of the instance took 86 s of CI for what the 30 s case covers (the send
# rides out the outage) and test_database_outages covers for a payout run (5 s goes unnoticed).
@pytest.mark.parametrize("outage_seconds", [30])
def test_a_send_run_rides_out_a_restart_of_the_instance(
    throwaway_postgres, fresh_database, relay, outage_seconds, tmp_path  # noqa: F811
):
    """The Dagster instance (runs, events) restarts while send_statement_emails sends 200 messages
    (batches of 10 at 10 per second, about 20 s; the application database up). The send goes on:
    the lines it cannot write to the event log go to stderr, and the run succeeds once the instance
    is back. Every message is delivered exactly once and no row is left in `sending`."""
    app_url = f"postgresql://{PG.user}:{PG.password}@{PG.host}:{PG.port}/{fresh_database}"
    upgrade(app_url)
    payees = seed(app_url, range(200))
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump({
        "storage": {"postgres": {"postgres_db": {
            "hostname": "127.0.0.1", "port": throwaway_postgres.port, "username": "postgres",
            "password": "unused-with-trust-auth", "db_name": "postgres", "scheme": "postgresql+psycopg2",
        }}},
        "telemetry": {"enabled": False},
    }))
    instance = dg.DagsterInstance.from_config(str(home))
    outcome: dict = {}

    def send_run() -> None:
        outcome["result"] = run_send_job(instance, app_url, relay, rate=10, batch_size=10)

    thread = threading.Thread(target=send_run)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while relay.count() < 20:  # in the middle of the send
            assert time.monotonic() < deadline
            time.sleep(0.05)
        throwaway_postgres.outage(outage_seconds)
        sent_during_outage = relay.count()
        thread.join(timeout=180)
        assert not thread.is_alive()
        result = outcome["result"]
        assert result.success
        assert "STEP_UP_FOR_RETRY" not in {e.event_type_value for e in result.all_events}
        (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
        metadata = {k: v.value for k, v in output.step_output_data.metadata.items()}
        if outage_seconds == 30:  # the outage was met: lines went to stderr, the send went on
            assert metadata["log_lines_only_in_compute_logs"] > 0
            # It kept sending while the instance was down (slowly: each line waits for
            # dagster-postgres's ~6 s of reconnects before it goes to stderr).
            assert sent_during_outage > 20
    finally:
        instance.dispose()
        dispose_engines()
    assert relay.message_ids() == expected_ids(payees)  # every message once: none lost, none twice
    assert statuses(app_url) == {"sent": 200}  # none left in 'sending'

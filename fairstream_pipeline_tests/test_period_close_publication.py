"""Only closed months reach the application database and the outbox, once, against real PostgreSQL
and a real loopback SMTP relay."""

import threading
from collections import Counter

import dagster as dg
import psycopg2
import pytest

from fairstream_pipeline.defs.resources import AppDatabaseResource
from fairstream_pipeline.lib.app_db.store import dispose_engines
from fairstream_pipeline.lib.notifications.mail_sender import SenderSettings, send_outbox
from fairstream_pipeline.lib.notifications.smtp import SmtpSettings
from fairstream_pipeline.lib.notifications.statement_email import message_id
from fairstream_pipeline_tests.postgres import PG
from fairstream_pipeline_tests.smtp_server import ScriptedRelay
from fairstream_pipeline_tests.test_mail_sender import query
from fairstream_pipeline_tests.test_period_close_end_to_end import c10_month

JAN, FEB, MAR = "2024-01", "2024-02", "2024-03"
CONFIG = {"resources": {"payout_rules": {"config": {"royalty_share_ppm": 1_000_000, "payout_threshold_cents": 1000}}}}
DOMAIN = "statements.fairstream.example"  # FAIRSTREAM_MESSAGE_ID_DOMAIN's default


@pytest.fixture
def app_url(fresh_database):
    yield f"postgresql://{PG.user}:{PG.password}@{PG.host}:{PG.port}/{fresh_database}"
    dispose_engines()


def two_senders(url: str, relay: ScriptedRelay) -> None:
    """Two senders drain the outbox at the same time, as a manual run beside the sensor's would."""
    settings = SmtpSettings(relay.host, relay.port, starttls=False, mail_from="statements@fairstream.test",
                            timeout_seconds=5)
    start = threading.Barrier(2)

    def sender(name: str) -> None:
        start.wait()
        send_outbox(url, settings, SenderSettings(batch_size=1, rate_per_second=0), worker=name)

    threads = [threading.Thread(target=sender, args=(name,)) for name in ("sender-a", "sender-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)


def test_only_closed_months_are_published_and_emailed_once(landing, materialize_month, app_url, relay, monkeypatch):
    database = {"app_database": AppDatabaseResource(url=app_url)}
    for month in (JAN, FEB):
        c10_month(2000).write(landing, month)
        assert materialize_month(month, run_config=CONFIG, resources=database).success
    january = query(app_url, "SELECT * FROM statements WHERE month = %s ORDER BY payee_id", (JAN,))
    assert query(
        app_url, "SELECT payee_id, earned_cents, paid_cents FROM statements WHERE month = %s ORDER BY 1", (JAN,)
    ) == [("X", 2000, 2000), ("Y", 600, 0)]
    assert query(app_url, "SELECT count(*) FROM statements WHERE closed_at IS NULL") == [(0,)]
    two_senders(app_url, relay)

    # A late file restates January; its re-run (everything) and two more senders change nothing.
    landing.events("2024-01-15", [(f"late-{i}", "U1", "Y", f"2024-01-15 10:0{i}", 60_000) for i in range(3)],
                   name="late.parquet")
    assert materialize_month(JAN, run_config=CONFIG, resources=database).success
    two_senders(app_url, relay)
    assert query(app_url, "SELECT * FROM statements WHERE month = %s ORDER BY payee_id", (JAN,)) == january
    outbox = query(app_url, "SELECT month, payee_id, kind, count(*) FROM notification_outbox GROUP BY 1, 2, 3 ORDER BY 1, 2")
    assert outbox == [(JAN, "X", "monthly_statement", 1), (JAN, "Y", "monthly_statement", 1),
                      (FEB, "X", "monthly_statement", 1), (FEB, "Y", "monthly_statement", 1)]
    assert relay.message_ids() == Counter(
        {message_id(m, p, "monthly_statement", DOMAIN): 1 for m in (JAN, FEB) for p in ("X", "Y")}
    )

    # March is reviewed as a draft first: nothing of it is published or queued.
    monkeypatch.setenv("FAIRSTREAM_AUTO_CLOSE", "false")
    c10_month(1000).write(landing, MAR)
    draft = materialize_month(MAR, run_config=CONFIG, resources=database)
    assert draft.success
    assert "period_close" not in {
        e.materialization.asset_key.to_user_string() for e in draft.get_asset_materialization_events()
    }
    assert query(app_url, "SELECT count(*) FROM statements WHERE month = %s", (MAR,)) == [(0,)]
    assert query(app_url, "SELECT count(*) FROM notification_outbox WHERE month = %s", (MAR,)) == [(0,)]

    # Finance closes it: the statements, their adjustment lines and the emails go out.
    close = materialize_month(
        MAR, selection=dg.AssetSelection.assets("period_close").downstream(), run_config=CONFIG, resources=database
    )
    assert close.success
    assert query(
        app_url,
        "SELECT payee_id, earned_cents, adjustment_cents, paid_cents, closing_balance_cents, closed_at IS NOT NULL "
        "FROM statements WHERE month = %s ORDER BY payee_id",
        (MAR,),
    ) == [("X", 1000, -1500, 0, -500, True), ("Y", 600, 1500, 2100, 0, True)]
    assert query(
        app_url, "SELECT payee_id, source_month, cents, reason FROM statement_adjustments ORDER BY payee_id"
    ) == [("X", JAN, -1500, "late data for 2024-01"), ("Y", JAN, 1500, "late data for 2024-01")]
    (body,) = query(
        app_url, "SELECT body_text FROM notification_outbox WHERE month = %s AND payee_id = 'X'", (MAR,)
    )[0]
    assert "  January 2024 (late data for 2024-01): -15.00 EUR" in body.splitlines()
    two_senders(app_url, relay)
    assert relay.message_ids()[message_id(MAR, "X", "monthly_statement", DOMAIN)] == 1
    assert sum(relay.message_ids().values()) == 6

    # The database itself refuses to change a closed statement.
    with pytest.raises(psycopg2.Error, match="is closed and cannot change"):
        query(app_url, "UPDATE statements SET paid_cents = 0 WHERE month = %s AND payee_id = 'Y'", (MAR,))
    with pytest.raises(psycopg2.Error, match="is closed and cannot change"):
        query(app_url, "DELETE FROM statement_adjustments WHERE month = %s", (MAR,))


def test_a_month_closed_on_its_own_is_published_by_the_automation_sensor(landing, definitions, resources, monkeypatch):
    """`--select period_close` closes without publishing; publish_closed_months' conditions then
    request the notification assets for that month (without an app database only
    statement_notifications), and for no month closed with them."""
    instance = dg.DagsterInstance.ephemeral()
    assets = [*definitions.assets, *definitions.asset_checks]

    def materialize(month: str, selection=None) -> None:
        result = dg.materialize(assets, partition_key=month, resources=resources, selection=selection,
                                instance=instance, run_config=CONFIG, raise_on_error=False)
        assert result.success

    def requested(cursor):
        result = dg.evaluate_automation_conditions(defs=definitions, instance=instance, cursor=cursor)
        keys = {(r.key.to_user_string(), partition) for r in result.results for partition in r.true_subset.expensively_compute_partition_keys()}
        return keys, result.cursor

    for month in (JAN, FEB):
        c10_month(2000).write(landing, month)
    monkeypatch.setenv("FAIRSTREAM_AUTO_CLOSE", "false")
    materialize(JAN)  # a draft
    keys, cursor = requested(None)
    assert keys == set()

    materialize(JAN, selection=dg.AssetSelection.assets("period_close"))
    keys, cursor = requested(cursor)
    # no app database when the definitions loaded: nothing to publish or queue, only the emails to render
    assert keys == {("statement_notifications", JAN)}
    materialize(JAN, selection=dg.AssetSelection.groups("notifications"))  # what the sensor's run does
    keys, cursor = requested(cursor)
    assert keys == set()

    monkeypatch.setenv("FAIRSTREAM_AUTO_CLOSE", "true")
    materialize(FEB)  # computes, closes and publishes in one run
    keys, cursor = requested(cursor)
    assert keys == set()
    instance.dispose()

"""The statement-email sender against the real PostgreSQL and a real, scripted SMTP server.

Each test gets a fresh, migrated database and its own loopback relay (``smtp_server.ScriptedRelay``).
Backoffs are shrunk to fractions of a second; everything else is the production code path.
"""

from __future__ import annotations

import random
import re
import signal
import smtplib
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from psycopg2.extras import execute_values

from fairstream_pipeline.defs.alerting.failure_alerts import AlertsResource
from fairstream_pipeline.defs.notifications.dead_letters import outbox_dead_letters, replay_dead_letters_job
from fairstream_pipeline.defs.notifications.resources import SmtpResource, smtp_from_env
from fairstream_pipeline.defs.notifications.sending import (
    RELAY_DOWN_RETRY,
    outbox_sensor,
    send_statement_emails_job,
)
from fairstream_pipeline.defs.partitions import monthly_partitions
from fairstream_pipeline.defs.resources import AppDatabaseResource
from fairstream_pipeline.lib.notifications import outbox_queue
from fairstream_pipeline.lib.app_db.schema import upgrade
from fairstream_pipeline.lib.app_db.store import dispose_engines
from fairstream_pipeline.lib.notifications.mail_sender import SenderSettings, retry_delay, send_outbox
from fairstream_pipeline.lib.notifications.smtp import (
    PERMANENT,
    RelayMisconfigured,
    TRANSIENT,
    TRANSPORT,
    SmtpSettings,
    classify,
)
from fairstream_pipeline_tests.conftest import step_failure_messages
from fairstream_pipeline_tests.postgres import PG
from fairstream_pipeline_tests.smtp_server import DROP, HANG, ScriptedRelay

REPO = Path(__file__).resolve().parents[1]
MONTH = "2026-10"
MAIL_FROM = "statements@fairstream.test"
KIND = "monthly_statement"
# Tiny waits: a retry is due 0.25-0.5 s later, a reconnect waits 10 ms.
FAST = SenderSettings(
    batch_size=50, rate_per_second=0, backoff_base_seconds=0.5, backoff_cap_seconds=0.5, reconnect_delay_seconds=0.01
)
FAST_JOB_CONFIG = {
    "backoff_base_seconds": 0.5,
    "backoff_cap_seconds": 0.5,
    "reconnect_delay_seconds": 0.01,
    "retry_when_relay_down": False,
}


# --- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def outbox(fresh_database) -> str:
    """The URL of a fresh app database, migrated to the newest schema."""
    url = f"postgresql://{PG.user}:{PG.password}@{PG.host}:{PG.port}/{fresh_database}"
    upgrade(url)
    yield url
    dispose_engines()  # before the fixture drops the database


@pytest.fixture
def instance():
    instance = dg.DagsterInstance.ephemeral()
    yield instance
    instance.dispose()


def payee(i: int) -> str:
    return f"artist-{i:04d}"


def address(payee_id: str) -> str:
    return f"{payee_id}@example.com"


def message_id(month: str, payee_id: str) -> str:
    return f"<{KIND}.{month}.{payee_id}@fairstream.test>"


def seed(url: str, indexes, month: str = MONTH) -> list[str]:
    """Queue one pending statement email per payee index, shaped like the notification assets'."""
    payees = [payee(i) for i in indexes]
    rows = [
        (
            month, p, KIND, address(p), f"Your FairStream statement for {month}",
            f"Hello {p},\nyou earned 12.34 EUR.\n", f"<html><body><p>Hello {p}</p></body></html>",
            f"fairstream-statement-{month}-{p}.csv",
            f"month,payee_id,country,tier,uc_cents,pr_cents\n{month},{p},FR,premium,1234,999\n",
            message_id(month, p), "pending",
        )
        for p in payees
    ]
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        execute_values(
            cursor,
            "INSERT INTO notification_outbox (month, payee_id, kind, recipient, subject, body_text, body_html, "
            "attachment_name, attachment_csv, message_id, status) VALUES %s",
            rows,
        )
    connection.close()
    return payees


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    finally:
        connection.close()


def rows(url: str) -> dict[str, tuple]:
    """payee_id -> (status, attempts, last_error)."""
    return {
        p: (status, attempts, error)
        for p, status, attempts, error in query(
            url, "SELECT payee_id, status, attempts, last_error FROM notification_outbox ORDER BY payee_id"
        )
    }


def statuses(url: str) -> dict[str, int]:
    return dict(query(url, "SELECT status, count(*) FROM notification_outbox GROUP BY status"))


def relay_settings(relay: ScriptedRelay, timeout: float = 5.0) -> SmtpSettings:
    return SmtpSettings(relay.host, relay.port, starttls=False, mail_from=MAIL_FROM, timeout_seconds=timeout)


def send(url: str, relay: ScriptedRelay, settings: SenderSettings = FAST, **kwargs):
    return send_outbox(url, relay_settings(relay), settings, **kwargs)


def smtp_resource(relay: ScriptedRelay, rate: float = 0) -> SmtpResource:
    return SmtpResource(
        host=relay.host, port=relay.port, starttls=False, mail_from=MAIL_FROM, timeout_seconds=5, rate_per_second=rate
    )


def run_send_job(instance, url: str, relay: ScriptedRelay, alerts=None, rate: float = 0, **config):
    return send_statement_emails_job.execute_in_process(
        run_config={"ops": {"send_outbox_messages": {"config": {**FAST_JOB_CONFIG, **config}}}},
        resources={
            "app_database": AppDatabaseResource(url=url),
            "smtp": smtp_resource(relay, rate),
            "alerts": alerts or AlertsResource(),
        },
        instance=instance,
        raise_on_error=False,
    )


def op_metadata(result: dg.ExecuteInProcessResult) -> dict:
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    return {key: value.value for key, value in output.step_output_data.metadata.items()}


def evaluations(result: dg.ExecuteInProcessResult) -> list[tuple]:
    return [
        (e.asset_key.to_user_string(), e.check_name, e.partition, e.passed, e.severity.value, e.metadata["dead"].value)
        for e in result.get_asset_check_evaluations()
    ]


def expected_ids(payees, month: str = MONTH) -> Counter:
    return Counter({message_id(month, p): 1 for p in payees})


# --- 1. volume: one message per payee, never twice ---------------------------------------------


def test_a_thousand_payees_get_exactly_one_message_each_and_a_second_run_sends_nothing(outbox, relay, instance):
    payees = seed(outbox, range(1000))

    first = run_send_job(instance, outbox, relay)

    assert first.success
    assert relay.message_ids() == expected_ids(payees)
    assert sorted(item.rcpt_tos for item in relay.received) == [(address(p),) for p in payees]
    assert {item.mail_from for item in relay.received} == {MAIL_FROM}
    assert statuses(outbox) == {"sent": 1000}
    assert query(outbox, "SELECT attempts, count(*) FROM notification_outbox GROUP BY attempts") == [(1, 1000)]
    metadata = op_metadata(first)
    # the speed is measured (a number the UI plots), never asserted: no timed assertions in tests
    assert metadata.pop("throughput_per_second") >= 0 and metadata.pop("elapsed_seconds") >= 0
    assert metadata == {
        "sent": 1000, "retried": 0, "dead": 0, "returned_to_pending": 0, "reclaimed_stale": 0,
        "queue_depth": 0, "pending": 0, "retry_scheduled": 0, "smtp_connections": 1,
        "months": [MONTH], "breaker_open": False, "lost_claims": 0, "dead_letter_alerts": [],
    }
    assert relay.sessions == 1  # one connection reused across the 20 batches

    second = run_send_job(instance, outbox, relay)

    assert second.success
    assert (op_metadata(second)["sent"], op_metadata(second)["smtp_connections"]) == (0, 0)
    assert relay.count() == 1000 and relay.sessions == 1


def test_the_message_is_text_and_html_alternatives_plus_the_csv_with_the_rows_message_id(outbox, relay):
    (p,) = seed(outbox, [7])

    report = send(outbox, relay)

    assert report.sent == 1
    (item,) = relay.received
    message = item.message
    assert (message["From"], message["To"], message["Subject"], message["Message-ID"]) == (
        MAIL_FROM, address(p), f"Your FairStream statement for {MONTH}", message_id(MONTH, p)
    )
    assert message["Auto-Submitted"] == "auto-generated"
    assert [part.get_content_type() for part in message.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "text/html", "text/csv"
    ]
    def content(part) -> str:
        return part.get_content().replace("\r\n", "\n")  # CRLF on the wire

    assert content(message.get_body(("plain",))) == f"Hello {p},\nyou earned 12.34 EUR.\n"
    assert content(message.get_body(("html",))) == f"<html><body><p>Hello {p}</p></body></html>"
    (attachment,) = message.iter_attachments()
    assert attachment.get_filename() == f"fairstream-statement-{MONTH}-{p}.csv"
    assert content(attachment) == (
        f"month,payee_id,country,tier,uc_cents,pr_cents\n{MONTH},{p},FR,premium,1234,999\n"
    )


# --- 2-4. transient and permanent failures ------------------------------------------------------


def test_a_421_after_message_k_schedules_retries_that_a_later_run_delivers_once(outbox, relay):
    payees = seed(outbox, range(10))
    relay.data_script = {3: "421 4.3.2 Service busy, try later", 4: "421 4.3.2 Service busy, try later"}

    first = send(outbox, relay)

    assert (first.sent, first.retried, first.dead, first.connections) == (8, 2, 0, 3)  # 421 closes the channel
    state = rows(outbox)
    assert state[payee(3)] == state[payee(4)] == ("retry", 1, "421 4.3.2 Service busy, try later")
    assert all(state[p][0] == "sent" for p in payees if p not in (payee(3), payee(4)))
    delays = query(
        outbox,
        "SELECT extract(epoch FROM next_attempt_at - updated_at)::float FROM notification_outbox WHERE status = 'retry'",
    )
    assert all(0.25 <= delay <= 0.5 for (delay,) in delays), delays  # equal jitter in [base/2, base]

    not_yet = send(outbox, relay)
    assert (not_yet.sent, not_yet.queue) == (0, {"pending": 0, "retry": 2, "sending": 0})

    time.sleep(0.55)
    later = send(outbox, relay)

    assert (later.sent, later.retried) == (2, 0)
    assert statuses(outbox) == {"sent": 10}
    assert rows(outbox)[payee(3)][:2] == ("sent", 2)
    assert relay.message_ids() == expected_ids(payees)


def test_a_550_for_one_address_is_dead_after_one_attempt_and_the_others_are_delivered(outbox, relay):
    payees = seed(outbox, range(10))
    relay.rcpt_script[address(payee(4))] = "550 5.1.1 <artist-0004@example.com>: mailbox unavailable"

    report = send(outbox, relay)

    assert (report.sent, report.retried, report.dead, report.connections) == (9, 0, 1, 1)
    assert rows(outbox)[payee(4)] == ("dead", 1, "550 5.1.1 <artist-0004@example.com>: mailbox unavailable")
    assert statuses(outbox) == {"sent": 9, "dead": 1}
    assert relay.message_ids() == expected_ids(p for p in payees if p != payee(4))
    assert send(outbox, relay).sent == 0  # dead is final until replayed


def test_a_connection_dropped_mid_batch_and_a_timeout_are_retried_and_delivered(outbox, relay):
    payees = seed(outbox, range(10))
    relay.data_script = {4: DROP, 7: HANG}
    relay.hang_seconds = 1.0

    first = send_outbox(outbox, relay_settings(relay, timeout=0.3), FAST)

    assert (first.sent, first.retried, first.dead, first.connections) == (8, 2, 0, 3)
    state = rows(outbox)
    assert state[payee(4)] == ("retry", 1, "SMTPServerDisconnected: Connection unexpectedly closed")
    assert state[payee(7)] == ("retry", 1, "SMTPServerDisconnected: Connection unexpectedly closed: timed out")

    time.sleep(0.55)
    later = send(outbox, relay)

    assert (later.sent, later.retried) == (2, 0)
    assert statuses(outbox) == {"sent": 10}
    assert relay.message_ids() == expected_ids(payees)


def test_a_row_that_uses_up_its_attempts_is_dead(outbox, relay):
    seed(outbox, [1])
    relay.data_script = {0: "451 4.3.0 Temporary local problem", 1: "451 4.3.0 Temporary local problem"}
    settings = SenderSettings(rate_per_second=0, max_attempts=2, backoff_base_seconds=0.1, backoff_cap_seconds=0.1)

    assert send(outbox, relay, settings).retried == 1
    time.sleep(0.15)
    assert send(outbox, relay, settings).dead == 1

    assert rows(outbox)[payee(1)] == ("dead", 2, "gave up after 2 attempts: 451 4.3.0 Temporary local problem")
    assert relay.count() == 0


# --- 5. circuit breaker -------------------------------------------------------------------------


def test_a_relay_that_is_down_opens_the_breaker_leaves_the_rows_pending_and_a_later_run_delivers(
    outbox, relay, instance
):
    payees = seed(outbox, range(20))
    relay.down()

    down = run_send_job(instance, outbox, relay, breaker_threshold=5)

    assert not down.success
    assert step_failure_messages(down) == [
        "SMTP relay unavailable: 5 consecutive failures (ConnectionRefusedError: [Errno 111] Connection "
        "refused); 20 messages left pending"
    ]
    assert set(rows(outbox).values()) == {("pending", 0, None)}  # no attempt consumed
    assert query(outbox, "SELECT count(*) FROM notification_outbox WHERE claimed_by IS NOT NULL") == [(0,)]
    (node,) = send_statement_emails_job.graph.node_defs
    assert node.retry_policy == RELAY_DOWN_RETRY == dg.RetryPolicy(
        max_retries=4, delay=120, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
    )

    relay.up()
    up = run_send_job(instance, outbox, relay)

    assert up.success and op_metadata(up)["sent"] == 20
    assert relay.message_ids() == expected_ids(payees)


def test_a_relay_answering_421_to_everything_opens_the_breaker_and_unattempted_rows_keep_their_attempts(
    outbox, relay
):
    seed(outbox, range(12))
    relay.data_script = {i: "421 4.7.0 Relay closing" for i in range(100)}

    report = send(outbox, relay)

    assert report.breaker_open
    assert (report.sent, report.retried, report.dead, report.returned_to_pending) == (0, 5, 0, 7)
    assert report.relay_unavailable_message == (
        "SMTP relay unavailable: 5 consecutive failures (421 4.7.0 Relay closing); "
        "7 messages left pending, 5 scheduled for retry"
    )
    state = rows(outbox)
    assert [state[payee(i)] for i in range(5)] == [("retry", 1, "421 4.7.0 Relay closing")] * 5
    assert [state[payee(i)] for i in range(5, 12)] == [("pending", 0, None)] * 7
    assert relay.count() == 0


# --- 6. the duplicate window --------------------------------------------------------------------

CRASHING_SENDER = """
import os, sys
from fairstream_pipeline.lib.notifications.mail_sender import SenderSettings, send_outbox
from fairstream_pipeline.lib.notifications.smtp import SmtpSettings
url, port, crash_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
accepted = []

def crash_after_accept(message):
    accepted.append(message.payee_id)
    if len(accepted) == crash_at + 1:
        os._exit(17)  # like a SIGKILL: no cleanup, no mark-sent

send_outbox(
    url,
    SmtpSettings("127.0.0.1", port, starttls=False, mail_from="statements@fairstream.test", timeout_seconds=5),
    SenderSettings(batch_size=10, rate_per_second=0),
    worker="crashing-sender",
    after_accept=crash_after_accept,
)
"""


def test_a_crash_between_accept_and_mark_sent_duplicates_only_that_message_with_the_same_message_id(
    outbox, relay
):
    payees = seed(outbox, range(10))

    child = subprocess.run(
        [sys.executable, "-c", CRASHING_SENDER, outbox, str(relay.port), "3"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )

    assert child.returncode == 17, child.stderr
    assert relay.message_ids() == expected_ids(payees[:4])  # the relay accepted message 3
    assert statuses(outbox) == {"sent": 3, "sending": 7}

    assert send(outbox, relay).sent == 0  # the default 15-minute stale timeout protects a live sender
    assert statuses(outbox) == {"sent": 3, "sending": 7}

    # Fifteen minutes later (the claims age), the next sender reclaims the dead sender's rows.
    with psycopg2.connect(outbox) as connection, connection.cursor() as cursor:
        cursor.execute("UPDATE notification_outbox SET claimed_at = claimed_at - interval '16 minutes' "
                       "WHERE status = 'sending'")
    connection.close()
    recovery = send(outbox, relay, SenderSettings(rate_per_second=0))

    assert (recovery.reclaimed, recovery.sent) == (7, 7)
    assert statuses(outbox) == {"sent": 10}
    received = relay.message_ids()
    assert received[message_id(MONTH, payee(3))] == 2  # the one in the window
    assert received == expected_ids(payees) + Counter({message_id(MONTH, payee(3)): 1})
    status, attempts, error = rows(outbox)[payee(3)]
    assert (status, attempts) == ("sent", 2)
    assert re.fullmatch(r"sender crashing-sender stopped while sending \(claimed at \d{4}-\d\d-\d\dT[\d:]{8}Z\)", error)


# --- 7. concurrent senders ----------------------------------------------------------------------


def test_two_senders_at_once_never_send_a_row_twice(outbox, relay):
    payees = seed(outbox, range(300))
    start = threading.Barrier(2)
    reports = {}

    def sender_thread(name: str) -> None:
        start.wait()
        reports[name] = send(outbox, relay, SenderSettings(batch_size=10, rate_per_second=400), worker=name)

    threads = [threading.Thread(target=sender_thread, args=(name,)) for name in ("sender-a", "sender-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert relay.message_ids() == expected_ids(payees)
    assert statuses(outbox) == {"sent": 300}
    assert reports["sender-a"].sent + reports["sender-b"].sent == 300
    assert reports["sender-a"].sent > 0 and reports["sender-b"].sent > 0
    assert dict(query(outbox, "SELECT claimed_by, count(*) FROM notification_outbox GROUP BY claimed_by")) == {
        "sender-a": reports["sender-a"].sent, "sender-b": reports["sender-b"].sent
    }


def test_a_claim_skips_the_rows_another_open_transaction_holds(outbox):
    seed(outbox, range(10))
    first, second = psycopg2.connect(outbox), psycopg2.connect(outbox)
    try:
        held = outbox_queue.claim_batch(first.cursor(), 6, "a")  # not committed: the rows stay locked
        other = second.cursor()
        other.execute("SET lock_timeout = '2s'")  # SKIP LOCKED must not wait at all
        taken = outbox_queue.claim_batch(other, 6, "b")
        assert [m.payee_id for m in held] == [payee(i) for i in range(6)]
        assert [m.payee_id for m in taken] == [payee(i) for i in range(6, 10)]
        assert {m.attempts for m in held + taken} == {1}
        first.commit()
        second.commit()
    finally:
        first.close()
        second.close()
    assert dict(query(outbox, "SELECT claimed_by, count(*) FROM notification_outbox GROUP BY claimed_by")) == {
        "a": 6, "b": 4
    }


def test_a_batch_longer_than_the_stale_timeout_is_never_reclaimed_from_its_live_sender(outbox, relay):
    """Scaled down: a batch of 20 at 5/s takes 4 s; claims go stale after 1.5 s without renewal. The
    owner renews its leases before every message, so a second sender started mid-batch takes nothing."""
    payees = seed(outbox, range(20))
    settings = SenderSettings(batch_size=20, rate_per_second=5, stale_after_seconds=1.5)
    reports = {}

    def sender(name: str) -> None:
        reports[name] = send_outbox(outbox, relay_settings(relay, timeout=0.2), settings, worker=name)

    first = threading.Thread(target=sender, args=("sender-a",))
    first.start()
    time.sleep(2.5)  # sender-a is halfway through its batch, past the stale timeout
    second = threading.Thread(target=sender, args=("sender-b",))
    second.start()
    first.join(timeout=60)
    second.join(timeout=60)

    assert relay.message_ids() == expected_ids(payees)  # every message exactly once
    assert statuses(outbox) == {"sent": 20}
    assert (reports["sender-a"].sent, reports["sender-a"].lost_claims) == (20, 0)
    assert (reports["sender-b"].reclaimed, reports["sender-b"].sent) == (0, 0)


def test_a_sender_that_lost_its_claim_stops_and_never_sends_those_rows(outbox, relay):
    payees = seed(outbox, range(5))

    def taken_over(message):  # right after the first acceptance, another sender takes the rows
        with psycopg2.connect(outbox) as connection, connection.cursor() as cursor:
            cursor.execute("UPDATE notification_outbox SET claimed_by = 'sender-b' WHERE status = 'sending'")
        connection.close()

    report = send(outbox, relay, worker="sender-a", after_accept=taken_over)

    assert relay.message_ids() == expected_ids(payees[:1])  # nothing sent after the claim was lost
    assert report.sent == 0 and report.lost_claims == 5  # even the first: it could not be marked sent
    assert statuses(outbox) == {"sending": 5}
    assert dict(query(outbox, "SELECT claimed_by, count(*) FROM notification_outbox GROUP BY 1")) == {"sender-b": 5}


def test_the_rate_limit_is_shared_by_every_sender(outbox, relay):
    """Two senders at 10/s send 10/s together: the 20 messages take 20 slots 0.1 s apart of one limit,
    so the limit's next slot is at least 2 s after the run began (two limits of 10/s would reach 1 s
    each). Measured on the database clock, whatever the machine's load: no wall-clock assertion."""
    seed(outbox, range(20))
    (began,) = query(outbox, "SELECT clock_timestamp()")[0]
    start = threading.Barrier(2)
    reports = {}

    def sender(name: str) -> None:
        start.wait()
        reports[name] = send(outbox, relay, SenderSettings(batch_size=2, rate_per_second=10), worker=name)

    threads = [threading.Thread(target=sender, args=(name,)) for name in ("sender-a", "sender-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert statuses(outbox) == {"sent": 20}
    assert reports["sender-a"].sent > 0 and reports["sender-b"].sent > 0
    ((limit, span),) = query(outbox, "SELECT name, extract(epoch FROM next_slot_at - %s)::float8 FROM outbox_send_slots", (began,))
    assert limit == "statement_emails"
    assert span >= 20 * 0.1


def test_a_stale_timeout_that_cannot_cover_one_message_is_refused(outbox, relay):
    seed(outbox, range(2))
    with pytest.raises(RelayMisconfigured, match=(
        r"stale_after_seconds = 10 cannot cover one message: at 10/s with a 5 s relay timeout a message may take "
        r"30.1 s \(6 SMTP commands\)"
    )):
        send(outbox, relay, SenderSettings(rate_per_second=10, stale_after_seconds=10))
    assert statuses(outbox) == {"pending": 2}  # nothing claimed
    assert relay.count() == 0


# --- 8. replay ----------------------------------------------------------------------------------


def test_replaying_a_dead_letter_delivers_it(outbox, relay, instance):
    payees = seed(outbox, range(3))
    relay.rcpt_script[address(payee(1))] = "550 5.1.1 mailbox unavailable"
    assert op_metadata(run_send_job(instance, outbox, relay))["dead"] == 1
    del relay.rcpt_script[address(payee(1))]  # the payee fixed their address

    replay = replay_dead_letters_job.execute_in_process(
        run_config={"ops": {"replay_dead_letter_messages": {"config": {"month": MONTH, "payees": [payee(1), payee(2)]}}}},
        resources={"app_database": AppDatabaseResource(url=outbox)},
        instance=instance,
    )

    assert op_metadata(replay) == {
        "month": MONTH, "replayed": 1, "replayed_payees": [payee(1)], "not_dead": [payee(2)]
    }
    assert evaluations(replay) == [("statement_outbox", "outbox_dead_letters", MONTH, True, "WARN", 0)]
    status, attempts, note = rows(outbox)[payee(1)]
    assert (status, attempts) == ("pending", 0)
    assert re.fullmatch(r"replayed \d{4}-\d\d-\d\dT[\d:]{8}Z after: 550 5\.1\.1 mailbox unavailable", note)

    delivered = run_send_job(instance, outbox, relay)

    assert op_metadata(delivered)["sent"] == 1
    assert statuses(outbox) == {"sent": 3}
    assert relay.message_ids() == expected_ids(payees)


def test_replay_names_a_bad_month(outbox, instance):
    result = replay_dead_letters_job.execute_in_process(
        run_config={"ops": {"replay_dead_letter_messages": {"config": {"month": "2026-13"}}}},
        resources={"app_database": AppDatabaseResource(url=outbox)},
        instance=instance,
        raise_on_error=False,
    )
    assert step_failure_messages(result) == ["month: '2026-13' is not a month key of the form YYYY-MM"]


# --- 9. SIGTERM ---------------------------------------------------------------------------------

SEND_JOB_PROCESS = """
import sys
import dagster as dg
from fairstream_pipeline.defs.alerting.failure_alerts import AlertsResource
from fairstream_pipeline.defs.notifications.resources import SmtpResource
from fairstream_pipeline.defs.notifications.sending import send_statement_emails_job
from fairstream_pipeline.defs.resources import AppDatabaseResource
url, port = sys.argv[1], int(sys.argv[2])
instance = dg.DagsterInstance.ephemeral()
print("sending", flush=True)
result = send_statement_emails_job.execute_in_process(
    instance=instance,
    raise_on_error=False,
    resources={
        "app_database": AppDatabaseResource(url=url),
        "smtp": SmtpResource(host="127.0.0.1", port=port, starttls=False, mail_from="statements@fairstream.test",
                             rate_per_second=5),
        "alerts": AlertsResource(),
    },
)
for event in result.all_events:
    if event.is_step_failure:
        print("failure:", event.step_failure_data.user_failure_data.description, flush=True)
print("run finished", result.success, flush=True)
"""


def test_sigterm_during_a_batch_finishes_the_message_in_flight_and_leaves_nothing_in_sending(outbox, relay):
    payees = seed(outbox, range(30))
    process = subprocess.Popen(
        [sys.executable, "-c", SEND_JOB_PROCESS, outbox, str(relay.port)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while relay.count() < 3 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert relay.count() >= 3, process.communicate(timeout=5)
        process.send_signal(signal.SIGTERM)  # rate-limited at 5/s: mid-batch, between two messages
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()

    assert process.returncode == 0, stderr
    state = rows(outbox)
    sent = sorted(p for p, (status, _, _) in state.items() if status == "sent")
    assert statuses(outbox) == {"sent": len(sent), "pending": 30 - len(sent)}
    assert 3 <= len(sent) <= 5
    assert {state[p] for p in payees if p not in sent} == {("pending", 0, None)}
    assert relay.message_ids() == expected_ids(sent)
    assert stdout.splitlines()[-2:] == [  # the op failed at once, without retry, and the process ended
        f"failure: stopped by SIGTERM: {len(sent)} sent; the {30 - len(sent)} claimed messages not yet sent "
        "are pending again",
        "run finished False",
    ]


# --- dead letters: the check and the once-per-month alert ---------------------------------------


@pytest.fixture
def ops_mailbox():
    server = ScriptedRelay().up()
    yield server
    server.down()


def test_dead_letters_fail_the_warn_check_and_alert_once_when_the_month_ends(outbox, relay, instance, ops_mailbox):
    alerts = AlertsResource(
        smtp_host=ops_mailbox.host, smtp_port=ops_mailbox.port, smtp_starttls=False,
        alert_from="pipeline@fairstream.test", alert_to="ops@fairstream.test", retry_base_seconds=0,
    )
    seed(outbox, range(4))
    seed(outbox, [100, 101], month="2026-09")
    relay.rcpt_script[address(payee(2))] = "550 5.1.1 mailbox unavailable"
    relay.rcpt_script[address(payee(100))] = "450 4.2.1 mailbox busy"  # September is not over yet

    first = run_send_job(instance, outbox, relay, alerts=alerts)

    assert evaluations(first) == [
        ("statement_outbox", "outbox_dead_letters", "2026-09", True, "WARN", 0),
        ("statement_outbox", "outbox_dead_letters", MONTH, False, "WARN", 1),
    ]
    october = [e for e in first.get_asset_check_evaluations() if e.partition == MONTH][0]
    assert october.metadata["first_dead_letters"].value == (
        r"| payee\_id | recipient | attempts | last\_error |" "\n|---|---|---|---|\n"
        "| artist-0002 | artist-0002@example.com | 1 | 550 5.1.1 mailbox unavailable |"
    )
    assert op_metadata(first)["dead_letter_alerts"] == [MONTH]
    (alert,) = ops_mailbox.received
    assert alert.message["Subject"] == "FairStream statement emails: 1 undeliverable for 2026-10"
    assert alert.rcpt_tos == ("ops@fairstream.test",)
    body = alert.message.get_content().replace("\r\n", "\n")
    assert "first_payees: artist-0002\n" in body
    assert "first_errors: artist-0002: 550 5.1.1 mailbox unavailable\n" in body
    assert query(outbox, "SELECT month, dead FROM outbox_dead_letter_alerts") == [(MONTH, 1)]

    second = run_send_job(instance, outbox, relay, alerts=alerts)  # nothing due, nothing ended
    assert op_metadata(second)["dead_letter_alerts"] == []

    relay.rcpt_script[address(payee(100))] = "550 5.1.1 mailbox unavailable"
    time.sleep(0.55)
    third = run_send_job(instance, outbox, relay, alerts=alerts)  # September ends with a dead letter

    assert op_metadata(third)["dead_letter_alerts"] == ["2026-09"]
    assert [item.message["Subject"] for item in ops_mailbox.received] == [
        "FairStream statement emails: 1 undeliverable for 2026-10",
        "FairStream statement emails: 1 undeliverable for 2026-09",
    ]
    assert query(outbox, "SELECT month, dead FROM outbox_dead_letter_alerts ORDER BY month") == [
        ("2026-09", 1), (MONTH, 1)
    ]


def test_every_new_set_of_dead_letters_is_alerted_not_once_per_month(outbox, relay, instance, ops_mailbox):
    alerts = AlertsResource(
        smtp_host=ops_mailbox.host, smtp_port=ops_mailbox.port, smtp_starttls=False,
        alert_from="pipeline@fairstream.test", alert_to="ops@fairstream.test", retry_base_seconds=0,
    )
    seed(outbox, range(3))
    relay.rcpt_script[address(payee(1))] = "550 5.1.1 mailbox unavailable"
    assert op_metadata(run_send_job(instance, outbox, relay, alerts=alerts))["dead_letter_alerts"] == [MONTH]

    # Later the same month: a replayed letter and a new one die again. Both get an alert of their own.
    with psycopg2.connect(outbox) as connection, connection.cursor() as cursor:
        outbox_queue.replay_dead(cursor, MONTH)
    connection.close()
    seed(outbox, [7])
    relay.rcpt_script[address(payee(7))] = "550 5.1.1 mailbox unavailable"
    assert op_metadata(run_send_job(instance, outbox, relay, alerts=alerts))["dead_letter_alerts"] == [MONTH]
    assert op_metadata(run_send_job(instance, outbox, relay, alerts=alerts))["dead_letter_alerts"] == []

    assert [item.message["Subject"] for item in ops_mailbox.received] == [
        "FairStream statement emails: 1 undeliverable for 2026-10",
        "FairStream statement emails: 2 undeliverable for 2026-10",
    ]
    assert query(outbox, "SELECT month, dead FROM outbox_dead_letter_alerts ORDER BY id") == [(MONTH, 1), (MONTH, 2)]


@dg.asset(name="statement_outbox", partitions_def=monthly_partitions)
def statement_outbox_stand_in() -> dg.MaterializeResult:
    """Stands for the real outbox asset: the check runs after it."""
    return dg.MaterializeResult()


def test_the_dead_letter_check_counts_the_months_dead_rows(outbox, relay, instance):
    seed(outbox, range(3))
    relay.rcpt_script[address(payee(0))] = "550 5.1.1 mailbox unavailable"
    relay.rcpt_script[address(payee(1))] = "554 5.7.1 message rejected"
    send(outbox, relay)

    def check(month: str, url: str = outbox):
        result = dg.materialize(
            [statement_outbox_stand_in, outbox_dead_letters],
            partition_key=month,
            resources={"app_database": AppDatabaseResource(url=url)},
            instance=instance,
        )
        (evaluation,) = result.get_asset_check_evaluations()
        return evaluation.passed, evaluation.severity, {k: v.value for k, v in evaluation.metadata.items()}

    passed, severity, metadata = check(MONTH)
    assert (passed, severity) == (False, dg.AssetCheckSeverity.WARN)
    assert metadata == {
        "dead": 2, "sent": 1, "still_to_send": 0, "no_address": 0,
        "first_dead_letters": (
            r"| payee\_id | recipient | attempts | last\_error |" "\n|---|---|---|---|\n"
            "| artist-0000 | artist-0000@example.com | 1 | 550 5.1.1 mailbox unavailable |\n"
            "| artist-0001 | artist-0001@example.com | 1 | 554 5.7.1 message rejected |"
        ),
    }
    assert check("2026-09") == (True, dg.AssetCheckSeverity.WARN, {"dead": 0, "sent": 0, "still_to_send": 0, "no_address": 0})
    assert check(MONTH, url="") == (  # nothing counted: a warning, not a pass (test_honest_status.py)
        False, dg.AssetCheckSeverity.WARN, {"status": "not configured: FAIRSTREAM_DATABASE_URL is empty"}
    )


# --- the sensor ---------------------------------------------------------------------------------


def test_the_outbox_sensor_requests_a_send_run_only_when_rows_are_ready_and_none_is_running(
    outbox, relay, instance
):
    def tick(url: str = outbox, smtp: SmtpResource | None = None):
        context = dg.build_sensor_context(
            instance=instance,
            resources={"app_database": AppDatabaseResource(url=url), "smtp": smtp or smtp_resource(relay)},
        )
        return outbox_sensor(context)

    assert tick(url="").skip_message == "app database not configured: FAIRSTREAM_DATABASE_URL is empty"
    assert tick(smtp=SmtpResource()).skip_message == "SMTP not configured: FAIRSTREAM_SMTP_HOST is empty"
    assert tick().skip_message == "no messages ready to send (0 scheduled for retry later)"

    seed(outbox, range(4))
    request = tick()
    assert isinstance(request, dg.RunRequest)
    assert (request.run_key, request.tags) == ("after:none", {"fairstream/trigger": "outbox_sensor", "fairstream/ready": "4"})

    results = []
    running = threading.Thread(target=lambda: results.append(run_send_job(instance, outbox, relay, rate=4)))
    running.start()
    deadline = time.monotonic() + 30
    while relay.count() < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    (active,) = instance.get_runs()
    assert tick().skip_message == f"a send run is in progress: {active.run_id} (STARTED)"
    running.join(timeout=30)
    assert results[0].success and relay.count() == 4

    assert tick().skip_message == "no messages ready to send (0 scheduled for retry later)"
    seed(outbox, [10], month="2026-11")
    assert tick().run_key == f"after:{results[0].run_id}"


# --- configuration and small pieces -------------------------------------------------------------


def test_without_a_database_or_smtp_the_sender_reports_not_configured_and_succeeds(outbox, relay, instance):
    no_database = send_statement_emails_job.execute_in_process(
        resources={"app_database": AppDatabaseResource(url=""), "smtp": SmtpResource(), "alerts": AlertsResource()},
        instance=instance,
    )
    assert op_metadata(no_database) == {"status": "not configured: FAIRSTREAM_DATABASE_URL is empty"}

    seed(outbox, range(2))
    no_smtp = send_statement_emails_job.execute_in_process(
        resources={"app_database": AppDatabaseResource(url=outbox), "smtp": SmtpResource(), "alerts": AlertsResource()},
        instance=instance,
    )
    assert op_metadata(no_smtp) == {"status": "not configured: FAIRSTREAM_SMTP_HOST is empty", "queue_depth": 2}
    assert statuses(outbox) == {"pending": 2}


def test_a_missing_from_address_fails_without_retry_and_touches_nothing(outbox, relay, instance):
    seed(outbox, range(2))
    result = send_statement_emails_job.execute_in_process(
        resources={
            "app_database": AppDatabaseResource(url=outbox),
            "smtp": SmtpResource(host=relay.host, port=relay.port, starttls=False),
            "alerts": AlertsResource(),
        },
        instance=instance,
        raise_on_error=False,
    )
    assert step_failure_messages(result) == ["no sender address: set FAIRSTREAM_MAIL_FROM"]
    assert statuses(outbox) == {"pending": 2} and relay.count() == 0


def test_the_smtp_resource_reads_the_environment_and_keeps_secrets_as_env_vars(monkeypatch):
    defaults = smtp_from_env()
    assert (defaults.host, defaults.port, defaults.starttls, defaults.user, defaults.mail_from, defaults.rate_per_second) == (
        "", 587, True, "", "", 10.0
    )
    monkeypatch.setenv("FAIRSTREAM_SMTP_HOST", "smtp.fairstream.test")
    monkeypatch.setenv("FAIRSTREAM_SMTP_PORT", "2525")
    monkeypatch.setenv("FAIRSTREAM_SMTP_STARTTLS", "no")
    monkeypatch.setenv("FAIRSTREAM_SMTP_USER", "mailer")
    monkeypatch.setenv("FAIRSTREAM_SMTP_PASSWORD", "s3cret")
    monkeypatch.setenv("FAIRSTREAM_MAIL_FROM", MAIL_FROM)
    monkeypatch.setenv("FAIRSTREAM_MAIL_RATE_PER_SECOND", "2.5")
    resource = smtp_from_env()
    for field, name in [
        ("host", "FAIRSTREAM_SMTP_HOST"), ("user", "FAIRSTREAM_SMTP_USER"),
        ("password", "FAIRSTREAM_SMTP_PASSWORD"), ("mail_from", "FAIRSTREAM_MAIL_FROM"),
    ]:
        value = getattr(resource, field)
        assert isinstance(value, dg.EnvVar) and value.env_var_name == name, field
    assert resource.port.env_var_name == "FAIRSTREAM_SMTP_PORT"  # dg.EnvVar.int
    assert (resource.starttls, resource.rate_per_second) == (False, 2.5)
    monkeypatch.setenv("FAIRSTREAM_MAIL_RATE_PER_SECOND", "fast")
    with pytest.raises(ValueError, match="FAIRSTREAM_MAIL_RATE_PER_SECOND: expected a number of messages per second, got 'fast'"):
        smtp_from_env()


def test_the_sender_definitions():
    defs = dg.Definitions(
        jobs=[send_statement_emails_job, replay_dead_letters_job],
        sensors=[outbox_sensor],
        asset_checks=[outbox_dead_letters],
        resources={"smtp": smtp_from_env()},
    )
    assert sorted(job.name for job in defs.jobs) == ["replay_dead_letters", "send_statement_emails"]
    (sensor,) = defs.sensors
    assert (sensor.name, sensor.job_name, sensor.minimum_interval_seconds, sensor.default_status) == (
        "outbox_sensor", "send_statement_emails", 60, dg.DefaultSensorStatus.RUNNING
    )
    (check,) = defs.asset_checks
    (spec,) = check.check_specs
    assert (spec.asset_key, spec.name, spec.blocking, spec.partitions_def) == (
        dg.AssetKey("statement_outbox"), "outbox_dead_letters", False, monthly_partitions
    )
    assert sorted(defs.resources) == ["smtp"]


class _Edge(random.Random):
    def __init__(self, high: bool):
        super().__init__(0)
        self.high = high

    def uniform(self, low, high):
        return high if self.high else low


def test_backoff_doubles_from_the_base_to_the_cap_with_equal_jitter():
    steps = [retry_delay(n, 300, 3600, _Edge(True)) for n in range(1, 7)]
    assert steps == [300, 600, 1200, 2400, 3600, 3600]
    assert [retry_delay(n, 300, 3600, _Edge(False)) for n in range(1, 7)] == [150, 300, 600, 1200, 1800, 1800]
    assert SenderSettings() == SenderSettings(
        batch_size=100, rate_per_second=10.0, max_attempts=6, backoff_base_seconds=300.0,
        backoff_cap_seconds=3600.0, breaker_threshold=5, reconnect_delay_seconds=1.0, stale_after_seconds=900.0,
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (smtplib.SMTPRecipientsRefused({"a@x": (550, b"no such user")}), PERMANENT),
        (smtplib.SMTPRecipientsRefused({"a@x": (452, b"mailbox full")}), TRANSIENT),
        (smtplib.SMTPRecipientsRefused({"a@x": (421, b"closing")}), TRANSPORT),
        (smtplib.SMTPDataError(554, b"rejected"), PERMANENT),
        (smtplib.SMTPDataError(451, b"local error"), TRANSIENT),
        (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), TRANSPORT),
        (ConnectionRefusedError(111, "Connection refused"), TRANSPORT),
        (TimeoutError("timed out"), TRANSPORT),
        (smtplib.SMTPNotSupportedError("SMTPUTF8 not supported"), PERMANENT),
    ],
)
def test_error_classification(error, expected):
    assert classify(error) == expected

"""Failure alerts against real loopback servers: an HTTP webhook and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
import psycopg2
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from dagster_postgres.utils import DagsterPostgresException

from fairstream_pipeline.defs.alerting.failure_alerts import AlertsResource, alerts_from_env, payout_failure_alert
from fairstream_pipeline.lib.alerting import alerts as lib

FAST = {"retry_base_seconds": 0.0, "timeout_seconds": 5.0}
REPO_RUN_RETRIES = {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False}


class Webhook:
    """A loopback HTTP server that records every POST and answers from a script (then 200)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.script: list[int] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                recorder.requests.append(
                    {"path": self.path, "content_type": self.headers["Content-Type"], "json": json.loads(body)}
                )
                status = recorder.script.pop(0) if recorder.script else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/fairstream"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def webhook():
    server = Webhook()
    yield server
    server.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mailbox:
    def __init__(self):
        self.messages: list[tuple[str, list[str], email.message.EmailMessage]] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login, auth_data.password))
        if auth_data.password == b"s3cret":
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)  # the server answers 535


@pytest.fixture
def mailbox():
    box = Mailbox()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=box.authenticate,
        auth_require_tls=False,  # loopback test server without TLS
    )
    controller.start()
    box.port = controller.port
    yield box
    controller.stop()


class MaxJitter:
    """An rng whose full-jitter draw is always the upper bound, so waits are exact."""

    def uniform(self, low, high):
        return high


def records() -> tuple[logging.Logger, list[str]]:
    log = logging.getLogger(f"fairstream.test.alerts.{id(object())}")
    log.propagate = False
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append(f"{record.levelname} {record.getMessage()}")

    log.addHandler(Collect())
    return log, seen


# --- webhook ----------------------------------------------------------------------------------


def test_the_alert_arrives_once_with_the_exact_json(webhook):
    alerts = AlertsResource(webhook_url=webhook.url, **FAST)
    delivered = alerts.send("Dead letters waiting", {"queue": "statements", "count": 3})
    assert delivered == ["webhook"]
    assert webhook.requests == [
        {
            "path": "/hooks/fairstream",
            "content_type": "application/json",
            "json": {
                "subject": "Dead letters waiting",
                "queue": "statements",
                "count": 3,
                "text": "Dead letters waiting | queue: statements | count: 3",
            },
        }
    ]


def test_a_503_is_retried_after_a_full_jitter_wait_and_delivered(webhook):
    webhook.script = [503]
    waits: list[float] = []
    attempts = lib.post_json(webhook.url, {"a": 1}, sleep=waits.append, rng=MaxJitter())
    assert attempts == 2
    assert waits == [1.0]
    assert [r["json"] for r in webhook.requests] == [{"a": 1}, {"a": 1}]


def test_the_budget_is_four_attempts_doubling_from_one_second_then_it_gives_up(webhook):
    webhook.script = [503, 429, 500, 502]
    waits: list[float] = []
    with pytest.raises(lib.DeliveryError, match=r"webhook: gave up after 4 attempt\(s\): HTTP 502"):
        lib.post_json(webhook.url, {"a": 1}, sleep=waits.append, rng=MaxJitter())
    assert waits == [1.0, 2.0, 4.0]
    assert len(webhook.requests) == 4


def test_a_400_is_not_retried(webhook):
    webhook.script = [400]
    waits: list[float] = []
    with pytest.raises(lib.DeliveryError, match=r"webhook: gave up after 1 attempt\(s\): HTTP 400"):
        lib.post_json(webhook.url, {"a": 1}, sleep=waits.append, rng=MaxJitter())
    assert waits == []
    assert len(webhook.requests) == 1


def test_a_refused_connection_is_retried_within_the_budget():
    waits: list[float] = []
    budget = lib.RetryBudget(attempts=3, base_seconds=0.5, timeout_seconds=2)
    with pytest.raises(lib.DeliveryError, match=r"gave up after 3 attempt\(s\): ConnectionRefusedError"):
        lib.post_json(f"http://127.0.0.1:{free_port()}/", {}, budget=budget, sleep=waits.append, rng=MaxJitter())
    assert waits == [0.5, 1.0]


def test_full_jitter_bounds_double_up_to_the_cap():
    budget = lib.RetryBudget(attempts=6, base_seconds=10, cap_seconds=30)
    assert [budget.max_delay(k) for k in range(1, 6)] == [10, 20, 30, 30, 30]

    class Low:
        def uniform(self, low, high):
            return low

    assert budget.delay(3, Low()) == 0


# --- email ------------------------------------------------------------------------------------


def test_the_email_arrives_with_the_subject_and_body(mailbox):
    alerts = AlertsResource(
        smtp_host="127.0.0.1",
        smtp_port=mailbox.port,
        smtp_starttls=False,
        smtp_user="alerts",
        smtp_password="s3cret",
        alert_from="alerts@fairstream.test",
        alert_to="ops@fairstream.test, oncall@fairstream.test",
        **FAST,
    )
    assert alerts.send("Dead letters waiting", {"queue": "statements", "count": 3}) == ["email"]
    assert mailbox.logins == [(b"alerts", b"s3cret")]
    [(sender, recipients, message)] = mailbox.messages
    assert sender == "alerts@fairstream.test"
    assert recipients == ["ops@fairstream.test", "oncall@fairstream.test"]
    assert message["Subject"] == "Dead letters waiting"
    assert message["To"] == "ops@fairstream.test, oncall@fairstream.test"
    assert message.get_content().replace("\r\n", "\n") == (
        "Dead letters waiting | queue: statements | count: 3\n\nqueue: statements\ncount: 3\n"
    )


def test_a_rejected_login_is_not_retried_and_the_webhook_still_gets_the_alert(mailbox, webhook):
    alerts = AlertsResource(
        webhook_url=webhook.url,
        smtp_host="127.0.0.1",
        smtp_port=mailbox.port,
        smtp_starttls=False,
        smtp_user="alerts",
        smtp_password="wrong",
        alert_from="alerts@fairstream.test",
        alert_to="ops@fairstream.test",
        **FAST,
    )
    with pytest.raises(lib.AlertDeliveryError, match=r"email: gave up after 1 attempt\(s\).*\(delivered: webhook\)"):
        alerts.send("subject", {"k": "v"})
    assert mailbox.logins == [(b"alerts", b"wrong")] * 2  # one connection: smtplib tries PLAIN, then LOGIN
    assert mailbox.messages == []
    assert len(webhook.requests) == 1


def test_email_without_recipients_fails_after_the_webhook_was_tried(webhook):
    alerts = AlertsResource(webhook_url=webhook.url, smtp_host="127.0.0.1", alert_from="a@fairstream.test", **FAST)
    with pytest.raises(lib.AlertDeliveryError, match="FAIRSTREAM_ALERT_FROM and FAIRSTREAM_ALERT_TO"):
        alerts.send("subject", {})
    assert len(webhook.requests) == 1


def test_without_any_channel_a_warning_is_logged_and_nothing_fails():
    log, seen = records()
    assert AlertsResource().send("subject", {"k": "v"}, log=log) == []
    assert seen == [
        "WARNING alerts are not configured: set FAIRSTREAM_ALERT_WEBHOOK_URL or FAIRSTREAM_SMTP_HOST; "
        "not sent: subject | k: v"
    ]


# --- configuration ------------------------------------------------------------------------------


def test_the_resource_reads_the_environment_and_keeps_secrets_as_env_vars(monkeypatch, webhook):
    monkeypatch.setenv("FAIRSTREAM_ALERT_WEBHOOK_URL", webhook.url)
    monkeypatch.setenv("FAIRSTREAM_SMTP_HOST", "smtp.fairstream.test")
    monkeypatch.setenv("FAIRSTREAM_SMTP_STARTTLS", "no")
    monkeypatch.setenv("FAIRSTREAM_SMTP_PASSWORD", "s3cret")
    monkeypatch.setenv("FAIRSTREAM_ALERT_TO", "ops@fairstream.test")
    resource = alerts_from_env()
    assert isinstance(resource.webhook_url, dg.EnvVar)
    assert resource.webhook_url.env_var_name == "FAIRSTREAM_ALERT_WEBHOOK_URL"
    assert isinstance(resource.smtp_password, dg.EnvVar)
    assert resource.smtp_user == ""  # unset: no login
    assert (resource.smtp_host, resource.smtp_port, resource.smtp_starttls) == ("smtp.fairstream.test", 587, False)
    assert resource.alert_to == "ops@fairstream.test"
    assert resource.ui_base_url == "http://127.0.0.1:3000"


def test_defaults_when_nothing_is_set():
    resource = alerts_from_env()
    assert (resource.webhook_url, resource.smtp_host, resource.smtp_port, resource.smtp_starttls) == ("", "", 587, True)
    sensor = payout_failure_alert()
    assert sensor.name == "payout_failure_alert"
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 30
    assert sensor.metadata["alert_channels"].value == lib.ALERTS_NOT_CONFIGURED


def test_a_bad_starttls_value_is_named(monkeypatch):
    monkeypatch.setenv("FAIRSTREAM_SMTP_STARTTLS", "maybe")
    with pytest.raises(ValueError, match="FAIRSTREAM_SMTP_STARTTLS: expected true or false, got 'maybe'"):
        alerts_from_env()


# --- will_be_retried ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("enabled", "max_retries", "on_step_failure", "tags", "expected"),
    [
        # retries off: never
        (False, 2, True, {}, False),
        # a crashed worker (no step failure): retried while retry_number < max
        (True, 2, False, {}, True),
        (True, 2, False, {"dagster/failure_reason": "UNEXPECTED_TERMINATION"}, True),
        (True, 2, False, {"dagster/failure_reason": "RUN_EXCEPTION", "dagster/retry_number": "1"}, True),
        (True, 2, False, {"dagster/failure_reason": "RUN_EXCEPTION", "dagster/retry_number": "2"}, False),
        (True, 0, False, {}, False),
        # a step failure with retry_on_asset_or_op_failure false: never
        (True, 2, False, {"dagster/failure_reason": "STEP_FAILURE"}, False),
        # ... with it true: like any other failure
        (True, 2, True, {"dagster/failure_reason": "STEP_FAILURE"}, True),
        (True, 2, True, {"dagster/failure_reason": "STEP_FAILURE", "dagster/retry_number": "2"}, False),
        # the run tag overrides the instance's retry_on_asset_or_op_failure
        (True, 2, False, {"dagster/failure_reason": "STEP_FAILURE", "dagster/retry_on_asset_or_op_failure": "true"}, True),
        (True, 2, True, {"dagster/failure_reason": "STEP_FAILURE", "dagster/retry_on_asset_or_op_failure": "false"}, False),
        # the run tag dagster/max_retries overrides the instance's max_retries
        (True, 2, False, {"dagster/max_retries": "0"}, False),
        (True, 0, False, {"dagster/max_retries": "3", "dagster/retry_number": "2"}, True),
        (True, 2, False, {"dagster/max_retries": "three"}, False),
        # Dagster's recorded decision wins
        (True, 2, False, {"dagster/will_retry": "false"}, False),
        (True, 2, False, {"dagster/will_retry": "true", "dagster/failure_reason": "STEP_FAILURE"}, True),
        (False, 2, True, {"dagster/will_retry": "true"}, False),
    ],
)
def test_will_be_retried(enabled, max_retries, on_step_failure, tags, expected):
    assert (
        lib.will_be_retried(
            tags, retries_enabled=enabled, max_retries=max_retries, retry_on_asset_or_op_failure=on_step_failure
        )
        is expected
    )


# --- the sensor end to end -----------------------------------------------------------------------

months = dg.StaticPartitionsDefinition(["2026-09", "2026-10"])


@dg.asset(partitions_def=months)
def statements_that_fail() -> None:
    raise dg.Failure("boom")


failing_defs = dg.Definitions(
    assets=[statements_that_fail],
    jobs=[dg.define_asset_job("monthly_payout", selection=[statements_that_fail])],
)


def evaluate_sensor(run_retries: dict, alerts: AlertsResource, tags: dict | None = None) -> dg.DagsterRun:
    """Run the failing job on a test instance, then evaluate the sensor on its failure."""
    with dg.instance_for_test(overrides={"run_retries": run_retries}) as instance:
        result = failing_defs.resolve_job_def("monthly_payout").execute_in_process(
            partition_key="2026-10", raise_on_error=False, instance=instance, tags=tags
        )
        alert_on_failure(instance, result, alerts)
        return result.dagster_run


def alert_on_failure(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult, alerts: AlertsResource) -> None:
    """Evaluate payout_failure_alert on the failed run of ``result`` (it returns nothing)."""
    assert not result.success
    context = dg.build_run_status_sensor_context(
        sensor_name="payout_failure_alert",
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources={"alerts": alerts},
    ).for_run_failure()
    assert payout_failure_alert()(context) is None


def test_a_failed_run_is_alerted_once_with_job_partition_step_error_and_link(webhook):
    alerts = AlertsResource(webhook_url=webhook.url, ui_base_url="http://dagster.fairstream.test:3000/", **FAST)
    run = evaluate_sensor(REPO_RUN_RETRIES, alerts)
    link = f"http://dagster.fairstream.test:3000/runs/{run.run_id}"
    assert webhook.requests == [
        {
            "path": "/hooks/fairstream",
            "content_type": "application/json",
            "json": {
                "subject": "FairStream run failed: monthly_payout for 2026-10",
                "job_name": "monthly_payout",
                "partition": "2026-10",
                "failed_steps": ["statements_that_fail"],
                "error": "boom",
                "run_id": run.run_id,
                "run_url": link,
                "text": f"FairStream run failed: monthly_payout for 2026-10 at statements_that_fail: boom ({link})",
            },
        }
    ]


def test_a_run_that_dagster_will_retry_gets_no_alert(webhook):
    alerts = AlertsResource(webhook_url=webhook.url, **FAST)
    run = evaluate_sensor({**REPO_RUN_RETRIES, "retry_on_asset_or_op_failure": True}, alerts)
    assert run.tags["dagster/will_retry"] == "true"
    assert webhook.requests == []


def test_the_last_allowed_retry_is_alerted(webhook):
    alerts = AlertsResource(webhook_url=webhook.url, **FAST)
    evaluate_sensor({**REPO_RUN_RETRIES, "retry_on_asset_or_op_failure": True}, alerts, tags={"dagster/max_retries": "0"})
    assert [r["json"]["error"] for r in webhook.requests] == ["boom"]


def test_the_sensor_resolves_the_webhook_url_from_the_environment(monkeypatch, webhook):
    monkeypatch.setenv("FAIRSTREAM_ALERT_WEBHOOK_URL", webhook.url)
    run = evaluate_sensor(REPO_RUN_RETRIES, alerts_from_env())
    assert [r["json"]["run_url"] for r in webhook.requests] == [f"http://127.0.0.1:3000/runs/{run.run_id}"]


def test_the_error_of_several_or_no_failed_steps_and_a_run_without_partition():
    assert lib.failure_error([("a", "boom")], "run failed") == "boom"
    assert lib.failure_error([("a", "boom"), ("b", "bang")], "run failed") == "a: boom\nb: bang"
    assert lib.failure_error([], "Execution of run failed. worker crashed") == "Execution of run failed. worker crashed"
    failure = lib.RunFailure("catalog_job", None, (), "worker crashed", "r1", lib.run_url("http://ui:3000/", "r1"))
    assert failure.subject == "FairStream run failed: catalog_job"
    assert failure.text == "FairStream run failed: catalog_job: worker crashed (http://ui:3000/runs/r1)"
    assert failure.fields == {
        "job_name": "catalog_job",
        "partition": None,
        "failed_steps": [],
        "error": "worker crashed",
        "run_id": "r1",
        "run_url": "http://ui:3000/runs/r1",
    }


@dg.asset(partitions_def=months)
def statements_in_an_outage() -> None:
    try:
        raise psycopg2.OperationalError('connection to server at "127.0.0.1", port 5432 failed: Connection refused')
    except psycopg2.OperationalError as exc:
        raise DagsterPostgresException("too many retries for DB connection") from exc


outage_defs = dg.Definitions(
    assets=[statements_in_an_outage],
    jobs=[dg.define_asset_job("monthly_payout_job", selection=[statements_in_an_outage])],
)


def alert_on_outage(webhook, tags: dict) -> None:
    alerts = AlertsResource(webhook_url=webhook.url, **FAST)
    instance = dg.DagsterInstance.ephemeral()
    result = outage_defs.resolve_job_def("monthly_payout_job").execute_in_process(
        partition_key="2026-10", raise_on_error=False, instance=instance, tags=tags
    )
    alert_on_failure(instance, result, alerts)


def test_a_run_failed_by_a_database_outage_is_rerun_not_alerted(webhook):
    alert_on_outage(webhook, {})
    assert webhook.requests == []


def test_the_last_rerun_after_an_outage_is_alerted(webhook):
    alert_on_outage(webhook, {"fairstream/outage_rerun": "2"})
    assert [r["json"]["error"] for r in webhook.requests] == [
        "dagster_postgres.utils.DagsterPostgresException: too many retries for DB connection"
    ]

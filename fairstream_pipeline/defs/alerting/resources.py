"""The ``alerts`` resource: where failure and dead-letter alerts go (webhook and/or email).

Configuration (environment, read when the code location loads; empty means the default):

=================================  ==========================  ===============================
``FAIRSTREAM_UI_BASE_URL``         ``http://127.0.0.1:3000``   base of the run link
``FAIRSTREAM_ALERT_WEBHOOK_URL``   (empty: webhook off)        secret, passed as ``dg.EnvVar``
``FAIRSTREAM_SMTP_HOST``           (empty: email off)
``FAIRSTREAM_SMTP_PORT``           ``587``
``FAIRSTREAM_SMTP_STARTTLS``       ``true``                    true/false, yes/no, 1/0
``FAIRSTREAM_SMTP_USER``           (empty: no login)           secret, passed as ``dg.EnvVar``
``FAIRSTREAM_SMTP_PASSWORD``       (empty)                     secret, passed as ``dg.EnvVar``
``FAIRSTREAM_ALERT_FROM``          (empty)                     needed for email
``FAIRSTREAM_ALERT_TO``            (empty)                     comma-separated, needed for email
=================================  ==========================  ===============================
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import dagster as dg

from fairstream_pipeline.lib.alerting import alerts as lib
from fairstream_pipeline.settings import parse_flag

ENV_DEFAULTS = {
    "FAIRSTREAM_UI_BASE_URL": lib.DEFAULT_UI_BASE_URL,
    "FAIRSTREAM_ALERT_WEBHOOK_URL": "",
    "FAIRSTREAM_SMTP_HOST": "",
    "FAIRSTREAM_SMTP_PORT": "587",
    "FAIRSTREAM_SMTP_STARTTLS": "true",
    "FAIRSTREAM_SMTP_USER": "",
    "FAIRSTREAM_SMTP_PASSWORD": "",
    "FAIRSTREAM_ALERT_FROM": "",
    "FAIRSTREAM_ALERT_TO": "",
}
SECRETS = ("FAIRSTREAM_ALERT_WEBHOOK_URL", "FAIRSTREAM_SMTP_USER", "FAIRSTREAM_SMTP_PASSWORD")


class AlertsResource(dg.ConfigurableResource):
    """Where alerts go: a JSON webhook and/or email over SMTP (see ``fairstream_pipeline.lib.alerting.alerts``)."""

    webhook_url: str = ""
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_user: str = ""
    smtp_password: str = ""
    alert_from: str = ""
    alert_to: str = ""
    ui_base_url: str = lib.DEFAULT_UI_BASE_URL
    retry_attempts: int = 4
    retry_base_seconds: float = 1.0
    retry_cap_seconds: float = 30.0
    timeout_seconds: float = 5.0

    def budget(self) -> lib.RetryBudget:
        return lib.RetryBudget(
            attempts=self.retry_attempts,
            base_seconds=self.retry_base_seconds,
            cap_seconds=self.retry_cap_seconds,
            timeout_seconds=self.timeout_seconds,
        )

    def smtp(self) -> lib.SmtpSettings | None:
        if not self.smtp_host:
            return None
        return lib.SmtpSettings(
            host=self.smtp_host,
            port=self.smtp_port,
            starttls=self.smtp_starttls,
            user=self.smtp_user,
            password=self.smtp_password,
            sender=self.alert_from,
            recipients=tuple(a.strip() for a in self.alert_to.split(",") if a.strip()),
        )

    @property
    def channels(self) -> list[str]:
        """The channels that are on (``webhook``, ``email``); empty: alerts are not configured."""
        return lib.alert_channels(self.webhook_url, self.smtp_host)

    def run_url(self, run_id: str) -> str:
        return lib.run_url(self.ui_base_url, run_id)

    def send(
        self,
        subject: str,
        fields: Mapping[str, Any],
        *,
        text: str | None = None,
        log: logging.Logger | None = None,
    ) -> list[str]:
        """Send one alert to every configured channel; return those that delivered it.

        Raises ``lib.AlertDeliveryError`` when a configured channel failed; logs a warning and
        returns ``[]`` when none is configured.
        """
        return lib.send_alert(
            subject,
            fields,
            text=text,
            webhook_url=self.webhook_url,
            smtp=self.smtp(),
            budget=self.budget(),
            log=log or dg.get_dagster_logger(),
        )


def _env(name: str) -> str:
    return os.environ.get(name) or ENV_DEFAULTS[name]


def _bool_setting(name: str) -> bool:
    return parse_flag(name, _env(name))


def _int_setting(name: str) -> int:
    value = _env(name)
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}: expected an integer, got {value!r}") from None


def alerts_from_env() -> AlertsResource:
    """The ``alerts`` resource configured from the environment; secrets stay ``dg.EnvVar``."""

    def secret(name: str) -> Any:
        return dg.EnvVar(name) if os.environ.get(name) else ""

    return AlertsResource(
        webhook_url=secret("FAIRSTREAM_ALERT_WEBHOOK_URL"),
        smtp_host=_env("FAIRSTREAM_SMTP_HOST"),
        smtp_port=_int_setting("FAIRSTREAM_SMTP_PORT"),
        smtp_starttls=_bool_setting("FAIRSTREAM_SMTP_STARTTLS"),
        smtp_user=secret("FAIRSTREAM_SMTP_USER"),
        smtp_password=secret("FAIRSTREAM_SMTP_PASSWORD"),
        alert_from=_env("FAIRSTREAM_ALERT_FROM"),
        alert_to=_env("FAIRSTREAM_ALERT_TO"),
        ui_base_url=_env("FAIRSTREAM_UI_BASE_URL"),
    )


@dg.definitions
def alerting_resources() -> dg.Definitions:
    return dg.Definitions(resources={"alerts": alerts_from_env()})

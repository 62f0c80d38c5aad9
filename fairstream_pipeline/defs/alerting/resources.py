"""The ``alerts`` resource: where failure and dead-letter alerts go (webhook and/or email).

Configured from ``fairstream_pipeline.settings`` when the code location loads: ``FAIRSTREAM_UI_BASE_URL``,
``FAIRSTREAM_ALERT_WEBHOOK_URL`` (empty: webhook off), ``FAIRSTREAM_SMTP_HOST`` (empty: email off),
``_PORT``, ``_STARTTLS``, ``_USER``, ``_PASSWORD``, ``FAIRSTREAM_ALERT_FROM`` and ``FAIRSTREAM_ALERT_TO``
(comma-separated). The secrets (webhook URL, SMTP user and password) are passed as ``dg.EnvVar``.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

import dagster as dg

from fairstream_pipeline.defs.resources import env_var
from fairstream_pipeline.lib.alerting import alerts as lib
from fairstream_pipeline.lib.notifications.smtp import SmtpSettings
from fairstream_pipeline.settings import DEFAULT_UI_BASE_URL, get_settings


class AlertsResource(dg.ConfigurableResource):
    """Where alerts go: a JSON webhook and/or email over SMTP (see ``fairstream_pipeline.lib.alerting.alerts``)."""

    # where alerts go
    webhook_url: str = ""
    alert_from: str = ""
    alert_to: str = ""
    # the relay of alert emails (an empty host: no email)
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_user: str = ""
    smtp_password: str = ""
    ui_base_url: str = DEFAULT_UI_BASE_URL
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

    def smtp(self) -> SmtpSettings | None:
        """The relay of alert emails, sending as ``alert_from``; ``None`` when email is off."""
        if not self.smtp_host:
            return None
        return SmtpSettings(
            host=self.smtp_host, port=self.smtp_port, starttls=self.smtp_starttls,
            user=self.smtp_user, password=self.smtp_password,
            mail_from=self.alert_from, timeout_seconds=self.timeout_seconds,
        )

    @property
    def recipients(self) -> tuple[str, ...]:
        """The addresses of ``alert_to``."""
        return tuple(a.strip() for a in self.alert_to.split(",") if a.strip())

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
            recipients=self.recipients,
            budget=self.budget(),
            log=log or dg.get_dagster_logger(),
        )


def alerts_from_env() -> AlertsResource:
    """The ``alerts`` resource from the settings; the secrets stay ``dg.EnvVar``."""
    settings = get_settings()
    return AlertsResource(
        webhook_url=env_var("alert_webhook_url"),
        smtp_host=settings.smtp_host,
        smtp_port=settings.smtp_port,
        smtp_starttls=settings.smtp_starttls,
        smtp_user=env_var("smtp_user"),
        smtp_password=env_var("smtp_password"),
        alert_from=settings.alert_from,
        alert_to=settings.alert_to,
        ui_base_url=settings.ui_base_url,
    )

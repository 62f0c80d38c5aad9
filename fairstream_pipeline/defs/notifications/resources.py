"""The ``smtp`` resource: the mail relay for statement emails.

Configured from ``fairstream_pipeline.settings`` when the code location loads: ``FAIRSTREAM_SMTP_HOST``
(empty: sending is not configured), ``_PORT``, ``_STARTTLS``, ``_USER``, ``_PASSWORD``,
``FAIRSTREAM_MAIL_FROM`` (required to send) and ``FAIRSTREAM_MAIL_RATE_PER_SECOND`` (0: no limit).
Those that are set, except STARTTLS and the rate, are passed as ``dg.EnvVar``.
"""

import dataclasses

import dagster as dg

from fairstream_pipeline.defs.resources import env_var
from fairstream_pipeline.lib.notifications.mail_sender import SenderSettings
from fairstream_pipeline.lib.notifications.smtp import SmtpSettings
from fairstream_pipeline.settings import env_name, get_settings

DB_NOT_CONFIGURED = "not configured: FAIRSTREAM_DATABASE_URL is empty"
SMTP_NOT_CONFIGURED = "not configured: FAIRSTREAM_SMTP_HOST is empty"


class SmtpResource(dg.ConfigurableResource):
    """The mail relay for statement emails (FAIRSTREAM_SMTP_HOST, _PORT, _STARTTLS, _USER,
    _PASSWORD, FAIRSTREAM_MAIL_FROM, FAIRSTREAM_MAIL_RATE_PER_SECOND). Empty host: not configured."""

    host: str = ""
    port: int = SmtpSettings.port
    starttls: bool = SmtpSettings.starttls
    user: str = SmtpSettings.user
    password: str = SmtpSettings.password
    mail_from: str = SmtpSettings.mail_from
    timeout_seconds: float = SmtpSettings.timeout_seconds
    rate_per_second: float = SenderSettings.rate_per_second

    @property
    def configured(self) -> bool:
        return bool(self.host)

    def relay(self) -> SmtpSettings:
        """The relay's settings: every field of ``SmtpSettings`` has its namesake here."""
        return SmtpSettings(**{field.name: getattr(self, field.name) for field in dataclasses.fields(SmtpSettings)})


def smtp_from_env() -> SmtpResource:
    """The ``smtp`` resource from the settings; the variables that are set are passed as ``dg.EnvVar``."""
    settings = get_settings()
    return SmtpResource(
        host=env_var("smtp_host"),
        port=dg.EnvVar.int(env_name("smtp_port")) if "smtp_port" in settings.model_fields_set else settings.smtp_port,
        starttls=settings.smtp_starttls,
        user=env_var("smtp_user"),
        password=env_var("smtp_password"),
        mail_from=env_var("mail_from"),
        rate_per_second=settings.mail_rate_per_second,
    )

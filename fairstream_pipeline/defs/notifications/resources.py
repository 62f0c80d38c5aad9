"""The ``smtp`` resource: the mail relay for statement emails.

Environment (read when the code location loads; empty means the default):

==================================  =========  ================================================
``FAIRSTREAM_SMTP_HOST``            (empty)    the relay; empty: sending is not configured
``FAIRSTREAM_SMTP_PORT``            ``587``
``FAIRSTREAM_SMTP_STARTTLS``        ``true``   true/false, yes/no, 1/0
``FAIRSTREAM_SMTP_USER``            (empty)    secret, ``dg.EnvVar``; empty: no login
``FAIRSTREAM_SMTP_PASSWORD``        (empty)    secret, ``dg.EnvVar``
``FAIRSTREAM_MAIL_FROM``            (empty)    the From address; required to send
``FAIRSTREAM_MAIL_RATE_PER_SECOND`` ``10``     messages per second (0: no limit)
==================================  =========  ================================================
"""

import os
from typing import Any

import dagster as dg

from fairstream_pipeline.lib.notifications.mail_sender import RelaySettings

DB_NOT_CONFIGURED = "not configured: FAIRSTREAM_DATABASE_URL is empty"
SMTP_NOT_CONFIGURED = "not configured: FAIRSTREAM_SMTP_HOST is empty"



class SmtpResource(dg.ConfigurableResource):
    """The mail relay for statement emails (FAIRSTREAM_SMTP_HOST, _PORT, _STARTTLS, _USER,
    _PASSWORD, FAIRSTREAM_MAIL_FROM, FAIRSTREAM_MAIL_RATE_PER_SECOND). Empty host: not configured."""

    host: str = ""
    port: int = 587
    starttls: bool = True
    user: str = ""
    password: str = ""
    mail_from: str = ""
    timeout_seconds: float = 30.0
    rate_per_second: float = 10.0

    @property
    def configured(self) -> bool:
        return bool(self.host)

    def relay(self) -> RelaySettings:
        return RelaySettings(
            host=self.host,
            port=self.port,
            starttls=self.starttls,
            user=self.user,
            password=self.password,
            mail_from=self.mail_from,
            timeout_seconds=self.timeout_seconds,
        )


def _parse_bool(name: str, default: str) -> bool:
    value = (os.environ.get(name) or default).strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name}: expected true or false, got {value!r}")


def _parse_rate(name: str, default: str) -> float:
    value = os.environ.get(name) or default
    try:
        rate = float(value)
    except ValueError:
        raise ValueError(f"{name}: expected a number of messages per second, got {value!r}") from None
    if rate < 0:
        raise ValueError(f"{name}: must be >= 0 (0: no limit), got {value!r}")
    return rate


def smtp_from_env() -> SmtpResource:
    """The ``smtp`` resource from the environment; set values are passed as ``dg.EnvVar``."""

    def env(name: str, default: Any = "") -> Any:
        return dg.EnvVar(name) if os.environ.get(name) else default

    return SmtpResource(
        host=env("FAIRSTREAM_SMTP_HOST"),
        port=dg.EnvVar.int("FAIRSTREAM_SMTP_PORT") if os.environ.get("FAIRSTREAM_SMTP_PORT") else 587,
        starttls=_parse_bool("FAIRSTREAM_SMTP_STARTTLS", "true"),
        user=env("FAIRSTREAM_SMTP_USER"),
        password=env("FAIRSTREAM_SMTP_PASSWORD"),
        mail_from=env("FAIRSTREAM_MAIL_FROM"),
        rate_per_second=_parse_rate("FAIRSTREAM_MAIL_RATE_PER_SECOND", "10"),
    )



@dg.definitions
def notification_resources() -> dg.Definitions:
    return dg.Definitions(resources={"smtp": smtp_from_env()})

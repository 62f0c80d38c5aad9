"""The SMTP relay: where and how to reach it (``SmtpSettings``) and opening a session (``open_session``).

One type for both senders: the statement sender (``mail_sender``, one connection kept open for a
run) and the alert email (``lib.alerting.alerts``, one connection per try, its recipients passed
beside the settings).
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to reach the SMTP relay, and the sender address (the envelope and ``From``)."""

    host: str
    port: int = 587
    starttls: bool = True
    user: str = ""  # empty: no login
    password: str = field(default="", repr=False)  # never in logs
    mail_from: str = ""
    timeout_seconds: float = 30.0  # per socket operation


def open_session(settings: SmtpSettings, timeout_seconds: float | None = None) -> smtplib.SMTP:
    """A session with the relay: connected (a greeting other than 220 raises ``SMTPConnectError``),
    ``EHLO``, ``STARTTLS`` (then ``EHLO`` again) when ``starttls``, ``LOGIN`` when a user is set.
    ``timeout_seconds`` overrides the settings' timeout. Closed again when a step fails."""
    timeout = settings.timeout_seconds if timeout_seconds is None else timeout_seconds
    session = smtplib.SMTP(settings.host, settings.port, timeout=timeout)
    try:
        session.ehlo()
        if settings.starttls:
            session.starttls(context=ssl.create_default_context())
            session.ehlo()
        if settings.user:
            session.login(settings.user, settings.password)
    except BaseException:
        session.close()
        raise
    return session

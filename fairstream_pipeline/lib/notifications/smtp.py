"""The SMTP relay: where and how to reach it, a session with it, and what its errors mean.

* ``SmtpSettings`` and ``open_session``: one type for both senders: the statement sender
  (``mail_sender``, one :class:`RelayConnection` kept open for a run) and the alert email
  (``lib.alerting.alerts``, one session per try, its recipients passed beside the settings).
* :func:`classify`: what a failed delivery means: ``permanent`` (the relay will never take this
  message), ``transient`` (try it again later) or ``transport`` (the relay is not answering).
* :func:`connect_error_is_fatal` and :class:`RelayMisconfigured`: a relay that rejects our
  configuration, which no retry fixes.
* :func:`describe_error`: a failed delivery as one line, for logs, alerts and ``last_error``.
"""

from __future__ import annotations

import smtplib
import ssl
import time
import urllib.error
from dataclasses import dataclass, field
from email.utils import parseaddr

SENT, TRANSIENT, PERMANENT, TRANSPORT = "sent", "transient", "permanent", "transport"


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


class RelayConnection:
    """One SMTP connection, opened on demand, reused, dropped after a transport failure."""

    def __init__(self, settings: SmtpSettings, idle_check_seconds: float = 10.0):
        self.settings = settings
        self.idle_check_seconds = idle_check_seconds
        self.connections = 0
        self._smtp: smtplib.SMTP | None = None
        self._last_used = 0.0

    @property
    def connected(self) -> bool:
        return self._smtp is not None and self._smtp.sock is not None

    def connect(self) -> None:
        self._smtp = open_session(self.settings)
        self.connections += 1
        self._last_used = time.monotonic()

    def probe_if_idle(self) -> None:
        """A connection idle for a while may have been closed by the relay: NOOP, drop if dead."""
        if self.connected and time.monotonic() - self._last_used > self.idle_check_seconds:
            try:
                code, _ = self._smtp.noop()
                if code != 250:
                    self.drop()
            except OSError:
                self.drop()

    def deliver(self, content: bytes, recipient: str) -> None:
        """Send one message to one recipient; raises the smtplib/socket error when not accepted."""
        try:
            self._smtp.sendmail(parseaddr(self.settings.mail_from)[1], [recipient], content)
        finally:
            self._last_used = time.monotonic()

    def drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
        self._smtp = None

    def close(self) -> None:
        if self.connected:
            try:
                self._smtp.quit()
            except OSError:
                pass
        self.drop()


class RelayMisconfigured(RuntimeError):
    """The relay rejects our configuration (login, TLS, sender address): retrying will not help."""


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def reply_code(error: BaseException) -> int | None:
    """The SMTP reply code behind an smtplib error, if the relay answered."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return min(codes) if codes else None
    if isinstance(error, smtplib.SMTPResponseException):
        return error.smtp_code
    return None


def describe_error(error: BaseException) -> str:
    """``550 mailbox unavailable`` (the relay's reply), ``HTTP 502 Bad Gateway`` (the alert
    webhook's answer), or ``ConnectionRefusedError: [Errno 111] ...``."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "; ".join(f"{code} {_text(text)}" for code, text in error.recipients.values())
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{error.smtp_code} {_text(error.smtp_error)}"
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"{type(error.reason).__name__}: {error.reason}"
    return f"{type(error).__name__}: {error}"


def classify(error: BaseException) -> str:
    """``permanent`` (5xx, a message the relay cannot take), ``transport`` (the relay is not
    answering: connection errors, timeouts, 421) or ``transient`` (another 4xx)."""
    code = reply_code(error)
    if code is not None:
        if code == 421:
            return TRANSPORT
        return PERMANENT if 500 <= code < 600 else TRANSIENT
    if isinstance(error, smtplib.SMTPNotSupportedError):  # e.g. a non-ASCII address without SMTPUTF8
        return PERMANENT
    if isinstance(error, OSError):  # smtplib errors, refused, reset, timeouts
        return TRANSPORT
    if isinstance(error, (UnicodeError, ValueError)):
        return PERMANENT
    return TRANSIENT


def connect_error_is_fatal(error: BaseException) -> bool:
    """A connect error that retrying cannot fix: rejected login, no STARTTLS or AUTH, bad certificate."""
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return error.smtp_code >= 500
    if isinstance(error, (smtplib.SMTPNotSupportedError, ssl.SSLCertVerificationError)):
        return True
    return type(error) is smtplib.SMTPException  # "No suitable authentication method found."

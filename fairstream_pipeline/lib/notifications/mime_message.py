"""An outbox message as an email: the MIME message (``build_message``) and its bytes on the wire (``render``)."""

from __future__ import annotations

from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, formatdate, parseaddr

from fairstream_pipeline.lib.notifications.message import Message


def message_id_header(message_id: str) -> str:
    return message_id if message_id.startswith("<") else f"<{message_id}>"


class _HeaderClasses(HeaderRegistry):
    """The stock registry builds a new class for every header it parses; this one builds each once."""

    def __init__(self):
        super().__init__()
        self._classes: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        if key not in self._classes:
            self._classes[key] = super().__getitem__(key)
        return self._classes[key]


# The SMTP policy (CRLF line ends, RFC 2047 headers when needed) with the header classes cached.
POLICY = SMTP.clone(header_factory=_HeaderClasses())
UTF8_BASE64 = {"cte": "base64", "params": {"charset": "utf-8"}}


def build_message(message: Message, mail_from: str) -> EmailMessage:
    """multipart/mixed: text and HTML alternatives, then the CSV attachment; Message-ID from the row.

    Each part is the row's text as UTF-8 in base64, so it decodes to exactly that text (``set_content``
    of a str would end the HTML with a newline). ``EmailMessage`` parses every header it sets: 2.2 ms
    of CPU a message with the SMTP policy, 0.6 ms with the legacy ``email.mime`` classes; ``POLICY``
    caches the header classes: 1.4 ms (28 s for 20,000), small next to the default 10 messages/s.
    """
    root = EmailMessage(policy=POLICY)
    root["From"] = formataddr(parseaddr(mail_from))
    root["To"] = message.recipient
    root["Subject"] = message.subject
    root["Date"] = formatdate(usegmt=True)
    root["Message-ID"] = message_id_header(message.message_id)
    root["Auto-Submitted"] = "auto-generated"
    root.set_content(message.body_text.encode(), "text", "plain", **UTF8_BASE64)
    root.add_alternative(message.body_html.encode(), "text", "html", **UTF8_BASE64)
    root.add_attachment(message.attachment_csv.encode(), "text", "csv", filename=message.attachment_name, **UTF8_BASE64)
    return root


def render(message: EmailMessage) -> bytes:
    """The bytes on the wire (CRLF line ends)."""
    return message.as_bytes()

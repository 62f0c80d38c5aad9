"""One email of the outbox: what the statement renderer produces, the outbox stores and the sender sends."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Message:
    """One message, as queued; ``outbox_queue.OutboxMessage`` adds a claimed row's id and attempts."""

    month: str
    payee_id: str
    kind: str
    recipient: str | None  # None: the payee has no email address (status no_address)
    subject: str
    body_text: str
    body_html: str
    attachment_name: str
    attachment_csv: str
    message_id: str

    @property
    def status(self) -> str:
        """The status its outbox row is created with."""
        return "pending" if self.recipient else "no_address"

    def as_row(self) -> tuple:
        """Its outbox row: the fields above, then the status (``app_db.store.OUTBOX_COLUMNS``)."""
        return (*(getattr(self, name) for name in MESSAGE_FIELDS), self.status)


MESSAGE_FIELDS = tuple(f.name for f in fields(Message))

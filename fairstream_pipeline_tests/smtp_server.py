"""A real SMTP server on loopback (aiosmtpd) whose answers the tests script.

* ``rcpt_script[address]``: the reply to ``RCPT TO`` for that address, e.g. ``"550 5.1.1 no such
  mailbox"``; the special value ``DROP`` closes the connection without a reply.
* ``data_script[n]``: the reply to the ``n``-th ``DATA`` (0-based, counted over the server's life),
  e.g. ``"421 4.3.2 try later"``, ``DROP``, or ``HANG`` (say nothing for ``hang_seconds``, then
  refuse with a 451: the client has timed out by then, and nothing is recorded).
* ``down()`` stops listening (connections are refused); ``up()`` listens again on the same port.

Every accepted message is recorded with its envelope and parsed ``Message-ID``.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesHeaderParser

from aiosmtpd.controller import Controller

DROP = "DROP"
HANG = "HANG"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message_id: str
    content: bytes

    @property
    def message(self) -> EmailMessage:
        """The whole message, parsed (on demand: parsing every message would slow the relay down)."""
        return email.message_from_bytes(self.content, policy=email.policy.default)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ScriptedRelay:
    """The handler and its controller; ``received`` holds what the relay accepted."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.rcpt_script: dict[str, str] = {}
        self.data_script: dict[int, str] = {}
        self.hang_seconds = 2.0
        self.received: list[Received] = []
        self.data_commands = 0
        self.sessions = 0  # EHLO/HELO greetings: one per client connection
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    # --- lifecycle -------------------------------------------------------------------------
    def up(self) -> "ScriptedRelay":
        if self._controller is None:
            self._controller = Controller(self, hostname=self.host, port=self.port)
            self._controller.start()
        return self

    def down(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    # --- what arrived ----------------------------------------------------------------------
    def message_ids(self) -> Counter:
        with self._lock:
            return Counter(item.message_id for item in self.received)

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    # --- aiosmtpd hooks --------------------------------------------------------------------
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        with self._lock:
            self.sessions += 1
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        action = self.rcpt_script.get(address)
        if action == DROP:
            server.transport.close()
            return "421 closing"  # never reaches the client
        if action is not None:
            return action
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            index = self.data_commands
            self.data_commands += 1
        action = self.data_script.get(index)
        if action == DROP:
            server.transport.close()
            return "451 closing"  # never reaches the client
        if action == HANG:
            await asyncio.sleep(self.hang_seconds)
            return "451 4.4.2 too late"
        if action is not None:
            return action
        content = envelope.original_content
        headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(content)
        with self._lock:
            self.received.append(
                Received(envelope.mail_from, tuple(envelope.rcpt_tos), str(headers["Message-ID"]).strip(), content)
            )
        return "250 Message accepted for delivery"

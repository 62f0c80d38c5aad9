"""What a send run tells: its :class:`SendReport` (counts, the queue it left, why it stopped) and its
log lines (:class:`FallbackLog`, a log that never fails the send)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


@dataclass
class SendReport:
    """What one run did, and what it left in the queue."""

    worker: str
    sent: int = 0
    retried: int = 0
    dead: int = 0
    returned_to_pending: int = 0  # claimed, never attempted, given back untouched
    reclaimed: int = 0  # stale 'sending' rows of a killed sender, back to 'pending'
    reclaimed_dead: int = 0  # stale rows that had used every attempt
    lost_claims: int = 0  # outcomes not recorded because another sender reclaimed the row
    connections: int = 0
    elapsed_seconds: float = 0.0
    months: set[str] = field(default_factory=set)
    breaker_open: bool = False
    breaker_reason: str = ""
    stopped_by_signal: int | None = None
    queue: dict[str, int] = field(default_factory=dict)  # pending / retry / sending after the run

    @property
    def throughput(self) -> float:
        """Messages sent per second of the run."""
        return self.sent / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    @property
    def queue_depth(self) -> int:
        """Rows still to send after the run (pending + retry)."""
        return self.queue.get("pending", 0) + self.queue.get("retry", 0)

    @property
    def relay_unavailable_message(self) -> str:
        left = f"{self.queue.get('pending', 0)} messages left pending"
        if self.queue.get("retry", 0):
            left += f", {self.queue['retry']} scheduled for retry"
        return f"SMTP relay unavailable: {self.breaker_reason}; {left}"


class FallbackLog:
    """A logger that never fails the send: each line goes to ``primary`` (the run's event log) and,
    when that raises (the Dagster instance's database is unreachable), to ``fallback`` (stderr,
    captured in the step's compute logs) with a note. A send rides out an instance outage the way
    it rides out one of the application database."""

    def __init__(self, primary, fallback: logging.Logger = logger):
        self.primary, self.fallback = primary, fallback
        self.lines_not_recorded = 0

    def _emit(self, level: str, message: str) -> None:
        try:
            getattr(self.primary, level)(message)
        except Exception as exc:  # noqa: BLE001 - whatever the event log's storage raises
            self.lines_not_recorded += 1
            getattr(self.fallback, level)(
                f"{message} [not in the run's event log: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}]"
            )

    def debug(self, message: str) -> None:
        self._emit("debug", message)

    def info(self, message: str) -> None:
        self._emit("info", message)

    def warning(self, message: str) -> None:
        self._emit("warning", message)

    def error(self, message: str) -> None:
        self._emit("error", message)


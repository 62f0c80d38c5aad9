"""What paces and stops a send run: the rate limit shared by every sender (:class:`SharedRateLimiter`),
the circuit breaker on the relay (:class:`CircuitBreaker`) and the graceful stop (:class:`StopSignal`).

How a run uses them: ``fairstream_pipeline.lib.notifications.mail_sender``.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

from fairstream_pipeline.lib.notifications import outbox_queue as queue


class StopSignal:
    """A stop request: from SIGTERM/SIGINT (see :meth:`installed`) or from :meth:`request`."""

    SLICE_SECONDS = 0.05

    def __init__(self):
        self.signum: int | None = None
        self._requested = False
        self._escalated = False

    @property
    def requested(self) -> bool:
        return self._requested

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "a stop request"

    def request(self, signum: int | None = None) -> None:
        if self.signum is None:
            self.signum = signum
        self._requested = True

    def sleep(self, seconds: float) -> bool:
        """Sleep in short slices; False as soon as a stop is requested."""
        end = time.monotonic() + seconds
        while not self._requested:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return True
            time.sleep(min(self.SLICE_SECONDS, remaining))
        return False

    @contextmanager
    def installed(
        self, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT), redeliver: bool = True
    ) -> Iterator["StopSignal"]:
        """Catch ``signals`` in the block (main thread only); afterwards, with ``redeliver``, raise
        the caught one again for the previous handler. A second signal goes there at once."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {number: signal.getsignal(number) for number in signals}

        def restore() -> None:
            for number, handler in previous.items():
                signal.signal(number, handler if handler is not None else signal.SIG_DFL)

        def handle(signum, frame) -> None:
            if self._requested:  # asked twice: stop now, the way the process was told to
                self._escalated = True
                restore()
                signal.raise_signal(signum)
                return
            self.request(signum)  # only a flag: no logging, no locks in a signal handler

        for number in signals:
            signal.signal(number, handle)
        try:
            yield self
        finally:
            restore()
            if redeliver and self.signum is not None and not self._escalated:
                signal.raise_signal(self.signum)


class SharedRateLimiter:
    """At most ``rate_per_second`` messages per second for **all senders together**; 0: no limit.

    The slots live in PostgreSQL (``outbox_send_slots``), next to the outbox: every sender takes the
    next slot in a short transaction and waits for it, so two senders at 25/s send 25/s in all, not
    50. (PostgreSQL rather than Redis: the outbox already needs it, it is on the database clock, and
    there is nothing more to run or lose.)
    """

    def __init__(self, db: Callable, rate_per_second: float, stop: StopSignal):
        self.db = db  # runs a function of a cursor in a transaction, riding out outages
        self.interval = 1.0 / rate_per_second if rate_per_second > 0 else 0.0
        self.stop = stop

    def wait(self) -> bool:
        """Take the next slot and wait for it; False if a stop was requested meanwhile."""
        if self.interval:
            delay = self.db(lambda cursor: queue.reserve_send_slot(cursor, self.interval), "taking a send slot")
            if delay > 0 and not self.stop.sleep(delay):
                return False
        return not self.stop.requested


class CircuitBreaker:
    """Opens after ``threshold`` consecutive transport failures."""

    def __init__(self, threshold: int):
        self.threshold = threshold
        self.failures = 0
        self.last_error = ""

    def failure(self, error: str) -> None:
        self.failures += 1
        self.last_error = error

    def relay_answered(self) -> None:
        self.failures = 0

    @property
    def is_open(self) -> bool:
        return self.failures >= self.threshold

    @property
    def reason(self) -> str:
        return f"{self.failures} consecutive failures ({self.last_error})"

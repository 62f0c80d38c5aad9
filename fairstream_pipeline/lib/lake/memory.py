"""Resident memory of this process: sampled while something runs, for the peak of one step or shard."""

from __future__ import annotations

import os
import resource
import threading
import time

PAGE = os.sysconf("SC_PAGE_SIZE")


class RssSampler(threading.Thread):
    """Samples this process's resident set size every ``interval`` seconds (from /proc/self/statm)."""

    def __init__(self, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, int]] = []
        self.interval = interval
        self._done = threading.Event()

    def run(self) -> None:
        with open("/proc/self/statm") as statm:
            while not self._done.is_set():
                statm.seek(0)
                self.samples.append((time.time(), int(statm.read().split()[1]) * PAGE))
                self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()

    def peak(self) -> int:
        return max((rss for _, rss in self.samples), default=0)

    def peak_between(self, start: float, end: float) -> int:
        inside = [rss for t, rss in self.samples if start <= t <= end]
        return max(inside, default=0)

    def __enter__(self) -> "RssSampler":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def peak_rss_bytes() -> int:
    """The highest resident set size this process has had (``getrusage``)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

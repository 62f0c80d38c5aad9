"""Named fault points, so that the fault suite can kill or hold a run exactly where it wants to.

``FAIRSTREAM_FAULT_POINT`` names one point (``ingestion``, ``counting``,
``publish:<assets>:before``, ``publish:<assets>:after``); when the code reaches it, the process
kills itself with SIGKILL, as ``kill -9`` would: no cleanup, no last event.

With ``FAIRSTREAM_FAULT_PAUSE_FILE`` also set, the point holds the run instead of killing it: it
creates that file and waits (at most ``PAUSE_LIMIT_SECONDS``) until the test deletes it, so that a
test can break something (stop a database) while the run is known to be inside a step. It holds
once: it then leaves ``<file>.released`` behind, and a re-run passes the point.

Both are read from ``fairstream_pipeline.settings`` each time a point is reached; unset (always,
outside the fault tests) a point does nothing else.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from fairstream_pipeline.settings import get_settings

PAUSE_LIMIT_SECONDS = 600


def fault_point(name: str) -> None:
    """Die here with SIGKILL when ``FAIRSTREAM_FAULT_POINT`` is ``name`` (or pause, see the module)."""
    settings = get_settings()
    if settings.fault_point != name:
        return
    pause_file = settings.fault_pause_file
    if not pause_file:
        os.kill(os.getpid(), signal.SIGKILL)
        return
    marker = Path(pause_file)
    released = marker.with_name(marker.name + ".released")
    if released.exists():
        return
    marker.write_text(f"{name} {os.getpid()}\n")
    deadline = time.monotonic() + PAUSE_LIMIT_SECONDS
    while marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    released.touch()

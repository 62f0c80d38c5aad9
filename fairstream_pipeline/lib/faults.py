"""Named fault points, so that the fault suite can kill a run exactly where it wants to.

``FAIRSTREAM_FAULT_POINT`` names one point (``ingestion``, ``counting``,
``publish:<assets>:before``, ``publish:<assets>:after``, ``send``); when the code reaches it, the
process kills itself with SIGKILL, as ``kill -9`` would: no cleanup, no last event. Unset (always,
outside the fault tests) a fault point costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

FAULT_POINT = "FAIRSTREAM_FAULT_POINT"


def fault_point(name: str) -> None:
    """Die here with SIGKILL when ``FAIRSTREAM_FAULT_POINT`` is ``name``."""
    if os.environ.get(FAULT_POINT) == name:
        os.kill(os.getpid(), signal.SIGKILL)

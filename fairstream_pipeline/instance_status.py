"""What the Dagster instance says about the deployment, for ``fairstream health`` and ``serve-status``.

The health decisions themselves are plain functions in :mod:`fairstream_pipeline.lib.alerting.health`; this
module is where Dagster is read (``lib/`` stays free of it).
"""

from __future__ import annotations

import dagster as dg


def heartbeats(instance: dg.DagsterInstance) -> dict[str, float]:
    """``{daemon_type: unix timestamp}`` of the latest heartbeat of each daemon of ``instance``."""
    return {daemon: beat.timestamp for daemon, beat in instance.get_daemon_heartbeats().items()}


def read_heartbeats() -> dict[str, float]:
    """The heartbeats of the ``DAGSTER_HOME`` instance, opened for this one read."""
    with dg.DagsterInstance.get() as instance:
        return heartbeats(instance)

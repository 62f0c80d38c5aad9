"""Which failed runs were failed by a database outage, and may therefore be run again as they were.

A payout run's steps are deterministic: the same landing zone gives the same cents, and a failed
money check or a contract error must stay failed (no retry, see docs/operations.md, "Retries"). A step can also
fail because a database it talks to was unreachable for longer than the driver retries:

- the **instance** storage (runs and events; ``dagster-postgres`` retries a lost connection five
  times, about 6 s, then raises ``DagsterPostgresException: too many retries for DB connection``);
- the **application database** (statements and outbox), after the step's own retry policy.

Such a failure says nothing about the data. The ``rerun_after_database_outage`` sensor requests
the month again, at most ``MAX_OUTAGE_RERUNS`` times per original run; every re-run is idempotent
(versioned lake, closed months immutable, outbox rows keyed per payee and month).

When the instance itself is down at the moment the step fails, the failure cannot be recorded as a
step's: the run fails as a whole ("An exception was thrown during execution") and Dagster's own
``run_retries`` re-launches it. This module only covers the failures that were recorded as a step's.

The error is matched on its exception classes and messages, over the whole chain (``cause`` and
``context``): a match anywhere in the chain means the outage is what failed the step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

MAX_OUTAGE_RERUNS = 2
OUTAGE_RERUN_TAG = "fairstream/outage_rerun"  # 1, 2: which re-run after an outage this run is
RERUN_OF_TAG = "fairstream/rerun_of"  # the run that failed first (the same for every re-run)

# Exception classes that mean "the database could not be reached", whatever the statement was.
OUTAGE_CLASSES = frozenset({"DagsterPostgresException", "OperationalError", "InterfaceError", "AdminShutdown"})
# Messages of those classes that are about the connection, not about the SQL (an OperationalError
# is also what PostgreSQL raises for a statement timeout or a serialization failure).
OUTAGE_MESSAGES = (
    "too many retries for db connection",
    "could not connect to server",
    "connection refused",
    "server closed the connection unexpectedly",
    "terminating connection due to administrator command",
    "connection already closed",
    "the database system is shutting down",
    "the database system is starting up",
    "ssl connection has been closed unexpectedly",
    "could not receive data from server",
    "could not send data to server",
)


@dataclass(frozen=True)
class ErrorLink:
    """One exception of a chain: its class name and message."""

    cls_name: str
    message: str


def is_database_outage(chain: Iterable[ErrorLink]) -> bool:
    """Whether an exception chain shows an unreachable database (see the module doc)."""
    for link in chain:
        if link.cls_name in OUTAGE_CLASSES:
            message = link.message.lower()
            if any(known in message for known in OUTAGE_MESSAGES):
                return True
    return False


@dataclass(frozen=True)
class RerunDecision:
    """What to do about a failed run: ``rerun`` it (with ``tags``), and why (``reason``)."""

    rerun: bool
    reason: str
    tags: Mapping[str, str]


def decide_rerun(
    run_id: str, run_tags: Mapping[str, str], step_errors: Mapping[str, list[ErrorLink]]
) -> RerunDecision:
    """Re-run a failed run when every failed step was failed by a database outage.

    ``step_errors`` maps each failed step to its exception chain. A run with no failed step (a run
    failure) is left to Dagster's run retries; a run with any other step failure (a money check, a
    contract error) is left failed; the third outage in a row is left failed too.
    """
    if not step_errors:
        return RerunDecision(False, "no step failed: the run as a whole failed (Dagster's run retries)", {})
    others = sorted(step for step, chain in step_errors.items() if not is_database_outage(chain))
    if others:
        return RerunDecision(False, f"step(s) {', '.join(others)} failed for another reason than an outage", {})
    done = int(run_tags.get(OUTAGE_RERUN_TAG, "0") or 0)
    if done >= MAX_OUTAGE_RERUNS:
        return RerunDecision(False, f"already re-run {done} times after database outages", {})
    # Dagster's own tags (partition, backfill, retries) belong to the new run's launch, not copied.
    tags = {k: v for k, v in run_tags.items() if not k.startswith("dagster/")}
    tags[OUTAGE_RERUN_TAG] = str(done + 1)
    tags[RERUN_OF_TAG] = run_tags.get(RERUN_OF_TAG, run_id)
    steps = ", ".join(sorted(step_errors))
    return RerunDecision(True, f"step(s) {steps} failed because a database was unreachable", tags)

"""What a failed run's step failures say: read by the outage re-run sensor and the failure alert."""

from __future__ import annotations

from typing import Any

import dagster as dg

from fairstream_pipeline.lib.alerting.storage_outage import (
    ErrorLink,
    RerunDecision,
    decide_rerun,
)

# The jobs that ``rerun_after_database_outage`` runs again (their runs are idempotent).
RERUNNABLE_JOB_NAMES = frozenset({"monthly_payout_job", "close_month_job", "send_statement_emails"})


def error_chain(error: Any) -> list[ErrorLink]:
    """A step's error (Dagster's serialized error info), its causes and contexts, flattened."""
    links, pending = [], [error]
    while pending:
        current = pending.pop()
        if current is None:
            continue
        links.append(ErrorLink(current.cls_name or "", current.message or ""))
        pending.extend([current.cause, current.context])
    return links


def outage_rerun_decision(context: dg.RunFailureSensorContext) -> RerunDecision:
    """Whether the failed run of ``context`` is one to re-run after a database outage."""
    step_errors: dict[str, list[ErrorLink]] = {}
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        step_errors.setdefault(event.step_key or "?", []).extend(error_chain(data.error))
    return decide_rerun(context.dagster_run.run_id, context.dagster_run.tags, step_errors)

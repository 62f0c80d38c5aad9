"""Dead letters: the ``outbox_dead_letters`` check and the ``replay_dead_letters`` job.

* ``outbox_dead_letters``: a WARN check on ``statement_outbox`` per month (dead count, first payees
  and errors). Without an app database it does not pass: WARN, passed=False, "dead letters not
  counted: ..." (it is skipped with ``statement_outbox`` in a month's run, which then writes nothing).
  Each send run evaluates it again for every month it touched (``sending.py``).
* ``replay_dead_letters`` job: config ``{month: "2026-10", payees: ["p1", ...]}`` (payees optional:
  all of the month's dead letters) moves dead letters back to ``pending``; the next send run
  delivers them. In the UI: Jobs -> replay_dead_letters -> Launchpad, e.g.
  ``ops: {replay_dead_letter_messages: {config: {month: "2026-10", payees: ["artist-0042"]}}}``.
"""

from typing import Any

import dagster as dg

from fairstream_pipeline.defs.metadata import markdown_table
from fairstream_pipeline.defs.notifications.resources import DB_NOT_CONFIGURED
from fairstream_pipeline.defs.partitions import monthly_partitions
from fairstream_pipeline.defs.resources import AppDatabaseResource
from fairstream_pipeline.lib.assets import STATEMENT_OUTBOX
from fairstream_pipeline.lib.months import parse_month
from fairstream_pipeline.lib.notifications import outbox_queue as queue

OUTBOX_ASSET = dg.AssetKey(STATEMENT_OUTBOX)
DEAD_LETTER_CHECK = "outbox_dead_letters"
DEAD_LETTERS_NOT_COUNTED = f"dead letters not counted: the app database is {DB_NOT_CONFIGURED}"


def _cell(value: Any, width: int = 120) -> str:
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def dead_letter_evaluation(cursor, month: str) -> tuple[bool, dict[str, Any]]:
    """Whether ``month`` has no dead letters, and the check's metadata."""
    counts = queue.month_counts(cursor, month)
    metadata: dict[str, Any] = {
        "dead": counts["dead"],
        "sent": counts["sent"],
        "still_to_send": counts["pending"] + counts["retry"] + counts["sending"],
        "no_address": counts["no_address"],
    }
    first = queue.dead_letters(cursor, month, limit=10)
    if first:
        metadata["first_dead_letters"] = dg.MetadataValue.md(
            markdown_table(
                ["payee_id", "recipient", "attempts", "last_error"],
                [(_cell(p), _cell(r), a, _cell(e)) for p, r, a, e in first],
            )
        )
    return counts["dead"] == 0, metadata


def dead_letter_check_evaluation(month: str, passed: bool, metadata: dict[str, Any]) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=OUTBOX_ASSET,
        check_name=DEAD_LETTER_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        partition=month,
        metadata=metadata,
    )


@dg.asset_check(
    asset=OUTBOX_ASSET,
    name=DEAD_LETTER_CHECK,
    partitions_def=monthly_partitions,
    blocking=False,
    description=(
        "Warns when statement emails of the month are dead letters (a permanent SMTP failure, or "
        "every attempt used). Replay them with the replay_dead_letters job. Without an app "
        "database (FAIRSTREAM_DATABASE_URL empty) nothing is counted and it warns, never passes."
    ),
)
def outbox_dead_letters(
    context: dg.AssetCheckExecutionContext, app_database: AppDatabaseResource
) -> dg.AssetCheckResult:
    if not app_database.configured:  # nothing was counted: a warning, never a pass
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=DEAD_LETTERS_NOT_COUNTED,
            metadata={"status": DB_NOT_CONFIGURED},
        )
    app_database.ensure_schema()
    with app_database.transaction() as cursor:
        passed, metadata = dead_letter_evaluation(cursor, context.partition_key)
    return dg.AssetCheckResult(passed=passed, severity=dg.AssetCheckSeverity.WARN, metadata=metadata)


class ReplayConfig(dg.Config):
    """The month whose dead letters go back to pending, and optionally only these payees."""

    month: str
    payees: list[str] | None = None


@dg.op(out=dg.Out(dg.Nothing))
def replay_dead_letter_messages(
    context: dg.OpExecutionContext, config: ReplayConfig, app_database: AppDatabaseResource
) -> None:
    """Move the month's dead letters (or those of the given payees) back to pending, attempts 0."""
    try:
        parse_month(config.month)
    except ValueError as exc:
        raise dg.Failure(description=f"month: {exc}", allow_retries=False) from exc
    if not app_database.configured:
        raise dg.Failure(description=f"cannot replay: the app database is {DB_NOT_CONFIGURED}", allow_retries=False)
    app_database.ensure_schema()
    with app_database.transaction() as cursor:
        replayed = queue.replay_dead(cursor, config.month, config.payees)
        passed, check_metadata = dead_letter_evaluation(cursor, config.month)
    not_dead = sorted(set(config.payees or ()) - set(replayed))
    context.log.info(f"{config.month}: {len(replayed)} dead letter(s) back to pending; send_statement_emails delivers them")
    if not_dead:
        context.log.warning(f"{config.month}: no dead letter for {', '.join(not_dead)}")
    context.log_event(dead_letter_check_evaluation(config.month, passed, check_metadata))
    context.add_output_metadata(
        {"month": config.month, "replayed": len(replayed), "replayed_payees": replayed, "not_dead": not_dead}
    )


@dg.job(
    name="replay_dead_letters",
    executor_def=dg.in_process_executor,
    description=(
        "Send dead letters again: config month (YYYY-MM) and optionally payees. The rows go back "
        "to pending with their attempts reset; the next send_statement_emails run delivers them."
    ),
)
def replay_dead_letters_job():
    replay_dead_letter_messages()

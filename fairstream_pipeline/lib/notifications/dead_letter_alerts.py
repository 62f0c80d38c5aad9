"""The alert rule for dead letters: one alert per new set of dead letters of a finished month."""

from __future__ import annotations

from typing import Any, Callable, ContextManager

from fairstream_pipeline.lib.notifications import outbox_queue as queue


def alert_months_with_dead_letters(
    transaction: Callable[[], ContextManager[Any]], alerts: Any, log: Any
) -> list[str]:
    """Alert for every new set of dead letters of a month that has nothing left to send; return the
    months alerted.

    Marking the rows alerted and sending the alert share one transaction: a failed alert is tried
    again by the next send run, and two senders never alert the same dead letters twice. A dead
    letter that dies after an earlier alert of its month gets an alert of its own.
    """
    with transaction() as cursor:
        months = queue.months_with_new_dead_letters(cursor)
    alerted = []
    for month, _ in months:
        try:
            with transaction() as cursor:
                new = queue.record_dead_letter_alert(cursor, month)
                if not new:
                    continue
                total = queue.month_counts(cursor, month)["dead"]
                first = new[:10]
                alerts.send(
                    f"FairStream statement emails: {len(new)} undeliverable for {month}",
                    {
                        "month": month,
                        "dead": len(new),
                        "dead_in_month": total,
                        "first_payees": [payee for payee, _, _, _ in first],
                        "first_errors": [f"{payee}: {error}" for payee, _, _, error in first],
                        "replay": f'job replay_dead_letters with config {{month: "{month}"}}',
                    },
                )
            alerted.append(month)
        except Exception as exc:  # the next send run tries again
            log.warning(f"dead-letter alert for {month} not sent ({type(exc).__name__}: {exc}); will try again")
    return alerted

"""The statuses of a payment batch and of its payments, and what a bank status report may change.

A batch is ``draft`` until it is released (approved, its file handed to the bank), then
``released``; once every payment is settled it is ``settled``, and as soon as one is returned it
is ``partly returned``: ``draft -> released -> settled | partly returned``. Each payment of a
released batch is ``pending`` until the bank reports it ``settled`` (ACSC, ACCP) or ``returned``
(RJCT, with its reason code). A return after settlement is allowed (banks return settled credit
transfers days later); nothing comes back from ``returned``, and a batch that was never released
takes no report. An illegal change is refused with :class:`IllegalTransition` and nothing is applied.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Sequence

from fairstream_pipeline.lib.payments.status_report import (
    RETURNED_CODES,
    SETTLED_CODES,
    StatusReport,
    TransactionStatus,
)


# Batch statuses.
DRAFT, RELEASED, SETTLED, PARTLY_RETURNED = "draft", "released", "settled", "partly returned"
BATCH_TRANSITIONS = {
    DRAFT: {RELEASED},
    RELEASED: {SETTLED, PARTLY_RETURNED},
    SETTLED: {PARTLY_RETURNED},  # a return after settlement
    PARTLY_RETURNED: set(),
}
# Payment statuses.
PENDING, RETURNED = "pending", "returned"
PAYMENT_TRANSITIONS = {PENDING: {SETTLED, RETURNED}, SETTLED: {RETURNED}, RETURNED: set()}


# The return reasons a bank gives most (ISO 20022 ExternalStatusReason1Code), in words.
REASON_TEXTS = {
    "AC01": "incorrect account number",
    "AC04": "closed account",
    "AC06": "blocked account",
    "AG01": "transaction forbidden",
    "AM05": "duplication",
    "BE04": "missing creditor address",
    "MD07": "end customer deceased",
    "MS02": "reason not specified (customer)",
    "MS03": "reason not specified (agent)",
    "RC01": "BIC incorrect",
}


def reason_text(code: str | None) -> str:
    """``AC04 closed account``: a return reason code with its meaning when known."""
    if not code:
        return "no reason given"
    return f"{code} {REASON_TEXTS[code]}" if code in REASON_TEXTS else code


class IllegalTransition(ValueError):
    """A status change the lifecycle does not allow; nothing of the change is applied."""


def check_batch_transition(current: str, new: str) -> None:
    """Refuse a batch status change the lifecycle does not allow (staying in a status is allowed)."""
    if new != current and new not in BATCH_TRANSITIONS[current]:
        raise IllegalTransition(f"a batch cannot go from {current} to {new}")


def batch_status(released: bool, payment_statuses: Iterable[str]) -> str:
    """The batch's status from its release and its payments' statuses."""
    statuses = set(payment_statuses)
    if not released:
        return DRAFT
    if RETURNED in statuses:
        return PARTLY_RETURNED
    if statuses and statuses == {SETTLED}:
        return SETTLED
    return RELEASED


@dataclass(frozen=True)
class Payment:
    """One payment of a released batch and what the bank last said of it."""

    end_to_end_id: str
    payee_id: str
    amount_cents: int
    details_hash: str
    status: str = PENDING
    bank_status: str | None = None  # the last ISO 20022 status code that changed or confirmed it
    reason_code: str | None = None  # for a return: AC04 closed account, AC01 incorrect account number...
    report: str | None = None  # the report file that set the status


@dataclass(frozen=True)
class AppliedReport:
    """What one report changed: the payments it settled and returned, and those it only confirmed."""

    payments: tuple[Payment, ...]
    settled: tuple[str, ...]
    returned: tuple[str, ...]
    unchanged: int


def apply_report(
    report: StatusReport, name: str, batch_id: str, released: bool, payments: Sequence[Payment]
) -> AppliedReport:
    """The batch's payments after ``report`` (file ``name``); raises ``IllegalTransition`` naming the
    file when the report cannot be applied as a whole: another batch, a batch never released, an
    unknown end-to-end id, or a change the lifecycle refuses. A pending status (ACTC, ACSP, PDNG...)
    changes nothing; a group status RJCT without transactions returns every payment."""
    if report.original_message_id != batch_id:
        raise IllegalTransition(f"{name}: it reports on {report.original_message_id}, not on batch {batch_id}")
    if not released:
        raise IllegalTransition(f"{name}: batch {batch_id} was never released, so the bank cannot report on it")
    by_id = {p.end_to_end_id: p for p in payments}
    updates = list(report.transactions)
    if not updates and report.group_status in RETURNED_CODES | SETTLED_CODES:
        updates = [TransactionStatus(p.end_to_end_id, report.group_status, report.group_reason_code) for p in payments]
    unknown = [u.end_to_end_id for u in updates if u.end_to_end_id not in by_id]
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise IllegalTransition(f"{name}: unknown end-to-end id(s) for batch {batch_id}: {shown}")
    settled, returned, unchanged = [], [], 0
    for update in updates:
        payment = by_id[update.end_to_end_id]
        new = SETTLED if update.status in SETTLED_CODES else RETURNED if update.status in RETURNED_CODES else None
        if new is None or new == payment.status:
            unchanged += 1
            continue
        if new not in PAYMENT_TRANSITIONS[payment.status]:
            raise IllegalTransition(
                f"{name}: payment {payment.end_to_end_id} is {payment.status} and cannot become {new} ({update.status})"
            )
        by_id[update.end_to_end_id] = replace(
            payment, status=new, bank_status=update.status, reason_code=update.reason_code, report=name
        )
        (settled if new == SETTLED else returned).append(update.end_to_end_id)
    return AppliedReport(tuple(by_id[p.end_to_end_id] for p in payments), tuple(settled), tuple(returned), unchanged)


"""lib.payments.lifecycle: what a bank status report may change, applied whole or not at all.

A released batch's payments are ``pending`` until the bank reports them ``settled`` (ACSC, ACCP) or
``returned`` (RJCT with a reason); a settled payment may still come back, a returned one never
settles. A report on another batch, on a batch never released, naming an unknown end-to-end id or
asking for a change the lifecycle refuses raises ``IllegalTransition`` naming the report, and nothing
of it is applied. The batch's status follows ``draft -> released -> settled | partly returned``.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from fairstream_pipeline.lib.payments.lifecycle import (
    BATCH_TRANSITIONS,
    DRAFT,
    PARTLY_RETURNED,
    PENDING,
    RELEASED,
    RETURNED,
    SETTLED,
    AppliedReport,
    IllegalTransition,
    Payment,
    apply_report,
    batch_status,
    check_batch_transition,
    reason_text,
)
from fairstream_pipeline.lib.payments.status_report import (
    KNOWN_TRANSACTION_CODES,
    PENDING_CODES,
    RETURNED_CODES,
    SETTLED_CODES,
    StatusReport,
    TransactionStatus,
    build_status_report,
    parse_status_report,
)
from fairstream_pipeline_tests.strategies import PROPERTY_SETTINGS

BATCH = "FS-2024-01-0a1b2c3d"
NAME = "payment_reports/bank-2024-02-06.xml"
PAYMENTS = (
    Payment("E1", "X", 2000, "hash-x"),
    Payment("E2", "Y", 3000, "hash-y"),
    Payment("E3", "Z", 1500, "hash-z"),
)
STATUSES = (DRAFT, RELEASED, SETTLED, PARTLY_RETURNED)
LEGAL = {
    (DRAFT, DRAFT), (RELEASED, RELEASED), (SETTLED, SETTLED), (PARTLY_RETURNED, PARTLY_RETURNED),
    (DRAFT, RELEASED), (RELEASED, SETTLED), (RELEASED, PARTLY_RETURNED), (SETTLED, PARTLY_RETURNED),
}


def status_report(transactions=(), group_status=None, group_reason_code=None, batch=BATCH) -> StatusReport:
    return StatusReport(
        message_id="BANK-1", created_at="2024-02-06T09:00:00", original_message_id=batch,
        original_message_name="pain.001.001.09", group_status=group_status, group_reason_code=group_reason_code,
        transactions=tuple(TransactionStatus(*t) for t in transactions),
    )


def apply(report: StatusReport, payments=PAYMENTS, released: bool = True, name: str = NAME) -> AppliedReport:
    return apply_report(report, name, BATCH, released, list(payments))


def refusal(report: StatusReport, payments=PAYMENTS, released: bool = True, name: str = NAME) -> str:
    given_payments = list(payments)
    with pytest.raises(IllegalTransition) as error:
        apply_report(report, name, BATCH, released, given_payments)
    assert given_payments == list(payments)  # nothing of the report was applied to what was passed in
    return str(error.value)


def with_status(payment: Payment, status: str, bank_status: str, reason: str | None = None, report: str = NAME) -> Payment:
    return Payment(payment.end_to_end_id, payment.payee_id, payment.amount_cents, payment.details_hash,
                   status, bank_status, reason, report)


# apply_report ------------------------------------------------------------------------------------


def test_settled_returned_and_pending_codes():
    e1, e2, e3 = PAYMENTS
    result = apply(status_report([("E2", "RJCT", "AC04"), ("E1", "ACSC", None), ("E3", "PDNG", None)]))
    assert result == AppliedReport(
        payments=(with_status(e1, SETTLED, "ACSC"), with_status(e2, RETURNED, "RJCT", "AC04"), e3),
        settled=("E1",),
        returned=("E2",),
        unchanged=1,
    )


@pytest.mark.parametrize("code", sorted(SETTLED_CODES))
def test_every_settled_code_settles(code):
    result = apply(status_report([("E3", code, None)]))
    assert result.payments[2] == with_status(PAYMENTS[2], SETTLED, code)
    assert (result.settled, result.returned, result.unchanged) == (("E3",), (), 0)


@pytest.mark.parametrize("code", sorted(PENDING_CODES))
def test_a_pending_code_changes_nothing(code):
    result = apply(status_report([("E1", code, None), ("E2", code, None)]))
    assert result == AppliedReport(PAYMENTS, (), (), 2)


def test_a_group_rjct_without_transactions_returns_every_payment_with_the_group_reason():
    result = apply(status_report(group_status="RJCT", group_reason_code="AM05"))
    assert result == AppliedReport(
        payments=tuple(with_status(p, RETURNED, "RJCT", "AM05") for p in PAYMENTS),
        settled=(),
        returned=("E1", "E2", "E3"),
        unchanged=0,
    )


def test_a_group_acsc_without_transactions_settles_every_pending_payment_and_keeps_the_returned_ones():
    already = (with_status(PAYMENTS[0], RETURNED, "RJCT", "AC01", "earlier.xml"), *PAYMENTS[1:])
    with pytest.raises(IllegalTransition):  # a returned payment never settles, not even by the group status
        apply(status_report(group_status="ACSC"), payments=already)
    result = apply(status_report(group_status="ACSC"))
    assert result.payments == tuple(with_status(p, SETTLED, "ACSC") for p in PAYMENTS)
    assert (result.settled, result.returned, result.unchanged) == (("E1", "E2", "E3"), (), 0)


def test_a_group_status_with_transactions_applies_to_the_transactions_only():
    result = apply(status_report([("E2", "RJCT", "AC01")], group_status="RJCT", group_reason_code="AM05"))
    assert result.payments == (PAYMENTS[0], with_status(PAYMENTS[1], RETURNED, "RJCT", "AC01"), PAYMENTS[2])
    assert (result.settled, result.returned, result.unchanged) == ((), ("E2",), 0)


def test_a_report_on_another_batch():
    message = refusal(status_report([("E1", "ACSC", None)], batch="FS-2024-02-99999999"))
    assert message == f"{NAME}: it reports on FS-2024-02-99999999, not on batch {BATCH}"


def test_a_report_on_a_batch_never_released():
    message = refusal(status_report([("E1", "ACSC", None)]), released=False)
    assert message == f"{NAME}: batch {BATCH} was never released, so the bank cannot report on it"


def test_an_unknown_end_to_end_id_applies_nothing_of_the_report():
    # E1's return comes first in the file, the unknown id after it: nothing is applied.
    message = refusal(status_report([("E1", "RJCT", "AC04"), ("NOPE", "ACSC", None)]))
    assert message == f"{NAME}: unknown end-to-end id(s) for batch {BATCH}: NOPE"


def test_many_unknown_end_to_end_ids_are_listed_five_and_counted():
    unknown = [(f"U{i}", "ACSC", None) for i in range(8)]
    message = refusal(status_report(unknown))
    assert message == f"{NAME}: unknown end-to-end id(s) for batch {BATCH}: U0, U1, U2, U3, U4 and 3 more"


def test_a_group_rjct_on_a_batch_without_payments_changes_nothing():
    result = apply_report(status_report(group_status="RJCT", group_reason_code="AC04"), NAME, BATCH, True, [])
    assert result == AppliedReport((), (), (), 0)


def test_a_returned_payment_never_settles():
    returned = (with_status(PAYMENTS[0], RETURNED, "RJCT", "AC04", "first.xml"), *PAYMENTS[1:])
    # E2's settlement comes first in the file: it is not applied either.
    message = refusal(status_report([("E2", "ACSC", None), ("E1", "ACCP", None)]), payments=returned)
    assert message == f"{NAME}: payment E1 is returned and cannot become settled (ACCP)"


def test_a_settled_payment_can_still_be_returned():
    settled = (with_status(PAYMENTS[0], SETTLED, "ACSC", None, "first.xml"), *PAYMENTS[1:])
    result = apply(status_report([("E1", "RJCT", "AC06")]), payments=settled)
    assert result.payments[0] == with_status(PAYMENTS[0], RETURNED, "RJCT", "AC06")
    assert (result.settled, result.returned, result.unchanged) == ((), ("E1",), 0)


def test_a_status_reported_again_keeps_what_first_set_it():
    first = apply(status_report([("E1", "RJCT", "AC04"), ("E2", "ACSC", None)]), name="first.xml")
    again = apply(status_report([("E1", "RJCT", "AC01"), ("E2", "ACCP", None)]), payments=first.payments, name="second.xml")
    assert again == AppliedReport(first.payments, (), (), 2)
    assert again.payments[0].reason_code == "AC04" and again.payments[0].report == "first.xml"


def test_a_report_read_from_its_xml_applies_like_the_same_statuses():
    data = build_status_report(
        "BANK-7", dt.datetime(2024, 2, 6, 9, tzinfo=dt.timezone.utc), BATCH,
        [TransactionStatus("E3", "RJCT", "AC01"), TransactionStatus("E1", "ACSC", None)],
    )
    result = apply(parse_status_report(data, NAME))
    assert result.payments == (with_status(PAYMENTS[0], SETTLED, "ACSC"), PAYMENTS[1],
                               with_status(PAYMENTS[2], RETURNED, "RJCT", "AC01"))
    assert (result.settled, result.returned, result.unchanged) == (("E1",), ("E3",), 0)


def test_reason_text():
    assert reason_text("AC04") == "AC04 closed account"
    assert reason_text("AC01") == "AC01 incorrect account number"
    assert reason_text("XY99") == "XY99"
    assert reason_text(None) == reason_text("") == "no reason given"


# The batch's status ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "released, statuses, expected",
    [
        (False, [], DRAFT),
        (False, [RETURNED, SETTLED], DRAFT),
        (True, [], RELEASED),
        (True, [PENDING], RELEASED),
        (True, [PENDING, SETTLED], RELEASED),
        (True, [SETTLED], SETTLED),
        (True, [SETTLED, SETTLED], SETTLED),
        (True, [RETURNED], PARTLY_RETURNED),
        (True, [SETTLED, RETURNED], PARTLY_RETURNED),
        (True, [PENDING, RETURNED, SETTLED], PARTLY_RETURNED),
    ],
)
def test_batch_status(released, statuses, expected):
    assert batch_status(released, statuses) == expected
    assert batch_status(released, iter(statuses)) == expected  # any iterable


@pytest.mark.parametrize("current, new", list(itertools.product(STATUSES, STATUSES)))
def test_every_batch_transition(current, new):
    assert set(BATCH_TRANSITIONS) == set(STATUSES)
    if (current, new) in LEGAL:
        check_batch_transition(current, new)
    else:
        with pytest.raises(IllegalTransition) as error:
            check_batch_transition(current, new)
        assert str(error.value) == f"a batch cannot go from {current} to {new}"


# Any sequence of reports -------------------------------------------------------------------------

E2E_IDS = [p.end_to_end_id for p in PAYMENTS]
CODES = sorted(KNOWN_TRANSACTION_CODES)
REASONS = ["AC01", "AC04", "AC06", "MS03"]


@st.composite
def reports(draw):
    """A report: a random subset of the batch's payments with random codes, or (sometimes) a
    group status alone."""
    if draw(st.integers(0, 5)) == 0:
        group = draw(st.sampled_from(["RJCT", "ACSC", "ACCP"]))
        return status_report(group_status=group, group_reason_code=draw(st.sampled_from(REASONS)) if group == "RJCT" else None)
    ids = draw(st.lists(st.sampled_from(E2E_IDS), unique=True, min_size=1))
    transactions = []
    for e2e in ids:
        code = draw(st.sampled_from(CODES))
        transactions.append((e2e, code, draw(st.sampled_from(REASONS)) if code in RETURNED_CODES else None))
    return status_report(transactions)


def meaning(code: str) -> str | None:
    return SETTLED if code in SETTLED_CODES else RETURNED if code in RETURNED_CODES else None


def model_updates(report: StatusReport) -> list[tuple[str, str, str | None]]:
    if report.transactions:
        return [(t.end_to_end_id, t.status, t.reason_code) for t in report.transactions]
    return [(e2e, report.group_status, report.group_reason_code) for e2e in E2E_IDS]


@PROPERTY_SETTINGS
@given(st.lists(reports(), max_size=6))
def test_any_sequence_of_reports(sequence):
    # The reference model: per payment, its status and what set it; the first returned -> settled
    # change refuses the whole report it is in.
    model = {e2e: (PENDING, None, None, None) for e2e in E2E_IDS}
    conclusive: dict[str, list[str]] = {e2e: [] for e2e in E2E_IDS}
    payments = list(PAYMENTS)
    for number, report in enumerate(sequence):
        name = f"report-{number}.xml"
        refused = False
        after = dict(model)
        for e2e, code, reason in model_updates(report):
            new = meaning(code)
            if new is None or new == after[e2e][0]:
                continue
            if after[e2e][0] == RETURNED:
                refused = True
                break
            after[e2e] = (new, code, reason, name)
        if refused:
            with pytest.raises(IllegalTransition) as error:
                apply_report(report, name, BATCH, True, payments)
            assert str(error.value).startswith(f"{name}: payment ")
            assert "is returned and cannot become settled" in str(error.value)
            # The input did hold a returned -> settled change: a settled code for a returned payment.
            assert any(model[e2e][0] == RETURNED and meaning(code) == SETTLED for e2e, code, _ in model_updates(report))
            event("a returned -> settled change refused the sequence")
            return
        result = apply_report(report, name, BATCH, True, payments)
        model = after
        for e2e, code, _ in model_updates(report):
            if meaning(code):
                conclusive[e2e].append(code)
        assert [(p.status, p.bank_status, p.reason_code, p.report) for p in result.payments] == [model[e] for e in E2E_IDS]
        # Each payment's status is the meaning of the last conclusive code the bank sent for it.
        assert [p.status for p in result.payments] == [
            meaning(conclusive[e][-1]) if conclusive[e] else PENDING for e in E2E_IDS
        ]
        changed = [e for e in E2E_IDS if model[e][3] == name]
        assert sorted(result.settled + result.returned) == changed
        assert result.unchanged == len(model_updates(report)) - len(changed)
        # The same report again changes nothing.
        again = apply_report(report, name, BATCH, True, list(result.payments))
        assert again == AppliedReport(result.payments, (), (), len(model_updates(report)))
        payments = list(result.payments)
        assert [(p.end_to_end_id, p.payee_id, p.amount_cents) for p in payments] == [
            (p.end_to_end_id, p.payee_id, p.amount_cents) for p in PAYMENTS
        ]
    event(f"returned after the whole sequence: {sum(p.status == RETURNED for p in payments)}")

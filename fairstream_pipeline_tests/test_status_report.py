"""lib.payments.status_report: the bank's pain.002.001.10 reports, built with pyiso20022 and
xsdata and parsed back exactly; every report the pipeline cannot use is refused with a message that
starts with the report's name and says what is wrong."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairstream_pipeline.lib.payments.status_report import (
    KNOWN_TRANSACTION_CODES,
    PAIN002,
    PENDING_CODES,
    RETURNED_CODES,
    SETTLED_CODES,
    StatusReport,
    StatusReportError,
    TransactionStatus,
    build_status_report,
    group_status_of,
    parse_status_report,
)
from fairstream_pipeline_tests.strategies import PROPERTY_SETTINGS

CREATED = dt.datetime(2026, 11, 4, 8, 15, 30, tzinfo=dt.timezone.utc)
BATCH = "FS-2026-10"
NS002 = b"urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"
TRANSACTIONS = (
    TransactionStatus("FS-2026-10-P0", "ACSC", None),
    TransactionStatus("FS-2026-10-P1", "RJCT", "AC04"),
    TransactionStatus("FS-2026-10-P2", "RJCT", "AC01"),
    TransactionStatus("FS-2026-10-P3", "ACCP", None),
    TransactionStatus("FS-2026-10-P4", "PDNG", None),
)


def report(transactions=TRANSACTIONS, **kwargs) -> bytes:
    return build_status_report("BANK-0001", CREATED, BATCH, transactions, **kwargs)


def refused(data: bytes, name: str = "bank/pain002-0001.xml") -> str:
    with pytest.raises(StatusReportError) as error:
        parse_status_report(data, name)
    return str(error.value)


def test_the_code_sets():
    assert SETTLED_CODES == {"ACSC", "ACCP"} and RETURNED_CODES == {"RJCT"}
    assert not (SETTLED_CODES & PENDING_CODES or RETURNED_CODES & PENDING_CODES)
    assert len(KNOWN_TRANSACTION_CODES) == 11 and PAIN002 == "pain.002.001.10"


def test_a_report_round_trips():
    data = report()
    assert parse_status_report(data, "r.xml") == StatusReport(
        message_id="BANK-0001",
        created_at="2026-11-04T08:15:30",
        original_message_id=BATCH,
        original_message_name="pain.001.001.09",
        group_status="PART",
        group_reason_code=None,
        transactions=TRANSACTIONS,
    )


def test_what_the_report_looks_like():
    data = report(TRANSACTIONS[:2]).decode()
    assert data.startswith(
        '<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10">'
    )
    compact = re.sub(r">\s+<", "><", data)
    assert "<GrpHdr><MsgId>BANK-0001</MsgId><CreDtTm>2026-11-04T08:15:30</CreDtTm></GrpHdr>" in compact
    assert (
        "<OrgnlGrpInfAndSts><OrgnlMsgId>FS-2026-10</OrgnlMsgId><OrgnlMsgNmId>pain.001.001.09</OrgnlMsgNmId>"
        "<GrpSts>PART</GrpSts></OrgnlGrpInfAndSts>"
    ) in compact
    assert (
        "<OrgnlPmtInfAndSts><OrgnlPmtInfId>FS-2026-10</OrgnlPmtInfId>"
        "<TxInfAndSts><OrgnlEndToEndId>FS-2026-10-P0</OrgnlEndToEndId><TxSts>ACSC</TxSts></TxInfAndSts>"
        "<TxInfAndSts><OrgnlEndToEndId>FS-2026-10-P1</OrgnlEndToEndId><TxSts>RJCT</TxSts>"
        "<StsRsnInf><Rsn><Cd>AC04</Cd></Rsn></StsRsnInf></TxInfAndSts></OrgnlPmtInfAndSts>"
    ) in compact


def test_the_same_arguments_give_the_same_bytes():
    first = report()
    assert report() == first
    assert build_status_report("BANK-0001", CREATED.replace(tzinfo=None), BATCH, TRANSACTIONS) == first
    assert build_status_report("BANK-0001", CREATED.replace(microsecond=999), BATCH, TRANSACTIONS) == first
    assert build_status_report("BANK-0002", CREATED, BATCH, TRANSACTIONS) != first


@pytest.mark.parametrize(
    ("statuses", "group"),
    [
        (["ACSC", "ACCP"], "ACSC"),
        (["RJCT", "RJCT"], "RJCT"),
        (["RJCT", "ACSC"], "PART"),
        (["RJCT", "PDNG"], "PART"),
        (["ACSC", "PDNG"], "PDNG"),
        (["ACTC"], "PDNG"),
    ],
)
def test_the_group_status_by_default(statuses, group):
    transactions = [TransactionStatus(f"E{i}", s, "AC04" if s == "RJCT" else None) for i, s in enumerate(statuses)]
    assert group_status_of(transactions) == group
    assert parse_status_report(report(transactions), "r.xml").group_status == group
    # a given group status is passed through
    assert parse_status_report(report(transactions, group_status="ACTC"), "r.xml").group_status == "ACTC"


def test_a_whole_batch_rejected_without_transactions():
    data = report((), group_status="RJCT", group_reason_code="AM04")
    parsed = parse_status_report(data, "r.xml")
    assert (parsed.group_status, parsed.group_reason_code, parsed.transactions) == ("RJCT", "AM04", ())
    assert b"TxInfAndSts" not in data and b"OrgnlPmtInfAndSts" not in data
    for group in ("ACSC", "ACCP"):
        assert parse_status_report(report((), group_status=group), "r.xml").group_status == group
    with pytest.raises(ValueError, match=r"^a report without transactions needs an explicit group status$"):
        report(())


def test_a_proprietary_reason_code():
    data = report(TRANSACTIONS[:2]).replace(b"<Cd>AC04</Cd>", b"<Prtry>BANK-CLOSED-42</Prtry>")
    parsed = parse_status_report(data, "r.xml")
    assert parsed.transactions[1] == TransactionStatus("FS-2026-10-P1", "RJCT", "BANK-CLOSED-42")


def test_what_is_not_a_pain002_document():
    name = "bank/pain002-0001.xml"
    assert refused(b"%PDF-1.4") == f"{name}: not an XML document (unclosed token: line 1, column 0)"
    assert refused(b"") == f"{name}: not an XML document (no element found: line 1, column 0)"
    assert refused(report().replace(NS002, b"urn:iso:std:iso:20022:tech:xsd:pain.002.001.03")) == (
        f"{name}: not a pain.002.001.10 document "
        "(root element Document in namespace urn:iso:std:iso:20022:tech:xsd:pain.002.001.03)"
    )
    assert refused(report().replace(b' xmlns="' + NS002 + b'"', b"")) == (
        f"{name}: not a pain.002.001.10 document (root element Document in no namespace)"
    )
    assert refused(b'<Report xmlns="' + NS002 + b'"/>') == (
        f"{name}: not a pain.002.001.10 document "
        "(root element Report in namespace urn:iso:std:iso:20022:tech:xsd:pain.002.001.10)"
    )
    assert refused(b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "a">]><d>&a;</d>') == (
        f"{name}: a DOCTYPE or entity declaration is not allowed"
    )


def test_elements_the_report_must_have():
    assert refused(report().replace(b"<OrgnlMsgId>FS-2026-10</OrgnlMsgId>", b"")) == (
        "bank/pain002-0001.xml: OrgnlMsgId is missing"
    )
    assert refused(re.sub(rb"<CreDtTm>[^<]*</CreDtTm>", b"", report()), "x.xml") == "x.xml: CreDtTm is missing"
    assert refused(b'<Document xmlns="' + NS002 + b'"/>', "x.xml") == "x.xml: CstmrPmtStsRpt is missing"


def test_content_xsdata_cannot_read():
    message = refused(report().replace(b"<GrpHdr>", b"<GrpHdr><Surprise/>"), "x.xml")
    assert message.startswith("x.xml: not a valid pain.002.001.10 document (Unknown property ")
    assert message.endswith("GroupHeader86:{urn:iso:std:iso:20022:tech:xsd:pain.002.001.10}Surprise)")
    # a value it cannot convert: named by its field, the value itself is not repeated
    message = refused(report().replace(b"2026-11-04T08:15:30", b"DE89370400440532013000"), "x.xml")
    assert message == (
        "x.xml: not a valid pain.002.001.10 document (Failed to convert value for `GroupHeader86.cre_dt_tm`)"
    )


def test_a_report_on_another_message_type():
    data = report().replace(b"<OrgnlMsgNmId>pain.001.001.09", b"<OrgnlMsgNmId>pain.008.001.08")
    assert refused(data, "x.xml") == "x.xml: OrgnlMsgNmId is pain.008.001.08, expected pain.001.001.09"


def test_transaction_statuses_the_pipeline_cannot_use():
    data = report()
    assert refused(data.replace(b"<OrgnlEndToEndId>FS-2026-10-P1</OrgnlEndToEndId>", b""), "x.xml") == (
        "x.xml: TxInfAndSts #2 has no OrgnlEndToEndId"
    )
    assert refused(data.replace(b"<TxSts>ACCP</TxSts>", b""), "x.xml") == (
        "x.xml: TxInfAndSts FS-2026-10-P3 has no TxSts"
    )
    assert refused(data.replace(b"<TxSts>ACCP</TxSts>", b"<TxSts>ACXX</TxSts>"), "x.xml") == (
        "x.xml: TxInfAndSts FS-2026-10-P3 has an unknown TxSts ACXX"
    )
    without_reason = re.sub(rb"\s*<StsRsnInf>\s*<Rsn>\s*<Cd>AC04</Cd>\s*</Rsn>\s*</StsRsnInf>", b"", data)
    assert refused(without_reason, "x.xml") == "x.xml: TxInfAndSts FS-2026-10-P1 is RJCT without a reason code"
    twice = data.replace(b"<OrgnlEndToEndId>FS-2026-10-P4<", b"<OrgnlEndToEndId>FS-2026-10-P0<")
    assert refused(twice, "x.xml") == "x.xml: end-to-end id FS-2026-10-P0 appears twice"


def test_a_report_that_says_nothing():
    data = report((), group_status="RJCT")
    assert refused(data.replace(b"<GrpSts>RJCT</GrpSts>", b"<GrpSts>ACTC</GrpSts>"), "x.xml") == (
        "x.xml: the report says nothing: no TxInfAndSts and group status ACTC (expected one of ACCP, ACSC, RJCT)"
    )
    assert refused(re.sub(rb"\s*<GrpSts>RJCT</GrpSts>", b"", data), "x.xml") == (
        "x.xml: the report says nothing: no TxInfAndSts and group status absent (expected one of ACCP, ACSC, RJCT)"
    )
    # an empty OrgnlPmtInfAndSts says nothing either
    empty_payment_info = data.replace(
        b"</OrgnlGrpInfAndSts>",
        b"</OrgnlGrpInfAndSts><OrgnlPmtInfAndSts><OrgnlPmtInfId>FS-2026-10</OrgnlPmtInfId></OrgnlPmtInfAndSts>",
    ).replace(b"<GrpSts>RJCT</GrpSts>", b"<GrpSts>PART</GrpSts>")
    assert refused(empty_payment_info, "x.xml").startswith(
        "x.xml: the report says nothing: no TxInfAndSts and group status PART"
    )


def test_build_refuses_what_parse_would_refuse():
    with pytest.raises(StatusReportError) as error:
        report([TransactionStatus("E1", "RJCT", None)])
    assert str(error.value) == "status report BANK-0001: TxInfAndSts E1 is RJCT without a reason code"
    with pytest.raises(StatusReportError) as error:
        report([TransactionStatus("E1", "DONE", None)])
    assert str(error.value) == "status report BANK-0001: TxInfAndSts E1 has an unknown TxSts DONE"


reason_codes = st.sampled_from(["AC01", "AC04", "AC06", "AM04", "MS03", "RR04"])


@st.composite
def transaction_lists(draw):
    ids = draw(st.lists(st.from_regex(r"[A-Za-z0-9-]{1,35}", fullmatch=True), min_size=1, max_size=25, unique=True))
    transactions = []
    for e2e in ids:
        status = draw(st.sampled_from(sorted(KNOWN_TRANSACTION_CODES)))
        reason = draw(reason_codes if status in RETURNED_CODES else st.none() | reason_codes)
        transactions.append(TransactionStatus(e2e, status, reason))
    return transactions


@settings(PROPERTY_SETTINGS, max_examples=100)
@given(transaction_lists())
def test_any_report_round_trips(transactions):
    data = report(transactions)
    parsed = parse_status_report(data, "r.xml")
    assert parsed.transactions == tuple(transactions)
    assert parsed.group_status == group_status_of(transactions)
    assert (parsed.original_message_id, parsed.message_id) == (BATCH, "BANK-0001")
    assert report(transactions) == data

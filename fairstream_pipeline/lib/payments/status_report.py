"""The bank's Customer Payment Status Report on a payment file: ISO 20022 ``pain.002.001.10``.

``parse_status_report`` reads a report into pyiso20022's dataclasses (with xsdata) and checks what
the pipeline relies on: it answers our ``pain.001.001.09`` file, every transaction status names an
end-to-end id once with a known code, and a rejection carries its reason. A transaction status is
*settled* (``SETTLED_CODES``), *returned* (``RETURNED_CODES``, with a reason code such as AC04,
closed account) or *pending* (``PENDING_CODES``: no change). A report without transaction statuses
must carry a group status RJCT, ACSC or ACCP, which applies to every transaction of the file.

``build_status_report`` writes such a report (the demo's sample bank, the tests) from the same
dataclasses with xsdata's serializer: no hand-written XML.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, fields

from pyiso20022.pain import pain_002_001_10 as pain002
from xsdata.exceptions import ParserError
from xsdata.formats.dataclass.serializers import XmlSerializer
from xsdata.formats.dataclass.serializers.config import SerializerConfig
from xsdata.models.datatype import XmlDateTime

from fairstream_pipeline.lib.payments.sepa_credit_transfer import PAIN001, xml_root, xsdata_parser

PAIN002 = "pain.002.001.10"
PAIN002_NS = f"urn:iso:std:iso:20022:tech:xsd:{PAIN002}"
SETTLED_CODES = frozenset({"ACSC", "ACCP"})  # settled / accepted: the payment is settled
RETURNED_CODES = frozenset({"RJCT"})  # rejected or returned, with a reason code (AC04, AC01, ...)
PENDING_CODES = frozenset({"ACTC", "ACSP", "PDNG", "ACWC", "ACFC", "ACWP", "RCVD", "ACIS"})  # in process
KNOWN_TRANSACTION_CODES = SETTLED_CODES | RETURNED_CODES | PENDING_CODES
CONCLUSIVE_GROUP_CODES = frozenset({"RJCT", "ACSC", "ACCP"})  # a group status that applies to every transaction


class StatusReportError(ValueError):
    """A status report the pipeline cannot use: ``"<report name>: <what is wrong>"``."""


@dataclass(frozen=True)
class TransactionStatus:
    """The bank's status of one transfer, by its end-to-end id; ``reason_code`` is required for RJCT."""

    end_to_end_id: str
    status: str
    reason_code: str | None


@dataclass(frozen=True)
class StatusReport:
    """What a status report says about the payment file ``original_message_id``: the group status
    (may be absent) and every transaction status, in file order."""

    message_id: str
    created_at: str
    original_message_id: str
    original_message_name: str
    group_status: str | None
    group_reason_code: str | None
    transactions: tuple[TransactionStatus, ...]


class _MissingElement(Exception):
    """A required element the report lacks (raised while xsdata builds the dataclasses)."""


def _class_factory(cls: type, params: dict) -> object:
    """xsdata's class factory, naming the XML element when a required one is missing (instead of
    the TypeError of the dataclass's constructor)."""
    for field in fields(cls):
        if field.metadata.get("required") and field.name not in params:
            raise _MissingElement(field.metadata.get("name", field.name))
    return cls(**params)


def _reason_code(reasons: Sequence[pain002.StatusReasonInformation12]) -> str | None:
    """The first reason code (``Rsn/Cd``, else ``Rsn/Prtry``) of a list of ``StsRsnInf``."""
    for info in reasons:
        if info.rsn is not None and (info.rsn.cd or info.rsn.prtry):
            return info.rsn.cd or info.rsn.prtry
    return None


def _document(data: bytes, name: str) -> pain002.Document:
    """``data`` parsed into pyiso20022's pain.002.001.10 dataclasses."""
    try:
        root = xml_root(data)
    except ValueError as error:
        raise StatusReportError(f"{name}: {error}") from error
    namespace, _, local = root.tag.rpartition("}")
    namespace = namespace.lstrip("{")
    if (namespace, local) != (PAIN002_NS, "Document"):
        found = f"namespace {namespace}" if namespace else "no namespace"
        raise StatusReportError(f"{name}: not a {PAIN002} document (root element {local} in {found})")
    try:
        return xsdata_parser(_class_factory).parse(root, pain002.Document)
    except _MissingElement as missing:
        raise StatusReportError(f"{name}: {missing} is missing") from missing
    except (ParserError, ValueError, TypeError) as error:
        # the first line only: xsdata's second line quotes the value it could not convert
        raise StatusReportError(f"{name}: not a valid {PAIN002} document ({str(error).splitlines()[0]})") from error


def _transactions(report: pain002.CustomerPaymentStatusReportV10, name: str) -> tuple[TransactionStatus, ...]:
    """Every ``TxInfAndSts`` of every ``OrgnlPmtInfAndSts``, checked, in file order."""
    statuses: list[TransactionStatus] = []
    seen: set[str] = set()
    entries = [tx for payment_info in report.orgnl_pmt_inf_and_sts for tx in payment_info.tx_inf_and_sts]
    for number, tx in enumerate(entries, start=1):
        e2e = tx.orgnl_end_to_end_id
        if not e2e:
            raise StatusReportError(f"{name}: TxInfAndSts #{number} has no OrgnlEndToEndId")
        if not tx.tx_sts:
            raise StatusReportError(f"{name}: TxInfAndSts {e2e} has no TxSts")
        if tx.tx_sts not in KNOWN_TRANSACTION_CODES:
            raise StatusReportError(f"{name}: TxInfAndSts {e2e} has an unknown TxSts {tx.tx_sts}")
        reason = _reason_code(tx.sts_rsn_inf)
        if tx.tx_sts in RETURNED_CODES and reason is None:
            raise StatusReportError(f"{name}: TxInfAndSts {e2e} is {tx.tx_sts} without a reason code")
        if e2e in seen:
            raise StatusReportError(f"{name}: end-to-end id {e2e} appears twice")
        seen.add(e2e)
        statuses.append(TransactionStatus(end_to_end_id=e2e, status=tx.tx_sts, reason_code=reason))
    return tuple(statuses)


def parse_status_report(data: bytes, name: str) -> StatusReport:
    """The status report ``data`` (a pain.002.001.10 file called ``name``), checked;
    StatusReportError (``"<name>: <what is wrong>"``) when the pipeline cannot use it."""
    report = _document(data, name).cstmr_pmt_sts_rpt
    group = report.orgnl_grp_inf_and_sts
    if group.orgnl_msg_nm_id != PAIN001:
        raise StatusReportError(f"{name}: OrgnlMsgNmId is {group.orgnl_msg_nm_id}, expected {PAIN001}")
    transactions = _transactions(report, name)
    if not transactions and group.grp_sts not in CONCLUSIVE_GROUP_CODES:
        raise StatusReportError(
            f"{name}: the report says nothing: no TxInfAndSts and group status {group.grp_sts or 'absent'} "
            f"(expected one of {', '.join(sorted(CONCLUSIVE_GROUP_CODES))})"
        )
    return StatusReport(
        message_id=report.grp_hdr.msg_id,
        created_at=str(report.grp_hdr.cre_dt_tm),
        original_message_id=group.orgnl_msg_id,
        original_message_name=group.orgnl_msg_nm_id,
        group_status=group.grp_sts,
        group_reason_code=_reason_code(group.sts_rsn_inf),
        transactions=transactions,
    )


def group_status_of(transactions: Sequence[TransactionStatus]) -> str:
    """The group status a report of ``transactions`` carries: RJCT when all are rejected, PART when
    some are, ACSC when all are settled, PDNG otherwise (some still in process, none rejected)."""
    if not transactions:
        raise ValueError("a report without transactions needs an explicit group status")
    rejected = sum(tx.status in RETURNED_CODES for tx in transactions)
    if rejected == len(transactions):
        return "RJCT"
    if rejected:
        return "PART"
    if all(tx.status in SETTLED_CODES for tx in transactions):
        return "ACSC"
    return "PDNG"


def _utc(moment: dt.datetime) -> XmlDateTime:
    """``moment`` in UTC to the second, without an offset (a naive datetime is taken to be UTC)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return XmlDateTime.from_datetime(moment.replace(microsecond=0))


def _status_reason(code: str | None) -> list[pain002.StatusReasonInformation12]:
    """``StsRsnInf/Rsn/Cd`` for a reason code, nothing for None."""
    return [pain002.StatusReasonInformation12(rsn=pain002.StatusReason6Choice(cd=code))] if code else []


def build_status_report(
    message_id: str,
    created_at: dt.datetime,
    original_message_id: str,
    transactions: Sequence[TransactionStatus],
    group_status: str | None = None,
    *,
    group_reason_code: str | None = None,
) -> bytes:
    """A pain.002.001.10 report on the payment file ``original_message_id`` (whose single
    ``PmtInfId`` is the same id): one ``TxInfAndSts`` per transaction, in the order given, and
    ``group_status`` (default: ``group_status_of(transactions)``) with ``group_reason_code``. The
    same arguments give the same bytes; the report is parsed back before it is returned, so it is
    one the pipeline accepts (StatusReportError otherwise)."""
    document = pain002.Document(
        cstmr_pmt_sts_rpt=pain002.CustomerPaymentStatusReportV10(
            grp_hdr=pain002.GroupHeader86(msg_id=message_id, cre_dt_tm=_utc(created_at)),
            orgnl_grp_inf_and_sts=pain002.OriginalGroupHeader17(
                orgnl_msg_id=original_message_id,
                orgnl_msg_nm_id=PAIN001,
                grp_sts=group_status or group_status_of(transactions),
                sts_rsn_inf=_status_reason(group_reason_code),
            ),
            orgnl_pmt_inf_and_sts=[
                pain002.OriginalPaymentInstruction32(
                    orgnl_pmt_inf_id=original_message_id,
                    tx_inf_and_sts=[
                        pain002.PaymentTransaction105(
                            orgnl_end_to_end_id=tx.end_to_end_id,
                            tx_sts=tx.status,
                            sts_rsn_inf=_status_reason(tx.reason_code),
                        )
                        for tx in transactions
                    ],
                )
            ]
            if transactions
            else [],
        )
    )
    serializer = XmlSerializer(config=SerializerConfig(indent="  ", xml_declaration=True, encoding="UTF-8"))
    data = serializer.render(document, ns_map={None: PAIN002_NS}).encode("utf-8")
    parse_status_report(data, f"status report {message_id}")
    return data

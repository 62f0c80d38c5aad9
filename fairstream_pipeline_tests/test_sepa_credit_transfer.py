"""lib.payments.sepa_credit_transfer: the pain.001.001.09 file is valid against the official XSD,
says exactly what it was given (ids, amounts from integer cents, BICs only when given), comes out
byte for byte the same, reads back, and refuses bad input without showing an IBAN."""

from __future__ import annotations

import dataclasses
import datetime as dt
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
import xmlschema
from hypothesis import given, settings
from hypothesis import strategies as st

from fairstream_pipeline.lib.payments.sepa_credit_transfer import (
    PAIN001,
    PAIN001_XSD,
    CreditTransferFile,
    Debtor,
    PaymentFileError,
    Transfer,
    build_pain001,
    cents_from_text,
    cents_text,
    read_pain001,
    sepa_text,
    validate_pain001,
    xml_root,
)
from fairstream_pipeline_tests.strategies import PROPERTY_SETTINGS

NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"}
DEBTOR = Debtor(name="FairStream GmbH", iban="DE89370400440532013000", bic="COBADEFFXXX")
CREATED = dt.datetime(2026, 11, 2, 9, 30, 15, tzinfo=dt.timezone.utc)
EXECUTION = dt.date(2026, 11, 3)
TRANSFERS = (
    Transfer("FS-2026-10-P0", "Zoë & Co <A>", "FR1420041010050500013M02606", "BNPAFRPPXXX", 2000, "FairStream 2026-10"),
    Transfer("FS-2026-10-P1", "Bob Ślusarski", "GB29 NWBK 6016 1331 9268 19", None, 3000, "Royalties October"),
    Transfer("FS-2026-10-P2", "Ann", "de89370400440532013000", "cobadeffxxx", 1001, "x"),
)


def build(transfers=TRANSFERS, msg_id="FS-2026-10", created_at=CREATED, debtor=DEBTOR) -> bytes:
    return build_pain001(msg_id, created_at, EXECUTION, debtor, transfers)


def texts(root: ET.Element, path: str) -> list[str]:
    return [e.text for e in root.findall(path, NS)]


def test_the_file_is_valid_against_the_official_xsd():
    xml = build()
    validate_pain001(xml)
    xmlschema.XMLSchema(str(PAIN001_XSD)).validate(xml.decode())  # independently of our wrapper
    assert PAIN001_XSD.name == "pain.001.001.09.xsd" and PAIN001_XSD.parent.name == "schemas"
    assert xml.startswith(
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09">'
    )


def test_the_file_says_exactly_what_it_was_given():
    root = ET.fromstring(build())
    base = "p:CstmrCdtTrfInitn"
    assert texts(root, f"{base}/p:GrpHdr/p:MsgId") == ["FS-2026-10"]
    assert texts(root, f"{base}/p:GrpHdr/p:CreDtTm") == ["2026-11-02T09:30:15"]
    assert texts(root, f"{base}/p:GrpHdr/p:NbOfTxs") == ["3"]
    assert texts(root, f"{base}/p:GrpHdr/p:CtrlSum") == ["60.01"]  # 2000 + 3000 + 1001 cents
    assert texts(root, f"{base}/p:GrpHdr/p:InitgPty/p:Nm") == ["FairStream GmbH"]
    payment = f"{base}/p:PmtInf"
    assert len(root.findall(payment, NS)) == 1
    assert texts(root, f"{payment}/p:PmtInfId") == ["FS-2026-10"]
    assert texts(root, f"{payment}/p:PmtMtd") == ["TRF"]
    assert texts(root, f"{payment}/p:BtchBookg") == ["true"]
    assert texts(root, f"{payment}/p:NbOfTxs") == ["3"]
    assert texts(root, f"{payment}/p:CtrlSum") == ["60.01"]
    assert texts(root, f"{payment}/p:PmtTpInf/p:SvcLvl/p:Cd") == ["SEPA"]
    assert texts(root, f"{payment}/p:ReqdExctnDt/p:Dt") == ["2026-11-03"]
    assert texts(root, f"{payment}/p:Dbtr/p:Nm") == ["FairStream GmbH"]
    assert texts(root, f"{payment}/p:DbtrAcct/p:Id/p:IBAN") == ["DE89370400440532013000"]
    assert texts(root, f"{payment}/p:DbtrAgt/p:FinInstnId/p:BICFI") == ["COBADEFFXXX"]
    assert texts(root, f"{payment}/p:ChrgBr") == ["SLEV"]
    tx = f"{payment}/p:CdtTrfTxInf"
    assert texts(root, f"{tx}/p:PmtId/p:EndToEndId") == ["FS-2026-10-P0", "FS-2026-10-P1", "FS-2026-10-P2"]
    assert texts(root, f"{tx}/p:Amt/p:InstdAmt") == ["20.00", "30.00", "10.01"]
    assert [e.get("Ccy") for e in root.findall(f"{tx}/p:Amt/p:InstdAmt", NS)] == ["EUR"] * 3
    assert texts(root, f"{tx}/p:Cdtr/p:Nm") == ["Zoe Co A", "Bob Slusarski", "Ann"]
    # compact, upper-case IBANs and BICs
    assert texts(root, f"{tx}/p:CdtrAcct/p:Id/p:IBAN") == [
        "FR1420041010050500013M02606",
        "GB29NWBK60161331926819",
        "DE89370400440532013000",
    ]
    assert texts(root, f"{tx}/p:RmtInf/p:Ustrd") == ["FairStream 2026-10", "Royalties October", "x"]
    # a creditor agent only where a BIC was given
    transactions = root.findall(tx, NS)
    assert [texts(t, "p:CdtrAgt/p:FinInstnId/p:BICFI") for t in transactions] == [["BNPAFRPPXXX"], [], ["COBADEFFXXX"]]
    assert [len(t.findall("p:CdtrAgt", NS)) for t in transactions] == [1, 0, 1]


def test_without_a_debtor_bic_the_debtor_agent_is_empty():
    root = ET.fromstring(build(debtor=dataclasses.replace(DEBTOR, bic=None)))
    agent = root.find("p:CstmrCdtTrfInitn/p:PmtInf/p:DbtrAgt/p:FinInstnId", NS)
    assert agent is not None and list(agent) == []


def test_the_same_arguments_give_the_same_bytes():
    first = build()
    assert build() == first
    assert build(created_at=CREATED.astimezone(dt.timezone(dt.timedelta(hours=2)))) == first  # the same instant
    assert build(created_at=CREATED.replace(tzinfo=None)) == first  # naive means UTC
    assert build(created_at=CREATED.replace(second=16)) != first
    assert build(msg_id="FS-2026-10b") != first


def test_the_file_reads_back():
    read = read_pain001(build())
    assert read == CreditTransferFile(
        msg_id="FS-2026-10",
        created_at="2026-11-02T09:30:15",
        count=3,
        control_sum_cents=6001,
        transfers=(
            Transfer(
                "FS-2026-10-P0", "Zoe Co A", "FR1420041010050500013M02606", "BNPAFRPPXXX", 2000, "FairStream 2026-10"
            ),
            Transfer("FS-2026-10-P1", "Bob Slusarski", "GB29NWBK60161331926819", None, 3000, "Royalties October"),
            Transfer("FS-2026-10-P2", "Ann", "DE89370400440532013000", "COBADEFFXXX", 1001, "x"),
        ),
    )
    # what was read builds the same file again
    assert build(transfers=read.transfers) == build()
    # and its repr masks the IBANs
    assert "FR1420041010050500013M02606" not in repr(read) and "FR…2606" in repr(read)


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("Zoë & Co <A>", 70, "Zoe Co A"),  # "Zoe & Co <A>" -> "Zoe   Co  A " -> collapsed, stripped
        ("Bob Ślusarski", 70, "Bob Slusarski"),
        ("Müller GmbH, Straße 1/2 (Büro)", 70, "Muller GmbH, Strasse 1/2 (Buro)"),
        ("a-b?c:d(e)f.g,h'i+j", 70, "a-b?c:d(e)f.g,h'i+j"),  # the whole SEPA set stays
        ("€ 5 @ home_#1", 70, "EUR 5 home 1"),
        ("  tabs\tand\nnewlines  ", 70, "tabs and newlines"),
        ("abcdefghij", 4, "abcd"),
        ("abc defghij", 4, "abc"),  # cut at a space: stripped again
        ("", 70, "-"),
        ("&<>@", 70, "-"),
        ("日本", 70, "Ri Ben"),  # unidecode transliterates
    ],
)
def test_sepa_text(text, limit, expected):
    assert sepa_text(text, limit) == expected


def test_cents_text_and_back():
    assert [cents_text(c) for c in (1, 10, 100, 1001, 123456789)] == ["0.01", "0.10", "1.00", "10.01", "1234567.89"]
    assert cents_from_text("10.01") == 1001
    assert cents_from_text(Decimal("0.1")) == 10
    assert cents_from_text("7") == 700
    with pytest.raises(PaymentFileError, match=r"^amount '0\.001' is not a whole number of cents$"):
        cents_from_text("0.001")
    with pytest.raises(PaymentFileError, match=r"^amount 'ten' is not a decimal number$"):
        cents_from_text("ten")


def replace_transfer(index: int, **changes) -> tuple[Transfer, ...]:
    transfers = list(TRANSFERS)
    transfers[index] = dataclasses.replace(transfers[index], **changes)
    return tuple(transfers)


P1 = "transfer FS-2026-10-P1"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"transfers": ()}, "the payment file has no transfers"),
        ({"msg_id": "M" * 36}, "msg_id must be 1 to 35 characters, got 36"),
        ({"msg_id": ""}, "msg_id must be 1 to 35 characters, got 0"),
        ({"msg_id": "FS_2026"}, "msg_id 'FS_2026' has characters outside the SEPA character set"),
        (
            {"transfers": replace_transfer(1, end_to_end_id="E" * 36)},
            "transfer #2: end_to_end_id must be 1 to 35 characters, got 36",
        ),
        (
            {"transfers": replace_transfer(1, end_to_end_id="")},
            "transfer #2: end_to_end_id must be 1 to 35 characters, got 0",
        ),
        (
            {"transfers": replace_transfer(2, end_to_end_id="FS 2026/10 é")},
            "transfer #3: end_to_end_id 'FS 2026/10 é' has characters outside the SEPA character set",
        ),
        ({"transfers": replace_transfer(2, end_to_end_id="FS-2026-10-P0")}, "transfer FS-2026-10-P0 appears twice"),
        ({"transfers": replace_transfer(1, amount_cents=0)}, f"{P1}: amount_cents must be > 0, got 0"),
        ({"transfers": replace_transfer(1, amount_cents=-5)}, f"{P1}: amount_cents must be > 0, got -5"),
        ({"transfers": replace_transfer(1, amount_cents=30.0)}, f"{P1}: amount_cents must be an int, got float"),
        ({"transfers": replace_transfer(1, amount_cents=Decimal(30))}, f"{P1}: amount_cents must be an int, got Decimal"),
        ({"transfers": replace_transfer(1, amount_cents=True)}, f"{P1}: amount_cents must be an int, got bool"),
        ({"transfers": replace_transfer(1, iban="GB29NWBK60161331926810")}, f"{P1}: IBAN checksum is wrong"),
        ({"transfers": replace_transfer(1, iban="")}, f"{P1}: IBAN is missing"),
        (
            {"transfers": replace_transfer(0, bic="COBADEFFXXX")},
            "transfer FS-2026-10-P0: BIC country DE does not match the IBAN's country FR",
        ),
        ({"debtor": dataclasses.replace(DEBTOR, iban="DE89370400440532013001")}, "debtor: IBAN checksum is wrong"),
    ],
)
def test_refusals(arguments, message):
    with pytest.raises(PaymentFileError) as refused:
        build(**arguments)
    assert str(refused.value) == message


def test_a_corrupted_file_fails_validation_without_showing_values():
    xml = build()
    corrupted = xml.replace(b"GB29NWBK60161331926819", b"NOT-AN-IBAN")
    with pytest.raises(PaymentFileError) as invalid:
        validate_pain001(corrupted)
    assert str(invalid.value) == (
        "not a valid pain.001.001.09 file: /Document/CstmrCdtTrfInitn/PmtInf/CdtTrfTxInf[2]/CdtrAcct/Id/IBAN: "
        "value doesn't match any pattern of ['[A-Z]{2,2}[0-9]{2,2}[a-zA-Z0-9]{1,30}']"
    )
    assert "NOT-AN-IBAN" not in str(invalid.value)
    assert not any(iban in str(invalid.value) for iban in ("FR1420041010050500013M02606", "DE89370400440532013000"))
    # a value the validator would quote: the IBAN put into the control sum is not shown
    corrupted = xml.replace(b"<CtrlSum>60.01</CtrlSum>", b"<CtrlSum>DE89370400440532013000</CtrlSum>", 1)
    with pytest.raises(PaymentFileError) as invalid:
        validate_pain001(corrupted)
    assert str(invalid.value) == (
        "not a valid pain.001.001.09 file: /Document/CstmrCdtTrfInitn/GrpHdr/CtrlSum: invalid value '…' for xs:decimal"
    )
    assert "DE89370400440532013000" not in repr(invalid.value)
    too_long = r"^not a valid pain\.001\.001\.09 file: /Document/CstmrCdtTrfInitn/GrpHdr/MsgId: "
    with pytest.raises(PaymentFileError, match=too_long):
        validate_pain001(xml.replace(b"<MsgId>FS-2026-10", b"<MsgId>" + b"M" * 36))


def test_what_is_not_a_pain001_file():
    with pytest.raises(PaymentFileError, match=r"^not an XML document \(syntax error: line 1, column 0\)$"):
        validate_pain001(b"not xml")
    with pytest.raises(PaymentFileError, match=r"^a DOCTYPE or entity declaration is not allowed$"):
        validate_pain001(b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><d>&a;</d>')
    with pytest.raises(PaymentFileError, match=r"^not a valid pain\.001\.001\.09 file: /x: "):
        validate_pain001(b"<x/>")
    with pytest.raises(PaymentFileError, match=r"^not a valid pain\.001\.001\.09 file: "):
        read_pain001(build().replace(b"pain.001.001.09", b"pain.001.001.03"))


def test_xml_root_refuses_entities_before_expanding_them():
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><l>&b;</l>'
    )
    with pytest.raises(ValueError, match=r"^a DOCTYPE or entity declaration is not allowed$"):
        xml_root(laughs)
    external = b'<?xml version="1.0"?><!DOCTYPE l SYSTEM "file:///etc/passwd"><l/>'
    with pytest.raises(ValueError, match=r"^a DOCTYPE or entity declaration is not allowed$"):
        xml_root(external)
    assert xml_root(b"<l>ok</l>").text == "ok"


@settings(PROPERTY_SETTINGS, max_examples=60)
@given(st.lists(st.integers(1, 10**9), min_size=1, max_size=30))
def test_any_amounts_validate_and_sum_exactly(amounts):
    ibans = ["FR1420041010050500013M02606", "GB29NWBK60161331926819", "DE89370400440532013000"]
    transfers = [
        Transfer(f"E-{i:02d}", f"Payee {i}", ibans[i % 3], None, cents, f"statement {i}")
        for i, cents in enumerate(amounts)
    ]
    xml = build(transfers=transfers)
    root = ET.fromstring(xml)
    control_sum = Decimal(root.find("p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum", NS).text)
    assert control_sum * 100 == sum(amounts)
    assert root.find("p:CstmrCdtTrfInitn/p:GrpHdr/p:NbOfTxs", NS).text == str(len(amounts))
    instructed = texts(root, "p:CstmrCdtTrfInitn/p:PmtInf/p:CdtTrfTxInf/p:Amt/p:InstdAmt")
    assert [Decimal(t) * 100 for t in instructed] == amounts
    read = read_pain001(xml)
    assert (read.count, read.control_sum_cents) == (len(amounts), sum(amounts))
    assert [t.amount_cents for t in read.transfers] == amounts
    assert PAIN001 == "pain.001.001.09"

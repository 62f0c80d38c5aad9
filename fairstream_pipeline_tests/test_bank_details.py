"""lib.payments.bank_details: which bank details can be paid to (schwifty's checks, exact problem
texts), the IBAN mask, the details hash; and that no problem text or repr holds an IBAN."""

from __future__ import annotations

import hashlib
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from schwifty import IBAN

from fairstream_pipeline.lib.payments.bank_details import (
    DetailsVerdict,
    check_payment_details,
    details_hash,
    mask_iban,
)
from fairstream_pipeline_tests.strategies import PROPERTY_SETTINGS

DE = "DE89370400440532013000"
FR = "FR1420041010050500013M02606"
GB = "GB29NWBK60161331926819"
SEPA_COUNTRIES = ["DE", "FR", "GB", "NL", "ES", "IT", "AT", "BE", "SE", "CH", "PL", "IE", "PT", "FI", "LU", "MT"]


@pytest.mark.parametrize(
    ("iban", "bic", "verdict"),
    [
        (DE, None, DetailsVerdict(DE, None, None)),
        (FR, "BNPAFRPPXXX", DetailsVerdict(FR, "BNPAFRPPXXX", None)),
        (GB, "", DetailsVerdict(GB, None, None)),  # a blank BIC is no BIC
        (DE, "COBADEFFXXX", DetailsVerdict(DE, "COBADEFFXXX", None)),
        (DE, "COBADEFF", DetailsVerdict(DE, "COBADEFF", None)),  # the 8-character form
        # spaces and lower case: the compact upper-case form
        ("de89 3704 0044 0532 0130 00", " cobadeff xxx ", DetailsVerdict(DE, "COBADEFFXXX", None)),
    ],
)
def test_valid_details(iban, bic, verdict):
    assert check_payment_details(iban, bic) == verdict


@pytest.mark.parametrize(
    ("iban", "problem"),
    [
        (None, "IBAN is missing"),
        ("", "IBAN is missing"),
        ("   ", "IBAN is missing"),
        ("DE89370400440532013001", "IBAN checksum is wrong"),
        ("XX89370400440532013000", "IBAN country XX is unknown"),
        ("DE8937040044053201300", "IBAN length is wrong for DE (21 characters, expected 22)"),
        ("DE893704004405320130000", "IBAN length is wrong for DE (23 characters, expected 22)"),
        ("GB29NWBK6016133192681", "IBAN length is wrong for GB (21 characters, expected 22)"),
        ("DE89-3704-0044-0532-0130-00", "IBAN is malformed"),  # characters outside A-Z 0-9
        ("DE0237040044053201300X", "IBAN is malformed"),  # a letter where DE has digits
        ("1289370400440532013000", "IBAN is malformed"),  # no country code at all
        ("12345", "IBAN is malformed"),
        # A valid IBAN that a SEPA credit transfer cannot reach (Brazil).
        ("BR1800360305000010009795493C1", "IBAN country BR is not in the SEPA zone"),
    ],
)
def test_invalid_iban_problems(iban, problem):
    verdict = check_payment_details(iban, "COBADEFFXXX")
    assert verdict == DetailsVerdict(None, "COBADEFFXXX", problem)


@pytest.mark.parametrize(
    ("iban", "bic", "verdict"),
    [
        (DE, "XXXX", DetailsVerdict(DE, None, "BIC is not valid")),
        (DE, "COBAXXFFXXX", DetailsVerdict(DE, None, "BIC is not valid")),  # unknown country XX
        (DE, "COBA-DEFF", DetailsVerdict(DE, None, "BIC is not valid")),
        (DE, "BNPAFRPPXXX", DetailsVerdict(DE, "BNPAFRPPXXX", "BIC country FR does not match the IBAN's country DE")),
        (FR, "COBADEFFXXX", DetailsVerdict(FR, "COBADEFFXXX", "BIC country DE does not match the IBAN's country FR")),
        # the IBAN's problem comes first; a valid BIC is still reported
        ("DE89370400440532013001", "BNPAFRPPXXX", DetailsVerdict(None, "BNPAFRPPXXX", "IBAN checksum is wrong")),
        (None, "XXXX", DetailsVerdict(None, None, "IBAN is missing")),
    ],
)
def test_bic_problems(iban, bic, verdict):
    assert check_payment_details(iban, bic) == verdict


INVALID_IBANS = [
    "DE89370400440532013001",
    "XX89370400440532013000",
    "DE8937040044053201300",
    "DE893704004405320130000",
    "DE0237040044053201300X",
    "DE89-3704-0044-0532-0130-00",
    "FR1420041010050500013M02607",
    "GB29NWBK6016133192681",
]


@pytest.mark.parametrize("iban", INVALID_IBANS)
def test_no_problem_text_or_repr_holds_the_iban(iban):
    verdict = check_payment_details(iban, "BNPAFRPPXXX")
    assert verdict.problem is not None
    for text in (verdict.problem, repr(verdict), str(verdict)):
        assert iban not in text
        assert iban[4:12] not in text  # not even the middle of it


def test_the_repr_of_a_valid_verdict_masks_the_iban():
    verdict = check_payment_details(DE, "BNPAFRPPXXX")
    assert repr(verdict) == (
        "DetailsVerdict(iban='DE…3000', bic='BNPAFRPPXXX', "
        "problem=\"BIC country FR does not match the IBAN's country DE\")"
    )
    assert DE not in str(verdict)
    assert verdict.iban == DE  # the field itself keeps the IBAN, for the payment file


def test_mask_iban():
    assert mask_iban("DE89 3704 0044 0532 0130 00") == "DE…3000"
    assert mask_iban(DE) == "DE…3000"
    assert mask_iban(" fr14 2004 1010 0505 0001 3m02 606") == "FR…2606"
    assert mask_iban(None) == "—"
    assert mask_iban("") == "—"
    assert mask_iban("   ") == "—"
    assert mask_iban("DE123") == "…"  # too short to show anything
    assert mask_iban("DE1234") == "DE…1234"


@st.composite
def valid_ibans(draw):
    """A valid IBAN of one of several countries, made by schwifty from a drawn seed."""
    country = draw(st.sampled_from(SEPA_COUNTRIES))
    return str(IBAN.random(country, random=Random(draw(st.integers(0, 2**32)))))


@settings(PROPERTY_SETTINGS, max_examples=200)
@given(valid_ibans(), st.sampled_from(["compact", "formatted", "lower"]))
def test_the_mask_shows_only_the_country_and_the_last_four(iban, form):
    assert IBAN(iban).is_valid
    written = {"compact": iban, "formatted": IBAN(iban).formatted, "lower": iban.lower()}[form]
    mask = mask_iban(written)
    assert mask.split("…") == [iban[:2], iban[-4:]]
    assert len(mask) == 7
    assert check_payment_details(written, None) == DetailsVerdict(iban, None, None)


def test_details_hash():
    expected = hashlib.sha256(f"{DE}\0COBADEFFXXX\0Zoë Martin".encode()).hexdigest()[:16]
    assert details_hash(DE, "COBADEFFXXX", "Zoë Martin") == expected
    # the same details written differently: the same hash
    assert details_hash("de89 3704 0044 0532 0130 00", "cobadeff xxx", "  Zoë Martin ") == expected
    assert details_hash(None, None, None) == hashlib.sha256(b"\0\0").hexdigest()[:16]
    assert details_hash(DE, None, None) == details_hash(DE, "", "  ")
    # any change of a field changes it
    changed = {
        details_hash(FR, "COBADEFFXXX", "Zoë Martin"),
        details_hash(DE, "COBADEFF", "Zoë Martin"),
        details_hash(DE, "COBADEFFXXX", "Zoe Martin"),
        details_hash(DE, None, "Zoë Martin"),
    }
    assert expected not in changed and len(changed) == 4
    # the separator keeps the fields apart
    assert details_hash("A", "B", None) != details_hash("AB", None, None)
    assert len(expected) == 16 and int(expected, 16) >= 0

"""A payee's bank details: whether they can be paid to, the mask that stands for the IBAN in every
message, and the hash that tells when a payee's details changed.

Bank details are personal data: no problem text, repr or log line here holds a full IBAN; messages
name the country and lengths only, and ``mask_iban`` is what stands for an IBAN elsewhere. The
checks are schwifty's (checksum, country, the country's length and structure), not hand-written.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields

from schwifty import BIC, IBAN
from schwifty import exceptions as schwifty_errors
from schwifty.registry import get_iban_spec

IBAN_MISSING = "IBAN is missing"
IBAN_CHECKSUM = "IBAN checksum is wrong"
IBAN_MALFORMED = "IBAN is malformed"
BIC_INVALID = "BIC is not valid"
NO_IBAN = "—"  # what mask_iban shows for a missing IBAN
_WHITESPACE = re.compile(r"\s+")
_COUNTRY = re.compile(r"[A-Z]{2}")


def compact(code: str | None) -> str:
    """``code`` without any whitespace, upper-cased ("" for None): how IBANs and BICs are compared."""
    return _WHITESPACE.sub("", code or "").upper()


def masked_repr(record: object) -> str:
    """The repr of a dataclass ``record`` with its ``iban`` field masked: the ``__repr__`` of every
    record here that holds an IBAN."""
    shown = (
        f"{f.name}={mask_iban(value) if f.name == 'iban' and value else value!r}"
        for f in fields(record)
        if f.repr
        for value in [getattr(record, f.name)]
    )
    return f"{type(record).__name__}({', '.join(shown)})"


@dataclass(frozen=True, repr=False)
class DetailsVerdict:
    """Whether bank details can be paid to: the compact IBAN and BIC that are valid, and the
    problem (a short reason that never holds the IBAN) or None. Its repr masks the IBAN."""

    iban: str | None
    bic: str | None
    problem: str | None

    __repr__ = masked_repr


def _parse_iban(iban: str) -> tuple[IBAN | None, str | None]:
    """The compact ``iban`` parsed (once), or None and why it cannot be paid to."""
    try:
        return IBAN(iban), None
    except schwifty_errors.InvalidChecksumDigits:
        return None, IBAN_CHECKSUM
    except schwifty_errors.InvalidCountryCode:
        country = iban[:2]
        return None, (f"IBAN country {country} is unknown" if _COUNTRY.fullmatch(country) else IBAN_MALFORMED)
    except schwifty_errors.InvalidLength:
        expected = get_iban_spec(iban[:2]).iban_length
        return None, f"IBAN length is wrong for {iban[:2]} ({len(iban)} characters, expected {expected})"
    except schwifty_errors.SchwiftyException:
        return None, IBAN_MALFORMED


def _valid_bic(bic: str) -> str | None:
    """The compact ``bic`` when schwifty accepts it, else None."""
    try:
        return str(BIC(bic))
    except schwifty_errors.SchwiftyException:
        return None


def check_payment_details(iban: str | None, bic: str | None) -> DetailsVerdict:
    """Whether ``iban`` (and ``bic``, when given) can be paid to.

    The IBAN must parse (checksum, known country, that country's length and structure) and be of
    the SEPA zone (a SEPA credit transfer reaches nothing else); a BIC, when given, must be valid
    and from the IBAN's country. ``bic`` in the verdict is the compact
    BIC whenever it is a valid BIC (even when its country does not match); the IBAN's problem comes
    before the BIC's."""
    compact_iban, compact_bic = compact(iban), compact(bic)
    parsed, iban_problem = _parse_iban(compact_iban) if compact_iban else (None, IBAN_MISSING)
    valid_iban = None if iban_problem else compact_iban
    valid_bic = _valid_bic(compact_bic) if compact_bic else None
    problem = iban_problem
    if problem is None and not parsed.in_sepa_zone:
        problem = f"IBAN country {compact_iban[:2]} is not in the SEPA zone"
        valid_iban = None
    if problem is None and compact_bic:
        if valid_bic is None:
            problem = BIC_INVALID
        elif valid_bic[4:6] != compact_iban[:2]:
            problem = f"BIC country {valid_bic[4:6]} does not match the IBAN's country {compact_iban[:2]}"
    return DetailsVerdict(iban=valid_iban, bic=valid_bic, problem=problem)


def mask_iban(iban: str | None) -> str:
    """What stands for an IBAN in messages: its country code, "…" and its last 4 characters
    ("DE…3000"); "—" when there is none, "…" alone when it is too short to show anything."""
    code = compact(iban)
    if not code:
        return NO_IBAN
    if len(code) < 6:
        return "…"
    return f"{code[:2]}…{code[-4:]}"


def details_hash(iban: str | None, bic: str | None, account_holder: str | None) -> str:
    """A short hash (16 hex digits of sha256) of a payee's bank details, that changes when their
    compact IBAN, compact BIC or stripped account holder changes."""
    basis = "\0".join([compact(iban), compact(bic), (account_holder or "").strip()])
    return hashlib.sha256(basis.encode()).hexdigest()[:16]

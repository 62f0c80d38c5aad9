"""The payees' bank accounts (``catalog/payment_details.parquet``): most valid, some broken on purpose,
some payees without a row. Drawn from their own stream, so the other files do not change with them.

Valid IBANs are built with ``schwifty`` from banks its registry knows (so a BIC can be derived) and
pass its national (BBAN) checks too. Personal data: written mode 0600 (``writer.py``), never printed.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from schwifty import BBAN, IBAN
from schwifty.exceptions import SchwiftyException

from fairstream_pipeline.lib.ingestion.landing_zone import LANDING_PAYMENT_DETAILS
from fairstream_pipeline.sample import draws

MISSING_RATE = 0.05  # payees with no row at all (at least 1)
INVALID_RATE = 0.05  # payees with an invalid row (at least one of each kind)
BIC_RATE = 0.5  # valid rows that carry a BIC (the others: null)
OTHER_HOLDER_RATE = 0.03  # rows whose account holder is not the payee's name (the others: null)

# The kinds of invalid rows, cycled through: the IBAN's last digit changed (its checksum fails),
# a valid IBAN with the BIC of a bank of another country, the IBAN's last digit dropped (its length).
INVALID_KINDS = ("checksum", "foreign_bic", "length")

# (country, weight, bank codes that schwifty's registry knows with a BIC)
BANKS = (
    ("DE", 0.25, ("10010010", "12030000", "20050550", "70020270", "70150000")),
    ("FR", 0.25, ("30004", "30003", "20041", "10278")),
    ("NL", 0.15, ("ABNA", "INGB", "RABO", "TRIO")),
    ("ES", 0.15, ("2100", "0049", "0182", "2085")),
    ("IT", 0.10, ("03069", "02008", "05034")),
    ("BE", 0.10, ("001", "310", "068")),
)
_ACCOUNT_DIGITS = {"DE": 10, "FR": 11, "NL": 10, "ES": 10, "IT": 12, "BE": 7}
_BRANCH_DIGITS = {"FR": 5, "ES": 4, "IT": 5}
_HOLDER_SUFFIX = ("Management", "Music Ltd", "Rights GmbH", "& Partners", "Estate")
_MAX_ACCOUNT_STEPS = 1000


def _valid_iban(country: str, bank_code: str, branch: int, account: int) -> str:
    """The first IBAN of ``bank_code`` from account number ``account`` upwards that passes every check
    of ``schwifty``, the national check digits included (in a German account number they are part of
    the number, so about one in ten numbers has them right)."""
    digits = _ACCOUNT_DIGITS[country]
    branch_digits = _BRANCH_DIGITS.get(country, 0)
    branch_code = str(branch % 10**branch_digits).zfill(branch_digits) if branch_digits else ""
    for step in range(_MAX_ACCOUNT_STEPS):
        account_code = str((account + step) % 10**digits).zfill(digits)
        bban = BBAN.from_components(country, bank_code=bank_code, branch_code=branch_code, account_code=account_code)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a method schwifty cannot check: accepted as is
                bban.validate_national_checksum()
        except SchwiftyException:
            continue
        return IBAN.from_bban(country, bban).compact  # checks the IBAN's length and check digits
    raise AssertionError(f"no valid {country} account found for bank {bank_code}")


@functools.cache
def _bic(country: str, bank_code: str) -> str:
    """The BIC of a bank, from schwifty's registry."""
    bic = IBAN.generate(country, bank_code=bank_code, account_code="0").bic
    if bic is None:
        raise AssertionError(f"schwifty's registry has no BIC for {country} bank {bank_code}")
    return str(bic)


def _other_digit(text: str) -> str:
    """``text`` with its last digit changed (an IBAN's checksum then fails)."""
    return text[:-1] + str((int(text[-1]) + 1) % 10)


@dataclass(frozen=True)
class PaymentDetails:
    """The rows of ``catalog/payment_details.parquet`` and what the generator put in them."""

    table: pa.Table
    payees_with_valid_details: int
    payees_with_invalid_details: int
    payees_without_details: int

    @classmethod
    def build(cls, seed: int, payee_ids: pa.Array, payee_names: pa.Array) -> PaymentDetails:
        """The payment details of the payees ``payee_ids`` (sorted), in that order, from stream
        ``(seed, payment details)``: the same for the same catalog."""
        rng = draws.rng(seed, draws.STREAM_PAYMENT_DETAILS)
        n = len(payee_ids)
        n_missing = max(1, round(MISSING_RATE * n))
        n_invalid = max(len(INVALID_KINDS), round(INVALID_RATE * n))
        special = rng.permutation(n)
        missing = np.zeros(n, dtype=bool)
        missing[special[:n_missing]] = True
        invalid_kind = np.full(n, -1, dtype=np.int64)
        invalid_rows = np.sort(special[n_missing : n_missing + n_invalid])
        invalid_kind[invalid_rows] = np.arange(n_invalid) % len(INVALID_KINDS)

        weights = np.array([w for _, w, _ in BANKS])
        country = rng.choice(len(BANKS), n, p=weights / weights.sum())
        bank = rng.integers(0, 1 << 30, n)
        branch = rng.integers(0, 1 << 30, n)
        account = rng.integers(10**6, 10**10, n)
        with_bic = rng.random(n) < BIC_RATE
        other_holder = rng.random(n) < OTHER_HOLDER_RATE
        holder_suffix = rng.integers(0, len(_HOLDER_SUFFIX), n)

        ids, names = payee_ids.to_pylist(), payee_names.to_pylist()
        rows: dict[str, list] = {c.name: [] for c in LANDING_PAYMENT_DETAILS.columns}
        for i in range(n):
            if missing[i]:
                continue
            code, _, banks = BANKS[country[i]]
            bank_code = banks[bank[i] % len(banks)]
            text = _valid_iban(code, bank_code, int(branch[i]), int(account[i]))
            bic = _bic(code, bank_code) if with_bic[i] else None
            kind = INVALID_KINDS[invalid_kind[i]] if invalid_kind[i] >= 0 else None
            if kind == "checksum":
                text = _other_digit(text)
            elif kind == "foreign_bic":
                other_code, _, other_banks = BANKS[(country[i] + 1) % len(BANKS)]
                bic = _bic(other_code, other_banks[0])
            elif kind == "length":
                text = text[:-1]
            rows["payee_id"].append(ids[i])
            rows["iban"].append(text)
            rows["bic"].append(bic)
            rows["account_holder"].append(f"{names[i]} {_HOLDER_SUFFIX[holder_suffix[i]]}" if other_holder[i] else None)
        schema = LANDING_PAYMENT_DETAILS.arrow_schema
        table = pa.table([pa.array(rows[f.name], f.type) for f in schema], schema=schema)
        return cls(
            table=table,
            payees_with_valid_details=n - n_missing - n_invalid,
            payees_with_invalid_details=n_invalid,
            payees_without_details=n_missing,
        )

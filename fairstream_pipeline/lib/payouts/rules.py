"""The parameters of the payout rules (v3), see ``docs/payout-rules.md``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

PPM = 1_000_000  # parts per million
PICO_PER_CENT = 10**12  # money is computed in pico-cents (10^-12 cent)
RESIDUAL_POLICIES = ("pro_rata", "retain")
SUSPENSE = "__suspense__"  # tracks without valid splits: held until the rights are resolved
UNALLOCATED = "__unallocated__"  # money no stream could claim
SPECIAL_PAYEES = (SUSPENSE, UNALLOCATED)  # never paid out; their balance accumulates
# v2: period close, adjustments and negative balances (rule 9), max_held_share_ppm; rules 1-8 as v1.
# v3: pay only what can be paid (rule 10): with payment details in the landing zone, a payee due a
# payment is held without valid details or after a returned payment; rules 1-9 as v2.
RULES_VERSION = "v3"
# Why a payee who is due a payment is not paid (payee_statements.hold_reason; null when not held).
NO_PAYMENT_DETAILS = "no_payment_details"
INVALID_PAYMENT_DETAILS = "invalid_payment_details"
RETURNED_PAYMENT = "returned_payment"
HOLD_REASONS = (NO_PAYMENT_DETAILS, INVALID_PAYMENT_DETAILS, RETURNED_PAYMENT)
PAYOUT_DUE_DAY = 3  # month M's statements are due by the 3rd of month M+1, 00:00 UTC


@dataclass(frozen=True)
class PayoutRules:
    royalty_share_ppm: int = 700_000
    min_play_ms: int = 30_000
    max_daily_plays_per_track: int = 10
    max_daily_streams_per_user: int = 1_000
    residual_policy: str = "pro_rata"
    payout_threshold_cents: int = 1_000
    max_held_share_ppm: int = 50_000  # a month holding more in __suspense__ + __unallocated__ does not close

    def __post_init__(self) -> None:
        for name in ("royalty_share_ppm", "max_held_share_ppm"):
            if not 0 <= getattr(self, name) <= PPM:
                raise ValueError(f"{name} must be within 0..{PPM}, got {getattr(self, name)}")
        for name in ("min_play_ms", "max_daily_plays_per_track", "max_daily_streams_per_user", "payout_threshold_cents"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.residual_policy not in RESIDUAL_POLICIES:
            raise ValueError(
                f"residual_policy must be one of {', '.join(RESIDUAL_POLICIES)}, got {self.residual_policy!r}"
            )

    def as_dict(self) -> dict[str, int | str]:
        return {"rules_version": RULES_VERSION, **asdict(self)}

    @classmethod
    def from_recorded(cls, recorded: dict[str, Any]) -> "PayoutRules":
        """The rules a manifest recorded (``as_dict()``); fields it predates take their defaults."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in recorded.items() if k in names})

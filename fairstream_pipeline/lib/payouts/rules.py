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
# v4: the artist-centric model (ACPS v1) beside user-centric and pro-rata, and ``payout_model``,
# which chooses the model whose cents are earned; with the defaults every cent is as under v3.
RULES_VERSION = "v4"
# Why a payee who is due a payment is not paid (payee_statements.hold_reason; null when not held).
NO_PAYMENT_DETAILS = "no_payment_details"
INVALID_PAYMENT_DETAILS = "invalid_payment_details"
RETURNED_PAYMENT = "returned_payment"
HOLD_REASONS = (NO_PAYMENT_DETAILS, INVALID_PAYMENT_DETAILS, RETURNED_PAYMENT)
USER_CENTRIC, PRO_RATA, ARTIST_CENTRIC = "user_centric", "pro_rata", "artist_centric"
PAYOUT_MODELS = (USER_CENTRIC, PRO_RATA, ARTIST_CENTRIC)
#: Each model's cents column in ``payee_earnings``.
MODEL_COLUMNS = {USER_CENTRIC: "uc_cents", PRO_RATA: "pr_cents", ARTIST_CENTRIC: "acps_cents"}
ACPS_CAP_MODES = ("cap", "normalise")
#: ``listening_events.source`` values of an active play (ACPS v1): the user chose the track.
ACTIVE_SOURCES = ("search", "editorial_playlist")
#: Every ``listening_events.source`` value of the contract; null or another value is not active.
PLAY_SOURCES = ("search", "editorial_playlist", "own_playlist", "library", "algorithmic", "radio", "other")
NOISE = "noise"  # catalog ``content_type`` of noise (weight 0 under ACPS); anything else is music
MICRO = 1_000_000  # ACPS weights are integers in micro-streams
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
    payout_model: str = USER_CENTRIC  # whose cents are earned_cents; the other two are comparisons
    acps_pro_min_streams: int = 1_000  # a professional artist: this many counted music streams ...
    acps_pro_min_listeners: int = 500  # ... and this many distinct listeners in the month
    acps_pro_boost: int = 2
    acps_active_boost: int = 2
    acps_user_stream_cap: int = 1_000  # C
    acps_cap_mode: str = "cap"

    def __post_init__(self) -> None:
        for name in ("royalty_share_ppm", "max_held_share_ppm"):
            if not 0 <= getattr(self, name) <= PPM:
                raise ValueError(f"{name} must be within 0..{PPM}, got {getattr(self, name)}")
        for name in ("min_play_ms", "max_daily_plays_per_track", "max_daily_streams_per_user", "payout_threshold_cents"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("acps_pro_min_streams", "acps_pro_min_listeners"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        # Bounded so that a segment's ACPS weights stay far within 64 bits (docs/payout-rules.md).
        for name, top in (("acps_pro_boost", 100), ("acps_active_boost", 100), ("acps_user_stream_cap", 100_000)):
            if not 1 <= getattr(self, name) <= top:
                raise ValueError(f"{name} must be within 1..{top}, got {getattr(self, name)}")
        for name, allowed in (("payout_model", PAYOUT_MODELS), ("acps_cap_mode", ACPS_CAP_MODES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.residual_policy not in RESIDUAL_POLICIES:
            raise ValueError(
                f"residual_policy must be one of {', '.join(RESIDUAL_POLICIES)}, got {self.residual_policy!r}"
            )

    @property
    def earned_column(self) -> str:
        """The ``payee_earnings`` column whose cents are earned (paid) under ``payout_model``."""
        return MODEL_COLUMNS[self.payout_model]

    def as_dict(self) -> dict[str, int | str]:
        return {"rules_version": RULES_VERSION, **asdict(self)}

    @classmethod
    def from_recorded(cls, recorded: dict[str, Any]) -> "PayoutRules":
        """The rules a manifest recorded (``as_dict()``); fields it predates take their defaults."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in recorded.items() if k in names})

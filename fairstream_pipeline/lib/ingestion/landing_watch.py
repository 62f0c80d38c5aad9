"""Which months the landing-zone sensor should (re)compute, decided from plain facts.

An **open** month is settled when its draft statements were computed from the landing files that
are there now, from the previous month's statements as they are now, and from the closed months'
earnings as they are now (the adjustments it posts). A **closed** month is settled when its
earnings were computed (restated) from the landing files that are there now: its statements never
change, and the difference posts to the next open month, whose draft then becomes unsettled.

A month needs a run when it is complete (every day has ``_SUCCESS``) and not settled: a new month,
a late or changed file, a previous month that was recomputed, or a restated closed month. Months
are requested in order, one chain at a time, so month M is only requested once M−1 is settled:
statements never open from a stale or a later balance.
"""

from __future__ import annotations

from dataclasses import dataclass

from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.ingestion.landing_zone import LandingZone
from fairstream_pipeline.lib.months import days_of_month, previous_month
from fairstream_pipeline.lib.assets import CLOSE, EARNINGS, STATEMENTS
from fairstream_pipeline.lib.close.period_close import adjustment_basis


@dataclass(frozen=True)
class MonthState:
    month: str
    has_data: bool  # any day folder exists
    missing_days: int  # days without _SUCCESS
    state_key: str  # landing fingerprint + what the draft opens from, or "closed"
    settled: bool
    closed: bool = False


@dataclass(frozen=True)
class Plan:
    requests: list[tuple[str, str]]  # (month, state_key) to run, in month order
    notes: list[str]  # one line per month that is not requested, saying why


def observe(zone: LandingZone, lake: Lake, months: list[str], first_month: str) -> list[MonthState]:
    """Read the landing zone and the lake for each month (directory listings and small manifests)."""
    states = []
    for month in months:
        has_data = any(zone.event_day_dir(day).is_dir() for day in days_of_month(month))
        missing = len(zone.missing_success_days(month)) if has_data else 0
        fingerprint = zone.month_fingerprint(month) if has_data and not missing else ""
        if lake.exists(CLOSE, month):
            settled = bool(fingerprint) and (
                lake.exists(EARNINGS, month)
                and lake.manifest(EARNINGS, month).get("input_fingerprint") == fingerprint
            )
            states.append(MonthState(month, has_data, missing, f"{fingerprint}:closed", settled, closed=True))
            continue
        previous_hash = None
        if month != first_month:
            previous = previous_month(month)
            previous_hash = (
                lake.content_hash(STATEMENTS, previous) if lake.exists(STATEMENTS, previous) else "missing"
            )
        basis = adjustment_basis(lake, first_month, month)
        settled = False
        if fingerprint and lake.exists(STATEMENTS, month):
            manifest = lake.manifest(STATEMENTS, month)
            settled = (
                manifest.get("input_fingerprint") == fingerprint
                and manifest.get("previous_statements_hash") == previous_hash
                and manifest.get("adjustment_basis") == basis
            )
        states.append(
            MonthState(month, has_data, missing, f"{fingerprint}:{previous_hash or 'first'}:{basis}", settled)
        )
    return states


def plan(states: list[MonthState], requested: dict[str, str]) -> Plan:
    """Decide the runs; ``requested`` maps month -> state_key of runs already asked for."""
    requests, notes = [], []
    previous_ready = True  # the month before the first partition needs nothing
    for state in states:
        ready = False
        if not state.has_data:
            notes.append(f"{state.month}: no listening events yet")
        elif state.missing_days:
            notes.append(f"{state.month}: incomplete, {state.missing_days} day(s) without _SUCCESS")
        elif state.settled:
            notes.append(f"{state.month}: up to date" + (" (closed)" if state.closed else ""))
            ready = True
        elif requested.get(state.month) == state.state_key:
            notes.append(f"{state.month}: a run was already requested for these files")
        elif not previous_ready:
            notes.append(f"{state.month}: waiting for the previous month to be computed first")
        else:
            requests.append((state.month, state.state_key))
        previous_ready = ready
    return Plan(requests, notes)

"""Closing a month: the ledger of closed months and adjustments, the draft statements, and the
month-level checks and summary that read the close, the payouts and the payments together."""

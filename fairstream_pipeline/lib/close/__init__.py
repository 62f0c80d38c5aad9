"""Closing a month: the ledger of closed months, adjustments and the month lock."""

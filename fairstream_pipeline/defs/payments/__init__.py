"""Payment runs: a closed month's SEPA batch, its four-eyes release, and the bank's status reports."""

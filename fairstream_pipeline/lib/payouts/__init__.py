"""The payout rules and engine: allocation, shards, rounding, money checks and reports."""

"""Pure FairStream logic: landing-zone contract, ingestion SQL, payout rules, sample data.

Nothing in this package imports Dagster, so it can be tested and reused on its own.
"""

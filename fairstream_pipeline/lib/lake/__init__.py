"""Shared lake and DuckDB helpers: Parquet publishing, table reads, column descriptions, run scratch folders,
the month lock, file fingerprints, fault points and memory sampling. No domain of ``lib/`` is imported here."""

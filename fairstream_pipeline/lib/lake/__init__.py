"""Shared lake and DuckDB helpers: Parquet publishing, table reads, run scratch folders, fault points and memory sampling."""

"""Benchmarks: the whole month through Dagster beside simple baselines (see docs/performance.md)."""

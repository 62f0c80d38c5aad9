"""Ingestion: the landing zone becomes validated, monthly-partitioned tables in the lake."""

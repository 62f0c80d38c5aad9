"""The landing-zone contract and its ingestion: monthly tables, listening events, clean plays and their accounting."""

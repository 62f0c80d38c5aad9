"""The application database (PostgreSQL): published statements and the notification outbox.

The schema is managed by Alembic migrations in ``migrations/``; :func:`upgrade` brings a database
to the newest revision (idempotent, safe to run at every deploy or before a publish).
"""

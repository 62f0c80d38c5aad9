"""Alembic environment: online migrations only, against the URL the caller configured."""

import sqlalchemy as sa
from alembic import context

config = context.config
engine = sa.create_engine(config.get_main_option("sqlalchemy.url"), poolclass=sa.pool.NullPool)
with engine.connect() as connection:
    # Two processes upgrading at once (two runs starting together) take turns.
    connection.execute(sa.text("SELECT pg_advisory_xact_lock(727100001)"))
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()

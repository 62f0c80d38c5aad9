"""The artist-centric model (rules v4, ACPS v1): each statement and statement line keeps its
artist-centric cents, and each statement the payout model whose cents it earned.

Rows published before this revision were paid user-centric and have no artist-centric figure:
they read 0 and 'user_centric'."""

from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.execute(
        """
        -- Adding a column with a constant default rewrites no row and fires no row trigger, so the
        -- closed statements (immutable since 0002) take the defaults without an UPDATE.
        ALTER TABLE statements ADD COLUMN acps_cents BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE statements ADD COLUMN payout_model TEXT NOT NULL DEFAULT 'user_centric'
            CHECK (payout_model IN ('user_centric', 'pro_rata', 'artist_centric'));
        ALTER TABLE statement_lines ADD COLUMN acps_cents BIGINT NOT NULL DEFAULT 0;
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE statement_lines DROP COLUMN acps_cents;
        ALTER TABLE statements DROP COLUMN payout_model;
        ALTER TABLE statements DROP COLUMN acps_cents;
        """
    )

"""Period close: closed statements are immutable, carry their adjustment, and list its lines."""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE statements ADD COLUMN adjustment_cents BIGINT NOT NULL DEFAULT 0;
        ALTER TABLE statements ADD COLUMN closed_at TIMESTAMPTZ;
        ALTER TABLE statements ADD COLUMN statements_hash TEXT;
        ALTER TABLE statements DROP CONSTRAINT statements_check;
        ALTER TABLE statements ADD CONSTRAINT statements_balance
            CHECK (opening_balance_cents + earned_cents + adjustment_cents - paid_cents = closing_balance_cents);
        ALTER TABLE statements ADD CONSTRAINT statements_paid_not_negative CHECK (paid_cents >= 0);

        CREATE TABLE statement_adjustments (
            month         TEXT   NOT NULL,
            payee_id      TEXT   NOT NULL,
            source_month  TEXT   NOT NULL,
            cents         BIGINT NOT NULL CHECK (cents <> 0),
            reason        TEXT   NOT NULL,
            PRIMARY KEY (month, payee_id, source_month),
            CHECK (source_month < month),
            FOREIGN KEY (month, payee_id) REFERENCES statements (month, payee_id) ON DELETE CASCADE
        );

        -- A closed statement never changes: no UPDATE or DELETE of it, of its lines or of its
        -- adjustments. (Rows published before this revision have no closed_at and stay editable.)
        CREATE FUNCTION refuse_closed_statement_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM statements s
                       WHERE s.month = OLD.month AND s.payee_id = OLD.payee_id AND s.closed_at IS NOT NULL) THEN
                RAISE EXCEPTION 'the statement of % for % is closed and cannot change (%)',
                    OLD.payee_id, OLD.month, TG_OP;
            END IF;
            RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
        END $$;
        CREATE TRIGGER statements_closed BEFORE UPDATE OR DELETE ON statements
            FOR EACH ROW EXECUTE FUNCTION refuse_closed_statement_change();
        CREATE TRIGGER statement_lines_closed BEFORE UPDATE OR DELETE ON statement_lines
            FOR EACH ROW EXECUTE FUNCTION refuse_closed_statement_change();
        CREATE TRIGGER statement_adjustments_closed BEFORE UPDATE OR DELETE ON statement_adjustments
            FOR EACH ROW EXECUTE FUNCTION refuse_closed_statement_change();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER statement_adjustments_closed ON statement_adjustments;
        DROP TRIGGER statement_lines_closed ON statement_lines;
        DROP TRIGGER statements_closed ON statements;
        DROP FUNCTION refuse_closed_statement_change();
        DROP TABLE statement_adjustments;
        ALTER TABLE statements DROP CONSTRAINT statements_paid_not_negative;
        ALTER TABLE statements DROP CONSTRAINT statements_balance;
        ALTER TABLE statements ADD CONSTRAINT statements_check
            CHECK (opening_balance_cents + earned_cents - paid_cents = closing_balance_cents);
        ALTER TABLE statements DROP COLUMN statements_hash;
        ALTER TABLE statements DROP COLUMN closed_at;
        ALTER TABLE statements DROP COLUMN adjustment_cents;
        """
    )

"""Payment runs (rules v3): held statements, adjustments by reason, released payment batches."""

from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.execute(
        """
        -- Why a payee due a payment was not paid (no or invalid payment details, a returned payment).
        ALTER TABLE statements ADD COLUMN hold_reason TEXT
            CHECK (hold_reason IN ('no_payment_details', 'invalid_payment_details', 'returned_payment'));
        ALTER TABLE statements ADD CONSTRAINT statements_held_not_paid
            CHECK (hold_reason IS NULL OR paid_cents = 0);
        -- A payee can have a late-data adjustment and a returned payment for the same source month.
        ALTER TABLE statement_adjustments DROP CONSTRAINT statement_adjustments_pkey;
        ALTER TABLE statement_adjustments ADD PRIMARY KEY (month, payee_id, source_month, reason);

        -- One released payment file per month, ever: who approved it, when, and what it holds.
        CREATE TABLE payment_releases (
            month              TEXT        PRIMARY KEY,
            batch_id           TEXT        NOT NULL UNIQUE,
            file_name          TEXT        NOT NULL,
            file_sha256        TEXT        NOT NULL,
            payments           INTEGER     NOT NULL CHECK (payments > 0),
            control_sum_cents  BIGINT      NOT NULL CHECK (control_sum_cents > 0),
            approver           TEXT        NOT NULL,
            released_at        TIMESTAMPTZ NOT NULL,
            released_by_run    TEXT        NOT NULL,
            status             TEXT        NOT NULL DEFAULT 'released'
                CHECK (status IN ('released', 'settled', 'partly returned')),
            payments_settled   INTEGER     NOT NULL DEFAULT 0,
            payments_returned  INTEGER     NOT NULL DEFAULT 0,
            returned_cents     BIGINT      NOT NULL DEFAULT 0,
            status_updated_at  TIMESTAMPTZ
        );
        -- A release is never rewritten: only its status moves on.
        CREATE FUNCTION refuse_release_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' OR NEW.month <> OLD.month OR NEW.batch_id <> OLD.batch_id
               OR NEW.file_name <> OLD.file_name OR NEW.file_sha256 <> OLD.file_sha256
               OR NEW.payments <> OLD.payments OR NEW.control_sum_cents <> OLD.control_sum_cents
               OR NEW.approver <> OLD.approver OR NEW.released_at <> OLD.released_at
               OR NEW.released_by_run <> OLD.released_by_run THEN
                RAISE EXCEPTION 'the payment release of % cannot change (%)', OLD.month, TG_OP;
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER payment_releases_immutable BEFORE UPDATE OR DELETE ON payment_releases
            FOR EACH ROW EXECUTE FUNCTION refuse_release_change();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER payment_releases_immutable ON payment_releases;
        DROP FUNCTION refuse_release_change();
        DROP TABLE payment_releases;
        ALTER TABLE statement_adjustments DROP CONSTRAINT statement_adjustments_pkey;
        ALTER TABLE statement_adjustments ADD PRIMARY KEY (month, payee_id, source_month);
        ALTER TABLE statements DROP CONSTRAINT statements_held_not_paid;
        ALTER TABLE statements DROP COLUMN hold_reason;
        """
    )

"""Sender leases, a rate limit shared by every sender, and a dead-letter alert per new set."""

from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.execute(
        """
        -- When the dead letter was alerted; NULL: not yet (a replay clears it).
        ALTER TABLE notification_outbox ADD COLUMN dead_alerted_at TIMESTAMPTZ;
        UPDATE notification_outbox o SET dead_alerted_at = a.alerted_at
        FROM outbox_dead_letter_alerts a WHERE a.month = o.month AND o.status = 'dead';
        -- One row per alert sent, not one per month.
        ALTER TABLE outbox_dead_letter_alerts DROP CONSTRAINT outbox_dead_letter_alerts_pkey;
        ALTER TABLE outbox_dead_letter_alerts ADD COLUMN id BIGSERIAL PRIMARY KEY;
        CREATE INDEX outbox_dead_letter_alerts_month ON outbox_dead_letter_alerts (month);
        -- The shared rate limit: the next free send slot, taken by every sender in turn.
        CREATE TABLE outbox_send_slots (
            name          TEXT        PRIMARY KEY,
            next_slot_at  TIMESTAMPTZ NOT NULL
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE outbox_send_slots;
        DROP INDEX outbox_dead_letter_alerts_month;
        ALTER TABLE outbox_dead_letter_alerts DROP COLUMN id;
        DELETE FROM outbox_dead_letter_alerts a USING outbox_dead_letter_alerts b
        WHERE a.month = b.month AND a.alerted_at < b.alerted_at;
        ALTER TABLE outbox_dead_letter_alerts ADD PRIMARY KEY (month);
        ALTER TABLE notification_outbox DROP COLUMN dead_alerted_at;
        """
    )

"""Statements, statement lines and the notification outbox."""

from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE statements (
            month                  TEXT        NOT NULL,
            payee_id               TEXT        NOT NULL,
            payee_name             TEXT,
            email                  TEXT,
            opening_balance_cents  BIGINT      NOT NULL,
            earned_cents           BIGINT      NOT NULL,
            pro_rata_cents         BIGINT      NOT NULL,
            paid_cents             BIGINT      NOT NULL,
            closing_balance_cents  BIGINT      NOT NULL,
            rules_version          TEXT        NOT NULL,
            published_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (month, payee_id),
            CHECK (opening_balance_cents + earned_cents - paid_cents = closing_balance_cents)
        );
        CREATE TABLE statement_lines (
            month     TEXT   NOT NULL,
            payee_id  TEXT   NOT NULL,
            country   TEXT   NOT NULL,
            tier      TEXT   NOT NULL,
            uc_cents  BIGINT NOT NULL,
            pr_cents  BIGINT NOT NULL,
            PRIMARY KEY (month, payee_id, country, tier),
            FOREIGN KEY (month, payee_id) REFERENCES statements (month, payee_id) ON DELETE CASCADE
        );
        CREATE TABLE notification_outbox (
            id               BIGSERIAL   PRIMARY KEY,
            month            TEXT        NOT NULL,
            payee_id         TEXT        NOT NULL,
            kind             TEXT        NOT NULL,
            recipient        TEXT,
            subject          TEXT        NOT NULL,
            body_text        TEXT        NOT NULL,
            body_html        TEXT        NOT NULL,
            attachment_name  TEXT        NOT NULL,
            attachment_csv   TEXT        NOT NULL,
            message_id       TEXT        NOT NULL UNIQUE,
            status           TEXT        NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'sending', 'sent', 'retry', 'dead', 'no_address')),
            attempts         INTEGER     NOT NULL DEFAULT 0,
            next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
            claimed_at       TIMESTAMPTZ,
            claimed_by       TEXT,
            sent_at          TIMESTAMPTZ,
            last_error       TEXT,
            created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
            UNIQUE (month, payee_id, kind),
            CHECK ((status = 'no_address') = (recipient IS NULL))
        );
        CREATE INDEX notification_outbox_ready
            ON notification_outbox (next_attempt_at, id) WHERE status IN ('pending', 'retry');
        CREATE INDEX notification_outbox_month_status ON notification_outbox (month, status);
        CREATE TABLE outbox_dead_letter_alerts (
            month       TEXT        PRIMARY KEY,
            dead        INTEGER     NOT NULL,
            alerted_at  TIMESTAMPTZ NOT NULL DEFAULT now()
        );
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE outbox_dead_letter_alerts; DROP TABLE notification_outbox; "
        "DROP TABLE statement_lines; DROP TABLE statements;"
    )

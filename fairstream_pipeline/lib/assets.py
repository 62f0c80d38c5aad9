"""The name of every asset: its Dagster asset key and its folder in the lake (one constant each)."""

# ingestion
LANDING_MONTH = "landing_month"  # the month's landing files, with their fingerprint
BILLED_USERS = "billed_users"
AD_REVENUE = "ad_revenue"
CLEAN_PLAYS = "clean_plays"
PLAY_QUARANTINE = "play_quarantine"

# payouts
TRACK_SPLITS = "track_splits"
PAYEE_DIRECTORY = "payee_directory"
PAYMENT_DETAILS = "payment_details"  # one version per month, mode 0600
USER_STREAMS = "user_streams"
FLAGGED_USERS = "flagged_users"
SEGMENT_POOLS = "segment_pools"
TRACK_EARNINGS = "track_earnings"
PROFESSIONAL_ARTISTS = "professional_artists"
EARNINGS = "payee_earnings"
STATEMENTS = "payee_statements"
ADJUSTMENTS = "payee_adjustments"

# close
CLOSE = "period_close"  # a month's earnings as closed, and its close record

# payments
PAYMENT_BATCH = "payment_batch"  # lines (Parquet), the SEPA file and its CSV; mode 0600
PAYMENT_RELEASE = "payment_release"  # the release record of a month's batch
PAYMENT_STATUS = "payment_status"  # each released payment's status, per batch month

# notifications
STATEMENT_NOTIFICATIONS = "statement_notifications"
PUBLISHED_STATEMENTS = "published_statements"
STATEMENT_OUTBOX = "statement_outbox"

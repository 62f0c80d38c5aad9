"""What each column of the lake's tables means, and a partition's columns as its files hold them.

The UI shows these as each asset's column schema (``dagster/column_schema``), read from the
Parquet files each materialization wrote, so the schema shown is the one on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.storage import Lake

COLUMN_DESCRIPTIONS = {
    "account_holder": "Who the account belongs to (empty in payment_details: the payee's name is used).",
    "acps_cents": "Artist-centric (ACPS v1) earnings in cents, shown beside user-centric.",
    "acps_pico": "Artist-centric (ACPS v1) money in pico-cents, exact: floor(pool * W_t / W).",
    "acps_unallocated_pico": "Artist-centric money no weight could claim (a segment without music streams), in pico-cents.",
    "acps_weight": "ACPS v1 weight in micro-streams: W_t for a track, W for a segment (docs/payout-rules.md, rule 11).",
    "active": "Whether the play was started by search or an editorial playlist (ACPS v1's active streams).",
    "adjustment_cents": "What closed months post to this statement, in cents (sum of payee_adjustments).",
    "amount_cents": "The payment, in cents.",
    "approver": "Who approved the release (the second person).",
    "artist_id": "The artist's id in the catalog (empty: the catalog names the artist only).",
    "artist_index": "The artist's index in artists.parquet (empty: the track has no artist).",
    "artist_name": "The artist's name in the catalog.",
    "attachment_csv": "The statement lines as CSV, attached to the email.",
    "attachment_name": "The file name of the CSV attachment.",
    "bank_status": "The bank's last ISO 20022 status code for the payment (ACSC, RJCT...).",
    "batch_id": "The batch id, the SEPA file's MsgId: FS-<month>-<8 hex of the lines' hash>.",
    "bic": "The bank's BIC (empty: not given). Personal data.",
    "body_html": "The email's HTML body.",
    "body_text": "The email's plain-text body.",
    "bucket": "The user bucket (first 8 bytes of md5(user_id), big-endian, mod B).",
    "catalogued": "Whether the track is in the month's catalog (false: a play of an unknown track).",
    "cents": "The adjustment in cents: restated earned minus what was already posted (non-zero).",
    "closing_balance_cents": "opening + earned + adjustment - paid, in cents; carried to next month.",
    "contribution_pico": "The user's money for the month in pico-cents (10^-12 cent), exact.",
    "control_sum_cents": "The released batch's total, in cents.",
    "counted_streams": "Streams that count for payment after the rules (min play, caps, flags).",
    "country": "Billing country (ISO 3166-1 alpha-2).",
    "day": "The UTC day of the plays.",
    "details_hash": "A hash of the payee's bank details row: a returned payment holds the payee until it changes.",
    "earned_cents": "Earnings for the month under the paying model (payout_model), in cents.",
    "email": "Where the payee's statement is sent (empty: no address).",
    "end_to_end_id": "The payment's id in the SEPA file, stable for (month, payee); bank reports quote it.",
    "event_id": "The event's id as delivered.",
    "file_index": "The landing file's index in files.parquet.",
    "file_name": "The released SEPA file's name (<MsgId>.xml).",
    "file_row_number": "The row's number in its landing file (from 0).",
    "file_sha256": "The sha256 of the released SEPA file.",
    "flagged": "Whether the user's streams were flagged (too many in a day) and not paid.",
    "folder_date": "The UTC day of the landing folder.",
    "hold_reason": "Why a payee due a payment was not paid: no_payment_details, invalid_payment_details, returned_payment.",
    "iban": "The account's IBAN. Personal data: this file is mode 0600; the UI shows iban_masked.",
    "iban_masked": "The IBAN as the UI shows it: country code and last 4 characters.",
    "kind": "The kind of message.",
    "listeners": "Distinct users with a counted stream of the artist this month, all segments.",
    "message_id": "The email's Message-ID, stable across re-renders.",
    "month": "The payout month (YYYY-MM).",
    "ms_played": "Milliseconds played.",
    "mtime_ns": "The file's modification time (ns), part of its fingerprint.",
    "name": "The payee's name in the catalog.",
    "net_cents": "Net revenue in cents (after VAT and fees).",
    "noise": "Whether the catalog's content_type is noise (weight 0 under ACPS).",
    "num_rows": "Rows in the file (Parquet footer).",
    "opening_balance_cents": "Last month's closing balance, in cents (zero in the first month).",
    "paid_cents": "Paid this month, in cents (all of it once the balance reaches the threshold).",
    "payee_id": "The payee (__suspense__ and __unallocated__ hold money never paid).",
    "payments": "Payments in the released batch.",
    "payout_model": "The model whose cents are earned_cents: user_centric, pro_rata or artist_centric.",
    "plan": "The subscription plan.",
    "played_at": "When the play started (UTC).",
    "pool_pico": "The segment's royalty pool in pico-cents.",
    "pr_cents": "Pro-rata earnings in cents, shown beside user-centric.",
    "pr_pico": "Pro-rata money in pico-cents, exact.",
    "pr_unallocated_pico": "Pro-rata money no stream could claim, in pico-cents.",
    "pro_min_listeners": "acps_pro_min_listeners: the listeners a professional artist needs.",
    "pro_min_streams": "acps_pro_min_streams: the counted music streams a professional artist needs.",
    "pro_rata_cents": "What pro-rata would have paid this month, in cents (for comparison only).",
    "problem": "Why the track's splits are invalid (empty: valid).",
    "professional": "Whether the artist meets both thresholds (ACPS v1: their streams weigh acps_pro_boost times).",
    "reason": "Why the row was removed or quarantined (docs/data-contract.md).",
    "reason_code": "Why the bank returned the payment (AC04 closed account, AC01 incorrect account number...).",
    "recipient": "The email address (empty: no address).",
    "relative_path": "The landing file, relative to the landing zone.",
    "released_at": "When the batch was released (UTC).",
    "released_by_run": "The run that released the batch.",
    "remittance": "The text the payee's bank shows: the month and the statement.",
    "report": "The bank status report (payment_reports/...) that set the payment's status.",
    "residual_pico": "The segment's money left after user-centric floor division, in pico-cents.",
    "share_ppm": "The payee's share of the track in parts per million.",
    "size_bytes": "The file's size in bytes, part of its fingerprint.",
    "source_file": "The landing file, relative to the landing zone.",
    "source_month": "The closed month whose restatement this adjustment posts.",
    "status": "Where the message is: pending, no_address, ...",
    "streaming_users": "Billed users with at least one counted stream.",
    "streams": "Counted streams.",
    "subject": "The email's subject.",
    "target_cents": "The segment's pool rounded down to cents: what its payees share exactly.",
    "tier": "paid or free.",
    "track_id": "The track.",
    "track_index": "The track's index in tracks.parquet (integer-coded plays).",
    "uc_cents": "User-centric earnings in cents.",
    "uc_pico": "User-centric money in pico-cents, exact.",
    "uc_unallocated_pico": "User-centric money no stream could claim, in pico-cents.",
    "uncatalogued_track_id": "The track id of a play whose track is not in the catalog (else empty).",
    "user_id": "The subscriber.",
    "user_index": "The user's index in users.parquet (integer-coded plays).",
    "users": "Billed users in the segment.",
    "valid": "Whether the track's splits are valid (else it pays __suspense__).",
    "worst_day": "The day with the most streams.",
    "worst_day_streams": "Streams on the worst day.",
}


@dataclass(frozen=True)
class FolderRows:
    """Where an asset keeps its rows when they are not all of its version folder's Parquet files:
    the files ``glob`` finds below the folder, in Hive-style folders (``name=value/``) whose names
    are ``folder_columns`` (name, type) of every row."""

    glob: str
    folder_columns: tuple[tuple[str, str], ...]


# The assets whose rows are in sub-folders beside other files: clean plays are their coded play
# files, beside the month's dictionaries (``lib/ingestion/clean_plays.py`` writes them).
FOLDER_ROWS = {
    "clean_plays": FolderRows("plays/bucket=*/day=*/plays.parquet", (("bucket", "INTEGER"), ("day", "DATE"))),
}


def partition_files(lake: Lake, asset: str, month: str) -> list[Path]:
    """The files that hold an asset's rows for a month (see :data:`FOLDER_ROWS`)."""
    if asset in FOLDER_ROWS:
        return sorted(lake.partition_dir(asset, month).glob(FOLDER_ROWS[asset].glob))
    return [f for f in lake.partition_files(asset, month) if f.suffix == ".parquet"]


# Columns whose meaning depends on the asset (the map above holds the common meaning).
ASSET_COLUMN_DESCRIPTIONS = {
    ("professional_artists", "counted_streams"): "Counted music streams of the artist this month, all segments.",
    ("payee_adjustments", "reason"): "Why it was posted: late_data (a restated closed month) or returned_payment.",
    ("payee_adjustments", "source_month"): "The closed month restated, or whose payment the bank returned.",
    ("payment_details", "valid"): "Whether the bank details can be paid to (else the payee is held).",
    ("payment_details", "problem"): "Why the bank details cannot be paid to (empty: valid).",
    ("payment_status", "status"): "pending, settled or returned.",
}


def partition_columns(con: duckdb.DuckDBPyConnection, lake: Lake, asset: str, month: str) -> list[tuple[str, str, str]]:
    """(name, type, description) of each column of an asset's month, read from its files' footers."""
    files = [str(f) for f in partition_files(lake, asset, month)]
    if not files:
        return []
    columns = [tuple(row[:2]) for row in con.execute(f"DESCRIBE SELECT * FROM {read_parquet(files)}").fetchall()]
    if asset in FOLDER_ROWS:
        columns += FOLDER_ROWS[asset].folder_columns
    return [
        (name, kind, ASSET_COLUMN_DESCRIPTIONS.get((asset, name), COLUMN_DESCRIPTIONS.get(name, "")))
        for name, kind in columns
    ]

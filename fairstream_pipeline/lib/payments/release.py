"""Four eyes and exactly one release: the approver restates the batch's count and control sum, and
the SEPA file is handed to the bank's folder once.

The release writes the batch's file to ``FAIRSTREAM_PAYMENTS_OUT_DIR`` as ``<MsgId>.xml``, mode 0600,
atomically and only if no file of that name exists (a hard link of a finished temporary file: a
reader never sees half a file, and of two concurrent releases only one creates it). A file already
there with the same bytes is the same release (a re-run after a crash); with other bytes it is
refused. The release record (who, when, the file's sha256, the count and the sum) is kept in the
lake and, when configured, in the application database; a month never releases two files.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fairstream_pipeline.lib.payments.sepa_credit_transfer import cents_text



class ApprovalRefused(ValueError):
    """The approval does not match the batch (nothing is released); never says the batch's figures."""


class ReleaseConflict(RuntimeError):
    """A second, different file for a month that already released one."""


def check_approval(approver: str, count: int, control_sum_cents: int, batch_count: int, batch_sum_cents: int) -> None:
    """Refuse an approval whose approver is blank, or whose count or control sum differs from the
    batch: the message says which of the two differs, without the batch's figure."""
    if not approver.strip():
        raise ApprovalRefused("the approval names no approver: a second person must approve the batch by name")
    wrong = [
        what
        for what, given, actual in (("count", count, batch_count), ("control sum", control_sum_cents, batch_sum_cents))
        if given != actual
    ]
    if wrong:
        given = {"count": f"{count:,}", "control sum": f"{cents_text(control_sum_cents)} EUR"}
        raise ApprovalRefused(
            "approval refused, nothing released: the "
            + " and the ".join(f"{what} you entered ({given[what]})" for what in wrong)
            + (" do not" if len(wrong) > 1 else " does not")
            + " match the batch; check the batch in the UI and approve again"
        )


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def release_file(data: bytes, out_dir: Path, file_name: str) -> tuple[Path, bool]:
    """Put ``data`` at ``out_dir/file_name`` (mode 0600) once; returns the path and whether this call
    created it. Raises ``ReleaseConflict`` when a file of that name holds other bytes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / file_name
    temporary = out_dir / f".{file_name}.{uuid.uuid4().hex[:8]}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, target)  # atomic, and fails if the target exists
            created = True
        except FileExistsError:
            created = False
    finally:
        temporary.unlink(missing_ok=True)
    if not created and sha256_of(target.read_bytes()) != sha256_of(data):
        raise ReleaseConflict(f"{target} already exists with other contents: a month never releases two files")
    return target, created


@dataclass(frozen=True)
class Release:
    """The record of a released batch."""

    month: str
    batch_id: str
    file_name: str
    file_sha256: str
    payments: int
    control_sum_cents: int
    approver: str
    released_at: str
    released_by_run: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


RELEASE_COLUMNS = tuple(Release.__dataclass_fields__)


def record_release(cursor, release: Release) -> Release:
    """Insert the release into the app database's ``payment_releases`` once; returns the release the
    database holds for the month (the first). Raises ``ReleaseConflict`` when it holds another file."""
    cursor.execute(
        f"INSERT INTO payment_releases ({', '.join(RELEASE_COLUMNS)}) VALUES ({', '.join(['%s'] * len(RELEASE_COLUMNS))}) "
        "ON CONFLICT (month) DO NOTHING",
        tuple(getattr(release, c) for c in RELEASE_COLUMNS),
    )
    cursor.execute(f"SELECT {', '.join(RELEASE_COLUMNS)} FROM payment_releases WHERE month = %s", (release.month,))
    row = cursor.fetchone()
    held = Release(*[value.isoformat() if hasattr(value, "isoformat") else value for value in row])
    if held.file_sha256 != release.file_sha256:
        raise ReleaseConflict(
            f"{release.month}: the application database holds another release ({held.batch_id}, sha256 "
            f"{held.file_sha256[:12]}…): a month never releases two files"
        )
    return held


def record_status(cursor, month: str, status: str, settled: int, returned: int, returned_cents: int) -> None:
    """Move the app database's release of ``month`` to its batch status after a bank report."""
    cursor.execute(
        "UPDATE payment_releases SET status = %s, payments_settled = %s, payments_returned = %s, "
        "returned_cents = %s, status_updated_at = now() WHERE month = %s",
        (status, settled, returned, returned_cents, month),
    )

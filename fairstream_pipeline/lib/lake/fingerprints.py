"""Short hashes of files' names, sizes and modification times: cheap to take, and they change when
a file does (its content is never read)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def files_fingerprint(files: Iterable[tuple[str, int, int]]) -> str:
    """A short hash of ``(relative path, size in bytes, mtime in ns)`` of each file, in the order given."""
    digest = hashlib.sha256()
    for relative_path, size_bytes, mtime_ns in files:
        digest.update(f"{relative_path}\0{size_bytes}\0{mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def file_fingerprint(relative_path: str, size_bytes: int, mtime_ns: int) -> str:
    """A short hash of one file's name, size and modification time (the audit of a restatement)."""
    return files_fingerprint([(relative_path, size_bytes, mtime_ns)])

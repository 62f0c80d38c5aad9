"""The warehouse lake: versioned monthly Parquet partitions, published by one atomic pointer swap.

Layout under the root (``FAIRSTREAM_WAREHOUSE_DIR``)::

    <asset>/month=YYYY-MM/v-<UTC time>-<id>/part-*.parquet, _manifest.json   one folder per version
    _published/month=YYYY-MM.json                                             {asset: current version}

A write stages a new version folder next to the current one and publishes it by replacing the
month's pointer file (``os.replace``: atomic on a POSIX file system, NFS included). So:

- a reader never sees a month disappear, nor half a version: it reads the pointer once and then
  immutable folders;
- every asset written in one publication (``write_partitions``) shares one version name and becomes
  visible with the same pointer swap: together, or not at all;
- a run killed before the swap leaves only a folder that was never published; the next
  publication of that asset and month removes it (and the legacy ``.staging-*``/``.trash-*``
  folders). A replaced version stays ``retain_seconds`` (15 minutes) for readers that are still on
  it, and the one before the current always stays (``_published/replaced-month=YYYY-MM.json``
  records when each was replaced);
- each version's manifest records the run that wrote it (``written_by_run``), and a publication
  returns the versions it replaced, so a caller can tell whether a replaced version was ever
  recorded (a kill between the swap and the orchestrator's event).

Months written before versioning (files straight in ``month=YYYY-MM/``) are still read; their next
publication replaces them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import pyarrow.parquet as pq

from fairstream_pipeline.lib.lake.faults import fault_point

MANIFEST = "_manifest.json"
POINTERS = "_published"
VERSION_PREFIX = "v-"
RETAIN_SECONDS = 900.0


class MissingPartitionError(FileNotFoundError):
    """An upstream month has not been materialized (or was deleted)."""


@dataclass(frozen=True)
class Replaced:
    """The version a publication replaced: its folder name and the run that had written it."""

    version: str
    written_by_run: str | None


class PartitionWriter:
    """Collects the files and manifest entries of one month before it is published."""

    def __init__(self, staging_dir: Path):
        self.staging_dir = staging_dir
        self.manifest: dict[str, Any] = {}
        self.replaced: Replaced | None = None  # set once published
        # Personal data (bank details): the version's folder is 0700 and its files 0600 when published.
        self.private = False
        # Files whose identity is their content, not their bytes (unsorted internal files): their
        # digest, by path relative to the folder, stands for them in the manifest's content hash.
        self.content_digests: dict[str, str] = {}

    def file(self, name: str = "part-00000.parquet") -> Path:
        return self.staging_dir / name


class Lake:
    """The warehouse rooted at ``root`` (``FAIRSTREAM_WAREHOUSE_DIR``)."""

    def __init__(self, root: str | Path, run_id: str | None = None, retain_seconds: float = RETAIN_SECONDS):
        self.root = Path(root)
        self.run_id = run_id  # the run writing through this lake, recorded in each manifest
        self.retain_seconds = retain_seconds  # how long a replaced version stays for slow readers

    # Reading ------------------------------------------------------------------------------------

    def month_dir(self, asset: str, month: str) -> Path:
        """The folder holding every version of the asset's month."""
        return self.root / asset / f"month={month}"

    def published(self, month: str) -> dict[str, str]:
        """``{asset: current version}`` for the month: one read gives a consistent snapshot."""
        try:
            return json.loads(self._pointer(month).read_text())
        except FileNotFoundError:
            return {}

    def partition_dir(self, asset: str, month: str) -> Path:
        """The folder of the asset's current version for the month (or its legacy flat folder)."""
        version = self.published(month).get(asset)
        return self.month_dir(asset, month) / version if version else self.month_dir(asset, month)

    def exists(self, asset: str, month: str) -> bool:
        return (self.partition_dir(asset, month) / MANIFEST).is_file()

    def require(self, asset: str, month: str) -> Path:
        folder = self.partition_dir(asset, month)
        if not (folder / MANIFEST).is_file():
            raise MissingPartitionError(
                f"{asset} for {month} has not been materialized (no {folder / MANIFEST}); "
                f"materialize {asset} for {month} first"
            )
        return folder

    def parquet_glob(self, asset: str, month: str) -> str:
        """A glob for DuckDB's ``read_parquet`` over the month's files; raises if the month is missing."""
        return str(self.require(asset, month) / "*.parquet")

    def partition_files(self, asset: str, month: str) -> list[Path]:
        """Every file of the month's current version, sub-folders included, sorted by path."""
        folder = self.require(asset, month)
        return sorted(p for p in folder.rglob("*") if p.is_file())

    def row_count(self, asset: str, month: str) -> int:
        """Rows in the month's Parquet files, read from their footers."""
        folder = self.require(asset, month)
        return sum(pq.ParquetFile(p).metadata.num_rows for p in sorted(folder.glob("*.parquet")))

    def content_hash(self, asset: str, month: str) -> str:
        """The hash of the month's Parquet bytes, recorded in its manifest when it was written."""
        return self.manifest(asset, month)["content_hash"]

    def manifest(self, asset: str, month: str) -> dict[str, Any]:
        return json.loads((self.require(asset, month) / MANIFEST).read_text())

    # Writing ------------------------------------------------------------------------------------

    @contextmanager
    def write_partition(self, asset: str, month: str) -> Iterator[PartitionWriter]:
        """Stage a month's files; publish them atomically when the block exits without error."""
        with self.write_partitions([(asset, month)]) as (writer,):
            yield writer

    @contextmanager
    def write_partitions(self, targets: list[tuple[str, str]]) -> Iterator[tuple[PartitionWriter, ...]]:
        """Stage several assets of one month; publish them together, after all were written.

        The lake's ``run_id`` goes into each manifest as ``written_by_run``.
        """
        months = {month for _, month in targets}
        if len(months) != 1:
            raise ValueError(f"one publication covers one month, got {sorted(months)}")
        (month,) = months
        version = f"{VERSION_PREFIX}{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
        writers = []
        published = False
        try:
            for asset, _ in targets:
                folder = self.month_dir(asset, month) / version
                folder.mkdir(parents=True)
                writers.append(PartitionWriter(folder))
            yield tuple(writers)
            for (asset, _), writer in zip(targets, writers):
                manifest = {"asset": asset, "month": month, "version": version, **writer.manifest}
                if self.run_id is not None:
                    manifest["written_by_run"] = self.run_id
                manifest["files"] = _parquet_files(writer.staging_dir)
                manifest["content_hash"] = _hash_files(writer.staging_dir, writer.content_digests)
                _write_durably(writer.staging_dir / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
                if writer.private:
                    _restrict_to_owner(writer.staging_dir)
            names = ",".join(asset for asset, _ in targets)
            fault_point(f"publish:{names}:before")
            with self._pointer_lock(month):
                current = self.published(month)
                previous = {asset: current.get(asset) for asset, _ in targets}
                for asset, _ in targets:
                    current[asset] = version
                _write_durably(self._pointer(month), json.dumps(current, indent=2, sort_keys=True))
                published = True
                fault_point(f"publish:{names}:after")
                replaced = self._replaced_log(month)
                now = datetime.now(timezone.utc).timestamp()
                for (asset, _), writer in zip(targets, writers):
                    writer.replaced = self._replaced(asset, month, previous[asset])
                    log = replaced.setdefault(asset, {})
                    if previous[asset]:
                        log[previous[asset]] = now
                    recent = {v for v, at in log.items() if now - at < self.retain_seconds}
                    self._clean(asset, month, keep={version, previous[asset], *recent})
                    folder = self.month_dir(asset, month)
                    replaced[asset] = {v: at for v, at in log.items() if (folder / v).is_dir()}
                _write_durably(self._replaced_path(month), json.dumps(replaced, indent=2, sort_keys=True))
        finally:
            if not published:
                for writer in writers:
                    shutil.rmtree(writer.staging_dir, ignore_errors=True)

    # Internals ----------------------------------------------------------------------------------

    def _pointer(self, month: str) -> Path:
        return self.root / POINTERS / f"month={month}.json"

    def _replaced_path(self, month: str) -> Path:
        return self.root / POINTERS / f"replaced-month={month}.json"

    def _replaced_log(self, month: str) -> dict[str, dict[str, float]]:
        """``{asset: {version: when it was replaced}}`` of the versions still on disk."""
        try:
            return json.loads(self._replaced_path(month).read_text())
        except FileNotFoundError:
            return {}

    @contextmanager
    def _pointer_lock(self, month: str) -> Iterator[None]:
        """Serialise the read-modify-replace of a month's pointer (steps of one run may run in parallel)."""
        folder = self.root / POINTERS
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"month={month}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _replaced(self, asset: str, month: str, version: str | None) -> Replaced | None:
        folder = self.month_dir(asset, month) / version if version else self.month_dir(asset, month)
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except FileNotFoundError:
            return None
        return Replaced(version or "(unversioned)", manifest.get("written_by_run"))

    def _clean(self, asset: str, month: str, keep: set[str | None]) -> None:
        """Remove what no reader can reach: older versions, unpublished ones of killed runs, legacy
        files and folders. The current version and the one before it stay."""
        folder = self.month_dir(asset, month)
        for path in folder.iterdir():
            if path.is_dir() and path.name.startswith(VERSION_PREFIX) and path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)
            elif path.is_file() and None not in keep:  # legacy flat files, replaced by a version
                path.unlink(missing_ok=True)
        for leftover in folder.parent.glob(f".*-month={month}-*"):  # .staging-/.trash- of the old layout
            shutil.rmtree(leftover, ignore_errors=True)


def _write_durably(path: Path, text: str) -> None:
    """Write ``path`` through a temporary file and an atomic rename, fsynced."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(temporary, "w") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def _restrict_to_owner(folder: Path) -> None:
    """Mode 0700 for ``folder`` and its sub-folders, 0600 for every file in them."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o700 if path.is_dir() else 0o600)


def _parquet_files(folder: Path) -> list[str]:
    """The Parquet files of a version folder, by path relative to it (most assets have one file)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet"))


def _hash_files(folder: Path, content_digests: dict[str, str] | None = None) -> str:
    """The hash of a version folder's Parquet files: their names and bytes, or for a file in
    ``content_digests`` its digest instead of its bytes."""
    digest = hashlib.sha256()
    for name in _parquet_files(folder):
        digest.update(name.encode() + b"\0")
        if content_digests and name in content_digests:
            digest.update(b"content:" + content_digests[name].encode())
            continue
        with open(folder / name, "rb") as data:
            for block in iter(lambda: data.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]

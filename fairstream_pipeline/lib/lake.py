"""The warehouse lake: one folder of Parquet files per asset and month, replaced atomically.

Layout: ``<root>/<asset>/month=YYYY-MM/`` holding ``part-*.parquet`` and ``_manifest.json``.
A month is written into a staging folder next to its final place and renamed into place only when
everything succeeded, so a re-run replaces the month and a crash never leaves half a month.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pyarrow.parquet as pq

MANIFEST = "_manifest.json"


class MissingPartitionError(FileNotFoundError):
    """An upstream month has not been materialized (or was deleted)."""


class PartitionWriter:
    """Collects the files and manifest entries of one month before it is published."""

    def __init__(self, staging_dir: Path):
        self.staging_dir = staging_dir
        self.manifest: dict[str, Any] = {}

    def file(self, name: str = "part-00000.parquet") -> Path:
        return self.staging_dir / name


class Lake:
    """The warehouse rooted at ``root`` (``FAIRSTREAM_WAREHOUSE_DIR``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def partition_dir(self, asset: str, month: str) -> Path:
        return self.root / asset / f"month={month}"

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

    def row_count(self, asset: str, month: str) -> int:
        """Rows in the month's Parquet files, read from their footers."""
        folder = self.require(asset, month)
        return sum(pq.ParquetFile(p).metadata.num_rows for p in sorted(folder.glob("*.parquet")))

    def content_hash(self, asset: str, month: str) -> str:
        """The hash of the month's Parquet bytes, recorded in its manifest when it was written."""
        return self.manifest(asset, month)["content_hash"]

    def manifest(self, asset: str, month: str) -> dict[str, Any]:
        return json.loads((self.require(asset, month) / MANIFEST).read_text())

    @contextmanager
    def write_partition(self, asset: str, month: str) -> Iterator[PartitionWriter]:
        """Stage a month's files; publish them atomically when the block exits without error."""
        with self.write_partitions([(asset, month)]) as (writer,):
            yield writer

    @contextmanager
    def write_partitions(self, targets: list[tuple[str, str]]) -> Iterator[tuple[PartitionWriter, ...]]:
        """Stage several (asset, month) folders and publish them together, after all were written."""
        writers = []
        try:
            for asset, month in targets:
                final = self.partition_dir(asset, month)
                final.parent.mkdir(parents=True, exist_ok=True)
                staging = final.parent / f".staging-{final.name}-{uuid.uuid4().hex[:8]}"
                staging.mkdir()
                writers.append(PartitionWriter(staging))
            yield tuple(writers)
            for (asset, month), writer in zip(targets, writers):
                manifest = {"asset": asset, "month": month, **writer.manifest}
                manifest["files"] = sorted(p.name for p in writer.staging_dir.glob("*.parquet"))
                manifest["content_hash"] = _hash_files(writer.staging_dir)
                (writer.staging_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            for (asset, month), writer in zip(targets, writers):
                _swap_into_place(writer.staging_dir, self.partition_dir(asset, month))
        finally:
            for writer in writers:
                shutil.rmtree(writer.staging_dir, ignore_errors=True)


def _hash_files(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.parquet")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _swap_into_place(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging`` with renames on the same file system."""
    trash = final.parent / f".trash-{final.name}-{uuid.uuid4().hex[:8]}"
    if final.exists():
        os.rename(final, trash)
    os.rename(staging, final)
    shutil.rmtree(trash, ignore_errors=True)

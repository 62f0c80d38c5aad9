"""Per-run scratch folders in the warehouse, where fanned-out steps leave their results for a merge.

A fanned-out step (one per UTC day of ingestion, one per user bucket of the allocation) writes its
results under

    <warehouse>/<area>/month=M/run=<run id>/<part>/

(the warehouse is shared storage when steps run on other machines) and passes the folder on as its
output. A re-execution from failure hands the merge the parent run's folders for the parts it did
not run again. After the merge has published, every folder of the month goes; a folder left by a
killed run goes at the next fresh run of the month (the month lock guarantees that no other run of
the month is alive).
"""

from __future__ import annotations

import shutil
from pathlib import Path


class RunScratch:
    """One run's scratch folders for one month, under ``<warehouse>/<area>``."""

    def __init__(self, warehouse: str | Path, area: str, month: str, run_id: str):
        self.month_dir = Path(warehouse) / area / f"month={month}"
        self.run_dir = self.month_dir / f"run={run_id}"

    def part_dir(self, part: str, fresh: bool = False) -> Path:
        """The folder of one part; ``fresh`` empties it first (a retried step's earlier attempt)."""
        folder = self.run_dir / part
        if fresh:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        return folder

    def remove_leftovers(self) -> list[str]:
        """Remove the folders of other runs of this month (killed before their merge)."""
        removed = []
        if self.month_dir.is_dir():
            for folder in sorted(self.month_dir.iterdir()):
                if folder != self.run_dir:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder.name)
        return removed

    def remove_month(self) -> None:
        """After the merge: every folder of the month, this run's and any parent run's."""
        shutil.rmtree(self.month_dir, ignore_errors=True)

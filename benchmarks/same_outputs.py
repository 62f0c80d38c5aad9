"""Compare two warehouses' published months file by file: same bytes, same rows, or different.

    python -m benchmarks.same_outputs bench/warehouse-before bench/warehouse-after 2026-10

For a performance change that must not change what the month computes: run the same landing zone
through the code before and after (``benchmarks.measure pipeline`` in two checkouts), then compare.
Every Parquet file of every published asset is compared by its bytes; where the bytes differ, by
its rows (sorted), so that a file written in another order or other row groups shows as "same
rows". Other files (JSON records, CSVs, XML) are compared by bytes, a payment file's but its
creation time, which is the close's (two closes of one month differ there only). Prints one line per file that
is not byte-identical and a summary; exits 1 when any file's content differs or is missing.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import duckdb

from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.storage import MANIFEST, Lake


def published_files(lake: Lake, month: str) -> dict[str, Path]:
    """Every file of the month's published versions, by ``asset/relative path`` (not manifests)."""
    files = {}
    for asset in sorted(lake.published(month)):
        folder = lake.partition_dir(asset, month)
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
            files[f"{asset}/{path.relative_to(folder).as_posix()}"] = path
    return files


# A payment file's creation time is the month's close time: two closes of the same month differ there.
CLOSE_TIME = re.compile(rb"<CreDtTm>[^<]*</CreDtTm>")


def same_but_close_time(a: Path, b: Path) -> bool:
    return a.suffix == ".xml" and CLOSE_TIME.sub(b"", a.read_bytes()) == CLOSE_TIME.sub(b"", b.read_bytes())


def same_rows(con: duckdb.DuckDBPyConnection, a: Path, b: Path) -> bool:
    query = "SELECT * FROM {} EXCEPT ALL SELECT * FROM {}"
    first, second = read_parquet(str(a)), read_parquet(str(b))
    counts = [con.execute(f"SELECT count(*) FROM {x}").fetchall()[0][0] for x in (first, second)]
    return counts[0] == counts[1] and not con.execute(query.format(first, second)).fetchall()


def main(argv: list[str]) -> int:
    before, after, month = Lake(Path(argv[0])), Lake(Path(argv[1])), argv[2]
    old, new = published_files(before, month), published_files(after, month)
    con = duckdb.connect()
    identical, reordered, closed_later, different = 0, [], [], []
    for name in sorted(old.keys() | new.keys()):
        if name not in old or name not in new:
            different.append(f"{name}: only in {'after' if name in new else 'before'}")
        elif old[name].read_bytes() == new[name].read_bytes():
            identical += 1
        elif name.endswith(".parquet") and same_rows(con, old[name], new[name]):
            reordered.append(name)
        elif same_but_close_time(old[name], new[name]):
            closed_later.append(name)
        else:
            different.append(f"{name}: different content")
    for name in reordered:
        print(f"same rows, other bytes: {name}")
    for name in closed_later:
        print(f"the same but its close time (CreDtTm): {name}")
    for line in different:
        print(f"DIFFERENT: {line}")
    print(f"{identical} files byte-identical, {len(reordered)} with the same rows in other bytes, "
          f"{len(closed_later)} the same but the close time, {len(different)} different")
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

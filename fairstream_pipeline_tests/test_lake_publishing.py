"""Lake publishing: versions behind one atomic pointer per month, seen by a reader polling meanwhile."""

import json
import threading

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.storage import Lake

MONTH = "2024-01"


def publish(lake: Lake, rows: int, assets=("clean_plays", "play_quarantine")) -> None:
    with lake.write_partitions([(asset, MONTH) for asset in assets]) as writers:
        for writer in writers:
            pq.write_table(pa.table({"n": list(range(rows))}), writer.file())
            writer.manifest.update(rows=rows)


def test_assets_published_together_share_a_version_and_replace_the_previous_one_atomically(tmp_path):
    lake = Lake(tmp_path, run_id="run-1", retain_seconds=0)
    publish(lake, 3)
    first = lake.published(MONTH)
    assert first["clean_plays"] == first["play_quarantine"]
    assert lake.manifest("clean_plays", MONTH)["written_by_run"] == "run-1"
    assert lake.row_count("play_quarantine", MONTH) == 3

    publish(Lake(tmp_path, run_id="run-2", retain_seconds=0), 5)
    second = lake.published(MONTH)
    assert second["clean_plays"] == second["play_quarantine"] != first["clean_plays"]
    assert lake.row_count("clean_plays", MONTH) == 5
    # The version before stays for a slow reader; older ones go once retain_seconds have passed.
    assert sorted(p.name for p in lake.month_dir("clean_plays", MONTH).iterdir()) == sorted(
        [first["clean_plays"], second["clean_plays"]]
    )
    publish(lake, 7)
    assert first["clean_plays"] not in {p.name for p in lake.month_dir("clean_plays", MONTH).iterdir()}


def test_a_reader_polling_during_republication_never_misses_the_month_nor_mixes_versions(tmp_path):
    lake = Lake(tmp_path)
    publish(lake, 100)
    errors, reads = [], []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                snapshot = lake.published(MONTH)  # one read of the pointer: a consistent month
                assert snapshot["clean_plays"] == snapshot["play_quarantine"], snapshot
                counts = [
                    duckdb.sql(
                        f"SELECT count(*) FROM {read_parquet(str(lake.month_dir(a, MONTH) / snapshot[a] / '*.parquet'))}"
                    ).fetchall()[0][0]
                    for a in ("clean_plays", "play_quarantine")
                ]
                assert counts[0] == counts[1], counts
                assert lake.exists("clean_plays", MONTH)
                reads.append(counts[0])
            except Exception as exc:  # anything a reader would trip on
                errors.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    for rows in range(101, 141):
        publish(lake, rows)
    stop.set()
    thread.join()
    assert errors == []
    assert len(reads) > 20 and set(reads) <= set(range(100, 141))


def test_leftovers_of_killed_runs_are_removed_by_the_next_publication_of_that_month(tmp_path):
    lake = Lake(tmp_path, retain_seconds=0)
    publish(lake, 1, assets=("payee_statements",))
    current = lake.published(MONTH)["payee_statements"]
    month_dir = lake.month_dir("payee_statements", MONTH)
    orphan = month_dir / "v-20240101T000000000000-deadbeef"  # staged by a run killed before it published
    orphan.mkdir()
    (orphan / "part-00000.parquet").write_bytes(b"half written")
    legacy = month_dir.parent / f".staging-month={MONTH}-0badf00d"  # the old layout's leftovers
    legacy.mkdir()
    other_month = lake.month_dir("payee_statements", "2024-02") / "v-20240101T000000000000-feedface"
    other_month.mkdir(parents=True)

    assert lake.row_count("payee_statements", MONTH) == 1  # readers never see the orphan
    publish(lake, 2, assets=("payee_statements",))
    assert not orphan.exists() and not legacy.exists()
    assert current in {p.name for p in month_dir.iterdir()}  # the previous version stays
    assert other_month.exists()  # another month's folders are that month's business


def test_a_month_written_before_versioning_is_read_then_replaced(tmp_path):
    lake = Lake(tmp_path, retain_seconds=0)
    flat = lake.month_dir("payee_earnings", MONTH)
    flat.mkdir(parents=True)
    pq.write_table(pa.table({"n": [1, 2]}), flat / "part-00000.parquet")
    (flat / "_manifest.json").write_text(json.dumps({"rows": 2, "content_hash": "old"}))
    assert lake.row_count("payee_earnings", MONTH) == 2 and lake.content_hash("payee_earnings", MONTH) == "old"

    publish(lake, 4, assets=("payee_earnings",))
    assert lake.row_count("payee_earnings", MONTH) == 4
    publish(lake, 5, assets=("payee_earnings",))
    assert not (flat / "part-00000.parquet").exists()  # gone once no reader can still be on it


def test_one_publication_covers_one_month(tmp_path):
    with pytest.raises(ValueError, match="one publication covers one month"):
        with Lake(tmp_path).write_partitions([("a", "2024-01"), ("a", "2024-02")]):
            pass

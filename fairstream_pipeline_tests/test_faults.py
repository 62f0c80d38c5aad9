"""The fault suite: `kill -9` at named points of a real `dagster asset materialize`, then a re-run
that must leave the lake byte-identical to a clean run's (docs/operations.md, "Failure modes")."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline_tests.landing_builders import Landing
from fairstream_pipeline_tests.payout_cases import MonthCase, Plays
from fairstream_pipeline_tests.test_cli_end_to_end import embedded_home, materialize, project_env

pytestmark = pytest.mark.e2e

MONTH = "2024-01"
# Keys that name the run, the time or the version folder: they differ between any two runs.
RUN_AUDIT = {"run_id", "computed_at", "written_by_run", "version", "closed_at", "closed_by_run", "restatements"}


def lake_files(lake: Lake) -> dict[str, bytes]:
    """Every published file, by asset and name; manifests without the run's own keys."""
    files = {}
    for asset in sorted(lake.published(MONTH)):
        folder = lake.partition_dir(asset, MONTH)
        for path in lake.partition_files(asset, MONTH):
            data = path.read_bytes()
            if path.name == "_manifest.json":
                data = json.dumps({k: v for k, v in json.loads(data).items() if k not in RUN_AUDIT}, sort_keys=True).encode()
            files[f"{asset}/{path.relative_to(folder).as_posix()}"] = data
    return files


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faults") / "landing"
    MonthCase(
        [("U1", "premium", "FR", 1500), ("U2", "premium", "FR", 900), ("U3", "free", "FR", 0)],
        [Plays("U1", "X", 3), Plays("U1", "Y", 1, day=9), Plays("U2", "Y", 2, day=20), Plays("U3", "X", 4)],
        ad_revenue=[("FR", 300)],
    ).write(Landing(root), MONTH)
    return root


def run_month(landing: Path, where: Path, fault: str | None = None, home: Path | None = None) -> subprocess.CompletedProcess:
    env = project_env(landing, where / "warehouse", embedded_home(home or where / "home"))
    env["FAIRSTREAM_FIRST_MONTH"] = MONTH
    if fault:
        env["FAIRSTREAM_FAULT_POINT"] = fault
    return materialize(env, MONTH)


@pytest.fixture(scope="module")
def clean_run(landing, tmp_path_factory) -> dict[str, bytes]:
    where = tmp_path_factory.mktemp("clean")
    run = run_month(landing, where)
    assert run.returncode == 0, run.stderr[-3000:]
    return lake_files(Lake(where / "warehouse"))


@pytest.mark.parametrize(
    ("point", "unpublished"),
    [
        ("ingestion", "clean_plays"),
        ("counting", "user_streams"),
        ("publish:payee_statements,payee_adjustments:before", "payee_statements"),
        ("publish:period_close:before", "period_close"),
    ],
)
def test_a_run_killed_at_a_named_point_is_repaired_by_a_re_run(point, unpublished, landing, clean_run, tmp_path):
    killed = run_month(landing, tmp_path, point)
    assert killed.returncode == -9, killed.stderr[-2000:]  # SIGKILL: no cleanup, no last event
    lake = Lake(tmp_path / "warehouse")
    assert unpublished not in lake.published(MONTH)  # nothing half-published is visible
    assert (tmp_path / "warehouse" / "_locks" / f"month={MONTH}.json").exists()  # the dead run's lock

    again = run_month(landing, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]  # the dead process's lock was broken
    assert lake_files(lake) == clean_run
    staged = [p for p in lake.month_dir(unpublished, MONTH).iterdir() if p.name != lake.published(MONTH)[unpublished]]
    assert staged == []  # the killed run's unpublished version is gone


def test_a_kill_between_publishing_and_recording_is_reconciled_by_the_next_run(landing, clean_run, tmp_path):
    killed = run_month(landing, tmp_path, "publish:payee_earnings:after")
    assert killed.returncode == -9
    lake = Lake(tmp_path / "warehouse")
    written_by = lake.manifest("payee_earnings", MONTH)["written_by_run"]  # published, never recorded

    again = run_month(landing, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (
        f"reconciled: the lake's current payee_earnings for {MONTH} (version " in again.stderr
        and f"was published by run {written_by}, which was stopped before it could record it" in again.stderr
    )
    assert lake_files(lake) == clean_run


def test_a_full_disk_fails_the_run_cleanly_and_a_re_run_after_freeing_space_repairs_it(landing, clean_run, tmp_path):
    disk = tmp_path / "small-disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True, text=True)
    assert mounted.returncode == 0, f"cannot mount a small tmpfs for the full-disk test: {mounted.stderr}"
    try:
        filler = disk / "filler"
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        filler.write_bytes(b"\0" * (free - 48 * 1024))  # leave 48 KiB: the month needs more than that

        home = tmp_path / "home"  # the instance elsewhere: only the lake's disk is full
        full = run_month(landing, disk, home=home)
        assert full.returncode != 0
        assert "No space left on device" in full.stderr
        lake = Lake(disk / "warehouse")
        for asset, version in lake.published(MONTH).items():  # whatever was published is whole
            manifest = lake.manifest(asset, MONTH)
            assert manifest["version"] == version and sorted(manifest["files"]) == sorted(
                p.name for p in lake.partition_dir(asset, MONTH).glob("*.parquet")
            )

        filler.unlink()  # the operator frees space, and runs the month again
        again = run_month(landing, disk, home=home)
        assert again.returncode == 0, again.stderr[-3000:]
        assert lake_files(lake) == clean_run
        for asset, version in lake.published(MONTH).items():
            leftovers = [p.name for p in lake.month_dir(asset, MONTH).iterdir() if p.name != version]
            assert len(leftovers) <= 1, (asset, leftovers)  # at most the replaced version, kept for readers
    finally:
        subprocess.run(["umount", str(disk)], check=False)

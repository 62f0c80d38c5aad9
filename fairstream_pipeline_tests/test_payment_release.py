"""lib.payments.release: four eyes, and exactly one released file per month.

``check_approval`` refuses a blank approver and a count or control sum that differs from the batch,
saying which differs without giving the batch's figure. ``release_file`` puts the file in the bank's
folder once, mode 0600, atomically, even when two releases race; a second file for the same name is
refused. ``record_release`` and ``record_status`` keep the release in the app database (real
PostgreSQL, migrated by the project's own migrations), where a trigger refuses any rewrite of it.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import psycopg2
import psycopg2.errors
import pytest

from fairstream_pipeline.lib.app_db.schema import upgrade
from fairstream_pipeline.lib.payments.release import (
    RELEASE_COLUMNS,
    ApprovalRefused,
    Release,
    ReleaseConflict,
    check_approval,
    record_release,
    record_status,
    release_file,
    sha256_of,
)
from fairstream_pipeline_tests.postgres import PG

NAME = "FS-2024-01-0a1b2c3d.xml"
DATA = b"<?xml version='1.0'?><Document>the January batch</Document>\n" * 200
OTHER = b"<?xml version='1.0'?><Document>another batch</Document>\n" * 200


# check_approval ----------------------------------------------------------------------------------


def refused(*args) -> str:
    with pytest.raises(ApprovalRefused) as error:
        check_approval(*args)
    return str(error.value)


def test_an_approval_that_restates_the_batch_passes():
    assert check_approval("Ines", 1234, 987_654, 1234, 987_654) is None
    assert check_approval("  Ines ", 0, 0, 0, 0) is None


@pytest.mark.parametrize("approver", ["", "   ", "\t\n"])
def test_a_blank_approver_is_refused_whatever_the_figures(approver):
    expected = "the approval names no approver: a second person must approve the batch by name"
    assert refused(approver, 1234, 987_654, 1234, 987_654) == expected
    assert refused(approver, 1, 1, 1234, 987_654) == expected


def test_a_count_that_differs():
    message = refused("Ines", 1235, 987_654, 1234, 987_654)
    assert message == (
        "approval refused, nothing released: the count you entered (1,235) does not match the batch; "
        "check the batch in the UI and approve again"
    )
    assert "1,234" not in message and "1234" not in message  # never the batch's figure
    assert "control sum" not in message


def test_a_control_sum_that_differs():
    message = refused("Ines", 1234, 300_000, 1234, 987_654)
    assert message == (
        "approval refused, nothing released: the control sum you entered (3000.00 EUR) does not match the batch; "
        "check the batch in the UI and approve again"
    )
    assert "9876.54" not in message and "987654" not in message and "987,654" not in message
    assert "count" not in message


def test_both_differ():
    message = refused("Ines", 7, 1, 1234, 987_654)
    assert message == (
        "approval refused, nothing released: the count you entered (7) and the control sum you entered "
        "(0.01 EUR) do not match the batch; check the batch in the UI and approve again"
    )
    assert "1,234" not in message and "9876.54" not in message


def test_one_cent_off_is_refused():
    assert "the control sum you entered (9876.53 EUR) does not match" in refused("Ines", 1234, 987_653, 1234, 987_654)


def test_a_control_sum_left_at_the_config_default_is_shown_as_what_it_is():
    """approve_payment_batch's config defaults control_sum_cents to -1 (ApprovalConfig): launched from
    the UI with an approver and a count only, the refusal quotes that -1 cent back."""
    message = refused("Ines", 1, -1, 1, 2000)
    assert message.startswith("approval refused, nothing released: the control sum you entered (")
    assert "(-0.01 EUR)" in message


# release_file ------------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_file_is_released_once_mode_0600_and_nothing_else_is_left(tmp_path):
    out_dir = tmp_path / "bank" / "out"  # created when missing
    path, created = release_file(DATA, out_dir, NAME)
    assert (path, created) == (out_dir / NAME, True)
    assert path.read_bytes() == DATA and mode(path) == 0o600
    assert os.listdir(out_dir) == [NAME]
    first = path.stat()

    again, created = release_file(DATA, out_dir, NAME)
    assert (again, created) == (path, False)
    assert path.read_bytes() == DATA and os.listdir(out_dir) == [NAME]
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (first.st_ino, first.st_mtime_ns)  # the same file

    with pytest.raises(ReleaseConflict) as error:
        release_file(OTHER, out_dir, NAME)
    assert str(error.value) == f"{out_dir / NAME} already exists with other contents: a month never releases two files"
    assert path.read_bytes() == DATA and mode(path) == 0o600
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    assert os.listdir(out_dir) == [NAME]  # no temporary file left behind, even after a refusal


def test_another_file_name_in_the_same_folder_is_another_release(tmp_path):
    release_file(DATA, tmp_path, NAME)
    path, created = release_file(OTHER, tmp_path, "FS-2024-02-deadbeef.xml")
    assert created and path.read_bytes() == OTHER
    assert sorted(os.listdir(tmp_path)) == [NAME, "FS-2024-02-deadbeef.xml"]


def _release_worker(worker: int, tasks, results, barrier) -> None:
    """Release what each task says as soon as the other worker is ready too."""
    while True:
        task = tasks.get()
        if task is None:
            return
        folder, data = task
        barrier.wait(timeout=30)
        try:
            path, created = release_file(data, Path(folder), NAME)
            results.put((worker, "created" if created else "exists", str(path)))
        except ReleaseConflict as exc:
            results.put((worker, "conflict", str(exc)))
        except Exception as exc:  # reported to the test, which fails on it
            results.put((worker, "error", repr(exc)))


@pytest.fixture(scope="module")
def racers():
    """Two worker processes (spawned, not forked) that release at the same moment."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results = context.Queue()
    queues = [context.Queue(), context.Queue()]
    workers = [
        context.Process(target=_release_worker, args=(i, queues[i], results, barrier), daemon=True) for i in range(2)
    ]
    for worker in workers:
        worker.start()

    def race(folder: Path, first: bytes, second: bytes) -> list[tuple[int, str, str]]:
        queues[0].put((str(folder), first))
        queues[1].put((str(folder), second))
        return sorted(results.get(timeout=60) for _ in range(2))

    yield race
    for queue in queues:
        queue.put(None)
    for worker in workers:
        worker.join(timeout=30)


def test_two_concurrent_releases_of_one_batch_make_one_file(tmp_path, racers):
    for attempt in range(20):
        folder = tmp_path / f"out-{attempt}"
        outcomes = racers(folder, DATA, DATA)
        assert sorted(outcome for _, outcome, _ in outcomes) == ["created", "exists"], outcomes
        assert {path for _, _, path in outcomes} == {str(folder / NAME)}
        assert os.listdir(folder) == [NAME]
        assert (folder / NAME).read_bytes() == DATA and mode(folder / NAME) == 0o600


def test_two_concurrent_releases_of_different_files_for_one_name_make_one_file(tmp_path, racers):
    for attempt in range(20):
        folder = tmp_path / f"out-{attempt}"
        outcomes = racers(folder, DATA, OTHER)
        assert sorted(outcome for _, outcome, _ in outcomes) == ["conflict", "created"], outcomes
        ((winner, _, _),) = [o for o in outcomes if o[1] == "created"]
        ((_, _, message),) = [o for o in outcomes if o[1] == "conflict"]
        assert message == f"{folder / NAME} already exists with other contents: a month never releases two files"
        assert os.listdir(folder) == [NAME]
        assert (folder / NAME).read_bytes() == (DATA, OTHER)[winner] and mode(folder / NAME) == 0o600


# The app database --------------------------------------------------------------------------------

JANUARY = Release(
    month="2024-01",
    batch_id="FS-2024-01-0a1b2c3d",
    file_name=NAME,
    file_sha256=sha256_of(DATA),
    payments=1,
    control_sum_cents=2000,
    approver="Ines",
    released_at="2024-02-02T10:15:00+00:00",
    released_by_run="run-1",
)


@pytest.fixture
def app_database(fresh_database):
    """A fresh database migrated to the newest revision; a cursor factory on it (autocommit)."""
    url = f"postgresql://{PG.user}:{PG.password}@{PG.host}:{PG.port}/{fresh_database}"
    upgrade(url)
    connection = psycopg2.connect(url)
    connection.autocommit = True
    yield connection
    connection.close()


def rows(connection, sql: str, params: tuple = ()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def held(connection) -> list[tuple]:
    return rows(
        connection,
        "SELECT month, batch_id, file_sha256, approver, status, payments_settled, payments_returned, returned_cents, "
        "status_updated_at IS NOT NULL FROM payment_releases ORDER BY month",
    )


def test_a_release_is_recorded_once_and_a_second_file_is_refused(app_database):
    with app_database.cursor() as cursor:
        assert record_release(cursor, JANUARY) == JANUARY
    assert held(app_database) == [("2024-01", JANUARY.batch_id, JANUARY.file_sha256, "Ines", "released", 0, 0, 0, False)]
    stored = rows(app_database, f"SELECT {', '.join(RELEASE_COLUMNS)} FROM payment_releases")
    assert [(*r[:7], r[7].isoformat(), r[8]) for r in stored] == [tuple(JANUARY.as_dict().values())]

    # The same file again (a re-run, another approver): the first release is what the database holds.
    again = Release(**{**JANUARY.as_dict(), "approver": "Omar", "released_at": "2024-02-03T08:00:00+00:00",
                       "released_by_run": "run-2"})
    with app_database.cursor() as cursor:
        assert record_release(cursor, again) == JANUARY
    assert held(app_database) == [("2024-01", JANUARY.batch_id, JANUARY.file_sha256, "Ines", "released", 0, 0, 0, False)]

    other = Release(**{**JANUARY.as_dict(), "batch_id": "FS-2024-01-ffffffff", "file_sha256": sha256_of(OTHER)})
    with app_database.cursor() as cursor, pytest.raises(ReleaseConflict) as error:
        record_release(cursor, other)
    assert str(error.value) == (
        f"2024-01: the application database holds another release ({JANUARY.batch_id}, sha256 "
        f"{JANUARY.file_sha256[:12]}…): a month never releases two files"
    )
    assert held(app_database) == [("2024-01", JANUARY.batch_id, JANUARY.file_sha256, "Ines", "released", 0, 0, 0, False)]


def test_a_release_is_never_rewritten_but_its_status_moves_on(app_database):
    with app_database.cursor() as cursor:
        record_release(cursor, JANUARY)
    for change in ("approver = 'Mallory'", f"file_sha256 = '{sha256_of(OTHER)}'", "control_sum_cents = 1",
                   "payments = 2", "batch_id = 'FS-2024-01-ffffffff'", "released_at = now()"):
        with app_database.cursor() as cursor, pytest.raises(psycopg2.errors.RaiseException) as error:
            cursor.execute(f"UPDATE payment_releases SET {change} WHERE month = '2024-01'")
        assert error.value.diag.message_primary == "the payment release of 2024-01 cannot change (UPDATE)", change
    with app_database.cursor() as cursor, pytest.raises(psycopg2.errors.RaiseException) as error:
        cursor.execute("DELETE FROM payment_releases WHERE month = '2024-01'")
    assert error.value.diag.message_primary == "the payment release of 2024-01 cannot change (DELETE)"
    assert held(app_database) == [("2024-01", JANUARY.batch_id, JANUARY.file_sha256, "Ines", "released", 0, 0, 0, False)]

    with app_database.cursor() as cursor:
        record_status(cursor, "2024-01", "partly returned", 0, 1, 2000)
    assert held(app_database) == [
        ("2024-01", JANUARY.batch_id, JANUARY.file_sha256, "Ines", "partly returned", 0, 1, 2000, True)
    ]
    with app_database.cursor() as cursor:
        record_status(cursor, "2024-01", "settled", 1, 0, 0)  # the table holds what it is told; the lifecycle is checked upstream
    assert held(app_database)[0][4:8] == ("settled", 1, 0, 0)


@pytest.mark.parametrize("change", ["file_name = 'FS-2024-01-ffffffff.xml'", "released_by_run = 'run-x'",
                                    "month = '2024-05'"])
def test_the_rest_of_a_release_is_never_rewritten_either(app_database, change):
    """"A release is never rewritten: only its status moves on" (migration 0004): its month, file
    name and run too."""
    with app_database.cursor() as cursor:
        record_release(cursor, JANUARY)
    with pytest.raises(psycopg2.errors.RaiseException) as error, app_database.cursor() as cursor:
        cursor.execute(f"UPDATE payment_releases SET {change} WHERE month = '2024-01'")
    assert error.value.diag.message_primary == "the payment release of 2024-01 cannot change (UPDATE)"


@pytest.mark.parametrize("status", ["draft", "returned", "bogus", ""])
def test_an_unknown_batch_status_is_refused(app_database, status):
    with app_database.cursor() as cursor:
        record_release(cursor, JANUARY)
    with app_database.cursor() as cursor, pytest.raises(psycopg2.errors.CheckViolation):
        record_status(cursor, "2024-01", status, 0, 0, 0)
    assert held(app_database)[0][4] == "released"


def test_an_empty_release_and_a_batch_id_used_twice_are_refused(app_database):
    empty = Release(**{**JANUARY.as_dict(), "payments": 0, "control_sum_cents": 0})
    with app_database.cursor() as cursor, pytest.raises(psycopg2.errors.CheckViolation):
        record_release(cursor, empty)
    with app_database.cursor() as cursor:
        record_release(cursor, JANUARY)
    february = Release(**{**JANUARY.as_dict(), "month": "2024-02"})  # January's batch id again
    with app_database.cursor() as cursor, pytest.raises(psycopg2.errors.UniqueViolation):
        record_release(cursor, february)
    assert [r[0] for r in held(app_database)] == ["2024-01"]

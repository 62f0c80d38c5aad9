"""Every kind of bad input gives a named error (file + problem) or an exactly counted quarantine row."""

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline_tests.conftest import step_failure_messages
from fairstream_pipeline_tests.landing_builders import utc

MONTH = "2026-10"
INGESTION = "group:ingestion"
DAY = "2026-10-03"
GOOD_EVENT = ("e1", "u1", "t1", "2026-10-03 10:00", 60_000)


@pytest.fixture
def good_month(landing):
    landing.subscriptions(MONTH, [("u1", "premium", "FR", 999), ("u2", "free", "DE", 0)])
    landing.ad_revenue(MONTH, [("DE", 250)])
    landing.events(DAY, [GOOD_EVENT])
    landing.close_days(MONTH)
    return landing


def failure_of(result) -> str:
    assert not result.success
    (message,) = step_failure_messages(result)
    return message


# Errors: the step fails, names the file and the problem, and writes nothing -------------------

def test_corrupt_parquet_file(good_month, materialize_month, tmp_path):
    (good_month.root / "listening_events" / f"date={DAY}" / "part-1.parquet").write_bytes(b"not parquet at all")
    message = failure_of(materialize_month(MONTH, selection=INGESTION))
    assert message.startswith(
        f"listening_events/date={DAY}/part-1.parquet: not a readable Parquet file ("
    )
    assert not Lake(tmp_path / "warehouse").exists("clean_plays", MONTH)
    assert not Lake(tmp_path / "warehouse").exists("play_quarantine", MONTH)


def test_truncated_parquet_file(good_month, materialize_month):
    path = good_month.root / "listening_events" / f"date={DAY}" / "part-0.parquet"
    path.write_bytes(path.read_bytes()[:-20])
    assert failure_of(materialize_month(MONTH, selection=INGESTION)).startswith(
        f"listening_events/date={DAY}/part-0.parquet: not a readable Parquet file ("
    )


def corrupt_the_middle(path) -> None:
    """Overwrite 64 bytes in the middle of the file: header, footer and row counts stay intact."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


def test_a_file_corrupted_in_the_middle_is_named_with_its_row_group_and_not_retried(good_month, materialize_month, tmp_path):
    rows = [(f"m{i}", "u1", f"t{i % 50}", "2026-10-03 12:00", 60_000 + i) for i in range(40_000)]
    path = good_month.events(DAY, rows, name="part-1.parquet")
    table = pq.read_table(path)
    pq.write_table(table, path, row_group_size=10_000)  # 4 row groups; the middle of the file is group 1 or 2
    corrupt_the_middle(path)
    assert pq.ParquetFile(path).metadata.num_rows == 40_000  # the footer still reads

    result = materialize_month(MONTH, selection=INGESTION)
    message = failure_of(result)
    assert message.startswith(f"listening_events/date={DAY}/part-1.parquet: corrupt Parquet data in row group ")
    assert " of 4 (rows " in message and "(DuckDB: " in message
    # A contract error: the step ran once, with no retry (reading the landing zone retries 3 times otherwise).
    assert [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"] == []
    assert not Lake(tmp_path / "warehouse").exists("clean_plays", MONTH)


def test_missing_required_event_column(good_month, materialize_month):
    table = pa.table({"event_id": ["e2"], "user_id": ["u1"], "track_id": ["t1"], "ms_played": [1]})
    good_month.event_table(DAY, table, name="part-1.parquet")
    assert failure_of(materialize_month(MONTH, selection=INGESTION)) == (
        f"listening_events/date={DAY}/part-1.parquet: missing required column 'played_at'"
    )


def test_wrong_event_column_type(good_month, materialize_month):
    table = pa.table(
        {
            "event_id": ["e2"],
            "user_id": ["u1"],
            "track_id": ["t1"],
            "played_at": pa.array([utc("2026-10-03 11:00")], pa.timestamp("ms", tz="UTC")),
            "ms_played": [61_000.5],
        }
    )
    good_month.event_table(DAY, table, name="part-1.parquet")
    assert failure_of(materialize_month(MONTH, selection=INGESTION)) == (
        f"listening_events/date={DAY}/part-1.parquet: column 'ms_played' has type double, expected int64"
    )


def test_integer_ids_are_a_type_error(landing, materialize_month):
    landing.subscriptions(MONTH, [])
    path = landing.root / "subscriptions" / f"month={MONTH}" / "part-0.parquet"
    pq.write_table(
        pa.table({"user_id": [1], "plan": ["premium"], "country": ["FR"], "net_cents": [999]}), path
    )
    assert failure_of(materialize_month(MONTH, selection="billed_users")) == (
        f"subscriptions/month={MONTH}/part-0.parquet: column 'user_id' has type int64, expected string"
    )


def test_user_listed_twice_in_subscriptions(landing, materialize_month):
    landing.subscriptions(
        MONTH, [("u1", "premium", "FR", 999), ("u2", "free", "FR", 0), ("u1", "family", "FR", 1499)]
    )
    assert failure_of(materialize_month(MONTH, selection="billed_users")) == (
        f"subscriptions/month={MONTH}/part-0.parquet: user_id 'u1' is listed 2 times (rows 0, 2)"
    )


def test_user_listed_in_two_subscription_files(landing, materialize_month):
    landing.subscriptions(MONTH, [("u1", "premium", "FR", 999)], name="part-0.parquet")
    landing.subscriptions(MONTH, [("u3", "free", "FR", 0), ("u1", "premium", "FR", 999)], name="part-1.parquet")
    assert failure_of(materialize_month(MONTH, selection="billed_users")) == (
        f"subscriptions/month={MONTH}: user_id 'u1' is listed 2 times "
        "(part-0.parquet row 0, part-1.parquet row 1)"
    )


def test_negative_net_cents(landing, materialize_month, tmp_path):
    landing.subscriptions(
        MONTH, [("u1", "premium", "FR", 999), ("u2", "premium", "FR", -999), ("u3", "premium", "FR", -1)]
    )
    assert failure_of(materialize_month(MONTH, selection="billed_users")) == (
        f"subscriptions/month={MONTH}/part-0.parquet row 1: user_id 'u2' has negative net_cents -999 "
        "(1 more problem of this kind)"
    )
    assert not Lake(tmp_path / "warehouse").exists("billed_users", MONTH)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ((None, "premium", "FR", 999), "row 0: user_id is null or empty"),
        (("u1", "free", "FR", 100), "row 0: user_id 'u1' is on the free plan but has net_cents 100 (expected 0)"),
        (("u1", "premium", "France", 999), "row 0: user_id 'u1' country 'France' is not an ISO 3166-1 alpha-2 code"),
        (("u1", "premium", "FR", None), "row 0: user_id 'u1' net_cents is null"),
    ],
)
def test_other_broken_subscription_rows(landing, materialize_month, row, problem):
    landing.subscriptions(MONTH, [row])
    assert failure_of(materialize_month(MONTH, selection="billed_users")) == (
        f"subscriptions/month={MONTH}/part-0.parquet {problem}"
    )


def test_missing_subscriptions(landing, materialize_month):
    assert failure_of(materialize_month(MONTH, selection="billed_users")) == (
        f"subscriptions/month={MONTH}: no .parquet files"
    )


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("FR", 100), ("FR", 5)], "ad_revenue/month=2026-10/part-0.parquet: country 'FR' is listed 2 times (rows 0, 1)"),
        ([("FR", -100)], "ad_revenue/month=2026-10/part-0.parquet row 0: country 'FR' has negative net_cents -100"),
        ([(None, 100)], "ad_revenue/month=2026-10/part-0.parquet row 0: country is null"),
    ],
)
def test_broken_ad_revenue(landing, materialize_month, rows, message):
    landing.ad_revenue(MONTH, rows)
    assert failure_of(materialize_month(MONTH, selection="ad_revenue")) == message


def test_incomplete_month(good_month, materialize_month):
    for day in ("2026-10-30", "2026-10-31"):
        (good_month.root / "listening_events" / f"date={day}" / "_SUCCESS").unlink()
    assert materialize_month(MONTH, selection="billed_users").success
    assert failure_of(materialize_month(MONTH, selection="key:clean_plays or key:play_quarantine")) == (
        "listening_events for 2026-10 is incomplete: 2 of 31 days have no _SUCCESS marker: "
        "2026-10-30, 2026-10-31"
    )


def test_an_incomplete_month_is_retried_then_fails_naming_the_missing_days(good_month, materialize_month, tmp_path):
    (good_month.root / "listening_events" / "date=2026-10-31" / "_SUCCESS").unlink()
    result = materialize_month(MONTH, selection=INGESTION)
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert [e.step_key for e in retries] == ["landing_month", "landing_month"]
    assert step_failure_messages(result) == [
        "listening_events for 2026-10 is incomplete: 1 of 31 days have no _SUCCESS marker: 2026-10-31 "
        "(gave up after 3 attempts: the collector has not finished the month; re-run the month once it has)"
    ]
    assert not Lake(tmp_path / "warehouse").exists("billed_users", MONTH)  # nothing downstream ran


def test_the_waiting_budget_is_read_when_the_step_runs(good_month, materialize_month, monkeypatch):
    """The definitions were loaded with 2 retries; the step reads the budget it runs with."""
    monkeypatch.setenv("FAIRSTREAM_LANDING_WAIT_RETRIES", "1")
    (good_month.root / "listening_events" / "date=2026-10-31" / "_SUCCESS").unlink()
    result = materialize_month(MONTH, selection="key:landing_month")
    assert [e.step_key for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"] == ["landing_month"]
    assert step_failure_messages(result)[0].endswith("(gave up after 2 attempts: the collector has not finished the month; re-run the month once it has)")


# Quarantine: the month goes on, each bad row is counted under exactly one reason ---------------

def quarantine_counts(result) -> dict[str, int]:
    (event,) = [
        e for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.to_user_string() == "play_quarantine"
    ]
    metadata = event.materialization.metadata
    return {k.removeprefix("quarantined_"): v.value for k, v in metadata.items() if k.startswith("quarantined_")}


NO_QUARANTINE = {"invalid_row": 0, "outside_partition": 0, "conflicting_duplicate": 0, "unknown_user": 0}


@pytest.mark.parametrize(
    ("bad_rows", "reason", "count"),
    [
        ([("e2", "u1", None, "2026-10-03 11:00", 60_000)], "invalid_row", 1),
        ([("e2", "u1", "t1", None, 60_000)], "invalid_row", 1),
        ([("e2", "", "t1", "2026-10-03 11:00", 60_000)], "invalid_row", 1),
        ([("e2", "u1", "t1", "2026-10-03 11:00", -5)], "invalid_row", 1),
        ([("e2", "u1", "t1", "2026-10-04 00:00", 60_000)], "outside_partition", 1),
        ([("e1", "u1", "t1", "2026-10-03 10:00", 60_001)], "conflicting_duplicate", 2),
        ([("e1", "u2", "t1", "2026-10-03 10:00", 60_000), ("e1", "u1", "t1", "2026-10-03 10:00", 60_000)],
         "conflicting_duplicate", 3),
        ([("e2", "nobody", "t1", "2026-10-03 11:00", 60_000)], "unknown_user", 1),
    ],
)
def test_each_quarantine_reason_is_counted(good_month, materialize_month, bad_rows, reason, count):
    good_month.events(DAY, bad_rows, name="part-1.parquet")
    result = materialize_month(MONTH, selection=INGESTION)
    assert result.success
    assert quarantine_counts(result) == {**NO_QUARANTINE, reason: count}


def test_exact_duplicates_are_dropped_and_counted(good_month, materialize_month):
    good_month.events(DAY, [GOOD_EVENT, GOOD_EVENT], name="part-1.parquet")
    result = materialize_month(MONTH, selection=INGESTION)
    meta = {
        e.materialization.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert meta["clean_plays"]["dagster/row_count"].value == 1
    assert meta["clean_plays"]["duplicates_dropped"].value == 2
    assert quarantine_counts(result) == NO_QUARANTINE


def test_naive_timestamps_are_read_as_utc(good_month, materialize_month):
    table = pa.table(
        {
            "event_id": ["e2", "e3"],
            "user_id": ["u1", "u1"],
            "track_id": ["t1", "t1"],
            "played_at": pa.array([utc("2026-10-03 23:30").replace(tzinfo=None), utc("2026-10-04 00:30").replace(tzinfo=None)], pa.timestamp("us")),
            "ms_played": pa.array([60_000, 60_000], pa.int32()),
            "client_version": ["1.2", "1.2"],  # extra columns are ignored
        }
    )
    good_month.event_table(DAY, table, name="part-1.parquet")
    result = materialize_month(MONTH, selection=INGESTION)
    assert result.success
    assert quarantine_counts(result) == {**NO_QUARANTINE, "outside_partition": 1}


def test_files_that_are_not_data_are_ignored(good_month, materialize_month):
    folder = good_month.root / "listening_events" / f"date={DAY}"
    (folder / ".part-9.parquet.tmp").write_bytes(b"half written")
    (folder / "_part-9.parquet").write_bytes(b"ignored by convention")
    (folder / "README.txt").write_text("not data")
    result = materialize_month(MONTH, selection=INGESTION)
    assert result.success
    assert quarantine_counts(result) == NO_QUARANTINE


def test_only_a_file_that_does_not_read_turns_a_duckdb_error_into_a_contract_error(tmp_path):
    from fairstream_pipeline.lib.ingestion.monthly_tables import read_failure
    from fairstream_pipeline.lib.ingestion.landing_files import DataFile

    def data_file(name: str, corrupt: bool) -> DataFile:
        path = tmp_path / name
        pq.write_table(pa.table({"event_id": [f"e{i}" for i in range(20_000)]}), path, row_group_size=5_000)
        if corrupt:
            corrupt_the_middle(path)
        return DataFile(path, f"listening_events/date={DAY}/{name}", 20_000, path.stat().st_size, 0)

    good, bad = data_file("good.parquet", False), data_file("bad.parquet", True)
    # DuckDB reports some damaged bodies with its base class, which used to be retried as transient.
    error = read_failure(duckdb.Error("Parquet file is likely corrupted, dictionary offset out of range"),
                         [good, bad], f"listening_events/date={DAY}")
    assert str(error).startswith(f"listening_events/date={DAY}/bad.parquet: corrupt Parquet data in row group ")
    assert str(error).endswith("(DuckDB: Parquet file is likely corrupted, dictionary offset out of range)")
    # Files that read in full: not the delivery's fault, the original error stays (and is retried).
    assert read_failure(duckdb.Error("something else"), [good], "x") is None
    assert read_failure(duckdb.OutOfMemoryException("out of memory"), [good, bad], "x") is None

"""Issue 24: the statement emails built a batch of payees at a time, and the app database loaded with
COPY, against real PostgreSQL: the same bytes, the same rows, NULL and "" kept apart, idempotent."""

from __future__ import annotations

import gc
import multiprocessing
import weakref
from multiprocessing import resource_tracker
from pathlib import Path
from datetime import UTC, datetime

import duckdb
import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fairstream_pipeline.lib.app_db import store
from fairstream_pipeline.lib.app_db.schema import upgrade
from fairstream_pipeline.lib.app_db.store import (
    OUTBOX_COLUMNS,
    STATEMENT_COLUMNS,
    ClosedStatementsDiffer,
    copy_new_rows,
    enqueue_messages,
    publish_closed_statements,
)
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.notifications import statement_build
from fairstream_pipeline.lib.notifications.closed_statements import (
    publication_sources,
    rendered_message_batches,
    statement_rows,
)
from fairstream_pipeline.lib.notifications.message import Message
from fairstream_pipeline.lib.notifications.statement_build import (
    BuiltMessages,
    RenderedBatch,
    build_messages,
    message_table,
    render_statement_batches,
    statement_of,
    write_messages,
)
from fairstream_pipeline.lib.notifications.statement_email import render_statement
from fairstream_pipeline_tests.postgres import PG

MONTH = "2024-02"
CLOSED_AT = "2024-03-01T09:00:00.123456+00:00"
HASH = "hash-1"
DOMAIN = "statements.example"
# Names a CSV could break: a comma, quotes and a line break; NULL; an empty string; a lone "\." (the
# end of COPY data, unquoted); non-ASCII.
TRICKY_NAME = 'Ana, "the" Lua\nsecond line'


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    """A month closed under rules v4: five real payees and __suspense__ (published, never emailed)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        """CREATE TABLE payee_statements AS SELECT * FROM (VALUES
               ('A', 100::BIGINT, 1500::BIGINT, -20::BIGINT, 1400::BIGINT, 1580::BIGINT, 0::BIGINT, NULL::VARCHAR,
                1500::BIGINT, 'artist_centric'),
               ('B', 3000, 0, 0, 0, 0, 3000, 'no_payment_details', 0, 'artist_centric'),
               ('C', 0, 7, 0, 7, 0, 7, NULL, 7, 'user_centric'),
               ('D', 0, 2500, 0, 2400, 2500, 0, NULL, 2450, 'pro_rata'),
               ('E', 5, 0, 0, 0, 0, 5, NULL, 0, 'user_centric'),
               ('__suspense__', 50, 45, 0, 40, 0, 95, NULL, 45, 'artist_centric'))
           t(payee_id, opening_balance_cents, earned_cents, adjustment_cents, pro_rata_cents, paid_cents,
             closing_balance_cents, hold_reason, acps_cents, payout_model)"""
    )
    con.execute(
        """CREATE TABLE closed_earnings AS SELECT * FROM (VALUES
               ('FR', 'paid', 'A', 1000::BIGINT, 900::BIGINT, 1100::BIGINT), ('DE', 'free', 'A', 500, 500, 400),
               ('SE', 'premium', 'C', 7, 7, 7), ('FR', 'paid', 'D', 2500, 2400, 2450),
               ('FR', 'paid', '__suspense__', 40, 40, 45), ('FR', 'free', 'NOSTATEMENT', 7, 7, 9))
           t(country, tier, payee_id, uc_cents, pr_cents, acps_cents)"""
    )
    con.execute(
        """CREATE TABLE payee_adjustments AS SELECT * FROM (VALUES
               ('A', '2024-01', -30::BIGINT, 'late_data'), ('A', '2024-01', 10, 'returned_payment'))
           t(payee_id, source_month, cents, reason)"""
    )
    con.execute(
        "CREATE TABLE payee_directory (payee_id VARCHAR, name VARCHAR, email VARCHAR)"
    )
    con.executemany(
        "INSERT INTO payee_directory VALUES (?, ?, ?)",
        [("A", TRICKY_NAME, "ana@example.org"), ("C", "", ""), ("D", "Zoë Ångström 李", "zoe@example.org"),
         ("E", "\\.", " e@example.org ")],
    )  # B has no directory entry: NULL name and email
    return con


def _build(con, tmp_path, name: str, batch_size: int | None = None):
    folder = tmp_path / name
    folder.mkdir()
    built = write_messages(render_statement_batches(con, MONTH, 1000, DOMAIN, batch_size), folder / "m.parquet", folder)
    return built, folder


def _csvs(folder) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted((folder / "statements").iterdir())}


def test_a_month_built_two_payees_at_a_time_has_the_rows_of_one_batch(con, tmp_path):
    one, one_folder = _build(con, tmp_path, "one")
    two, two_folder = _build(con, tmp_path, "two", batch_size=2)
    rows = pq.read_table(one_folder / "m.parquet").to_pylist()
    assert [r["payee_id"] for r in rows] == ["A", "B", "C", "D", "E"]
    assert [r["status"] for r in rows] == ["pending", "no_address", "no_address", "pending", "pending"]
    assert pq.read_table(two_folder / "m.parquet").to_pylist() == rows
    assert pq.read_table(two_folder / "m.parquet").schema == pq.read_table(one_folder / "m.parquet").schema
    assert [pq.ParquetFile(f / "m.parquet").metadata.num_row_groups for f in (one_folder, two_folder)] == [1, 3]
    assert _csvs(two_folder) == _csvs(one_folder) and len(_csvs(one_folder)) == 5
    assert (one.rows, one.no_address, one.to_send, one.example.payee_id) == (5, 2, 3, "A")
    assert (two.rows, two.no_address, two.to_send, two.example) == (5, 2, 3, one.example)


def test_the_batch_size_is_the_module_constant(con, monkeypatch):
    monkeypatch.setattr(statement_build, "BATCH_PAYEES", 2)
    batches = list(render_statement_batches(con, MONTH, 1000, DOMAIN))
    assert [[m.payee_id for m in batch] for batch in batches] == [["A", "B"], ["C", "D"], ["E"]]


def test_a_month_of_one_batch_is_byte_for_byte_what_one_write_table_wrote(con, tmp_path):
    """The Parquet file before issue 24: every message in one table, one ``pq.write_table``."""
    messages = [render_statement(statement_of(MONTH, row), 1000, DOMAIN) for row in statement_rows(con)]
    pq.write_table(message_table(messages), tmp_path / "before.parquet", compression="zstd")
    _, folder = _build(con, tmp_path, "batched")
    assert (folder / "m.parquet").read_bytes() == (tmp_path / "before.parquet").read_bytes()


def test_an_empty_month_is_byte_for_byte_what_one_write_table_wrote(tmp_path):
    pq.write_table(message_table([]), tmp_path / "before.parquet", compression="zstd")
    built = write_messages(iter([]), tmp_path / "after.parquet", tmp_path)
    assert (tmp_path / "after.parquet").read_bytes() == (tmp_path / "before.parquet").read_bytes()
    assert (built.rows, built.no_address, built.example) == (0, 0, None)
    assert pq.read_table(tmp_path / "after.parquet").num_rows == 0


def test_a_batch_is_dropped_before_the_next_is_rendered(con, tmp_path):
    """Memory holds one batch: when the next is asked for, before it is rendered, the messages of
    the last one are gone (but the example, the first message with an address)."""
    alive_when_next_asked = []

    def batches():
        for batch in render_statement_batches(con, MONTH, 1000, DOMAIN, batch_size=2):
            refs = [weakref.ref(m) for m in batch]
            yield batch
            del batch
            gc.collect()
            alive_when_next_asked.append([r().payee_id for r in refs if r() is not None])

    built = write_messages(batches(), tmp_path / "m.parquet", tmp_path)
    assert built.example.payee_id == "A"
    assert alive_when_next_asked == [["A"], [], []]


def _child_pids() -> set[int]:
    """This process's child processes, as the OS sees them, but multiprocessing's resource tracker
    (one per interpreter, started with the first pool, kept for the next)."""
    pids = set()
    for children in Path("/proc/self/task").glob("*/children"):
        pids.update(int(pid) for pid in children.read_text().split())
    return pids - {resource_tracker._resource_tracker._pid}


def _build_with(con, tmp_path, name: str, workers: int, batch_size: int | None = 2):
    folder = tmp_path / name
    folder.mkdir()
    built = build_messages(con, MONTH, 1000, DOMAIN, folder / "m.parquet", folder, batch_size, workers)
    return built, folder


def test_two_workers_write_the_bytes_one_writes(con, tmp_path):
    """Batches rendered by two processes: the same Parquet bytes (row groups in batch order), the
    same CSV files, the same counts and example as rendered in this process; no process left."""
    before = _child_pids()
    today, today_folder = _build(con, tmp_path, "today", batch_size=2)
    one, one_folder = _build_with(con, tmp_path, "one", workers=1)
    two, two_folder = _build_with(con, tmp_path, "two", workers=2)
    assert pq.ParquetFile(two_folder / "m.parquet").metadata.num_row_groups == 3
    parquet = (today_folder / "m.parquet").read_bytes()
    assert (one_folder / "m.parquet").read_bytes() == parquet
    assert (two_folder / "m.parquet").read_bytes() == parquet
    assert _csvs(two_folder) == _csvs(one_folder) == _csvs(today_folder) and len(_csvs(two_folder)) == 5
    assert two == one == today and (two.rows, two.no_address, two.example.payee_id) == (5, 2, "A")
    assert multiprocessing.active_children() == [] and _child_pids() == before


def test_workers_keep_the_first_message_with_an_address_as_the_example(con, tmp_path):
    """A and B make the first batch; with A's email gone, the example is D, of the second."""
    con.execute("UPDATE payee_directory SET email = NULL WHERE payee_id = 'A'")
    one, _ = _build_with(con, tmp_path, "one", workers=1)
    two, _ = _build_with(con, tmp_path, "two", workers=2)
    assert two == one and (two.rows, two.no_address, two.example.payee_id) == (5, 3, "D")


def test_a_month_of_one_batch_starts_no_worker(con, tmp_path, monkeypatch):
    def no_pool(*args, **kwargs):
        raise AssertionError("one batch is rendered in this process")

    monkeypatch.setattr(statement_build, "ProcessPoolExecutor", no_pool)
    built, folder = _build_with(con, tmp_path, "one_batch", workers=2, batch_size=None)
    _, today_folder = _build(con, tmp_path, "today")
    assert (folder / "m.parquet").read_bytes() == (today_folder / "m.parquet").read_bytes()
    assert built.rows == 5 and _csvs(folder) == _csvs(today_folder)


def test_the_workers_default_to_the_module_constant_then_one_per_core(monkeypatch):
    monkeypatch.setattr(statement_build.os, "cpu_count", lambda: 6)
    assert statement_build.worker_count() == 6
    monkeypatch.setattr(statement_build, "WORKERS", 3)
    assert statement_build.worker_count() == 3
    assert statement_build.worker_count(1) == 1
    with pytest.raises(ValueError, match="at least 1"):
        statement_build.worker_count(0)


def test_an_error_in_a_worker_is_raised_here_and_the_pool_is_gone(con, tmp_path):
    """F, of the third batch, has a paying model ``Statement`` refuses: the build raises what
    rendering it in this process raises, and leaves no worker behind."""
    con.execute("INSERT INTO payee_statements VALUES ('F', 0, 1, 0, 1, 0, 1, NULL, 1, 'bogus')")
    before = _child_pids()
    with pytest.raises(ValueError) as in_process:
        _build_with(con, tmp_path, "one", workers=1)
    with pytest.raises(ValueError) as in_worker:
        _build_with(con, tmp_path, "two", workers=2)
    assert str(in_worker.value) == str(in_process.value) == (
        "payout_model must be one of user_centric, pro_rata, artist_centric, got 'bogus'"
    )
    assert type(in_worker.value) is ValueError
    assert type(in_worker.value.__cause__).__name__ == "_RemoteTraceback"  # raised in a worker
    assert multiprocessing.active_children() == [] and _child_pids() == before


def _connect(database: str):
    return psycopg2.connect(host=PG.host, port=PG.port, user=PG.user, password=PG.password, dbname=database)


@pytest.fixture
def app_db(fresh_database) -> str:
    upgrade(f"postgresql://{PG.user}:{PG.password}@{PG.host}:{PG.port}/{fresh_database}")
    return fresh_database


def _publish(database: str, con, statements_hash: str = HASH, sources=None) -> dict:
    sources = sources or publication_sources(con, MONTH, CLOSED_AT, statements_hash, "v4")
    with _connect(database) as connection, connection.cursor() as cursor:
        return publish_closed_statements(cursor, MONTH, statements_hash, *sources)


def _rows(database: str, sql: str) -> list[tuple]:
    with _connect(database) as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def test_statements_copied_into_postgres_keep_null_empty_strings_and_every_character(con, app_db):
    counts = _publish(app_db, con)
    assert counts == {"statements": 6, "lines": 5, "adjustments": 2, "already_published": 0, "replaced_drafts": 0}
    closed_at = datetime(2024, 3, 1, 9, 0, 0, 123456, tzinfo=UTC)
    assert _rows(app_db, f"SELECT {', '.join(STATEMENT_COLUMNS)} FROM statements ORDER BY payee_id") == [
        (MONTH, "A", TRICKY_NAME, "ana@example.org", 100, 1500, -20, 1400, 1580, 0, "v4", closed_at, HASH, None, 1500,
         "artist_centric"),
        (MONTH, "B", None, None, 3000, 0, 0, 0, 0, 3000, "v4", closed_at, HASH, "no_payment_details", 0,
         "artist_centric"),
        (MONTH, "C", "", "", 0, 7, 0, 7, 0, 7, "v4", closed_at, HASH, None, 7, "user_centric"),
        (MONTH, "D", "Zoë Ångström 李", "zoe@example.org", 0, 2500, 0, 2400, 2500, 0, "v4", closed_at, HASH, None, 2450,
         "pro_rata"),
        (MONTH, "E", "\\.", " e@example.org ", 5, 0, 0, 0, 0, 5, "v4", closed_at, HASH, None, 0, "user_centric"),
        (MONTH, "__suspense__", None, None, 50, 45, 0, 40, 0, 95, "v4", closed_at, HASH, None, 45, "artist_centric"),
    ]
    nulls = "SELECT payee_name IS NULL, email IS NULL FROM statements WHERE payee_id IN ('B', 'C') ORDER BY 1"
    assert _rows(app_db, nulls) == [(False, False), (True, True)]
    assert _rows(app_db, "SELECT * FROM statement_lines ORDER BY payee_id, country, tier") == [
        (MONTH, "A", "DE", "free", 500, 500, 400), (MONTH, "A", "FR", "paid", 1000, 900, 1100),
        (MONTH, "C", "SE", "premium", 7, 7, 7), (MONTH, "D", "FR", "paid", 2500, 2400, 2450),
        (MONTH, "__suspense__", "FR", "paid", 40, 40, 45),
    ]
    assert _rows(app_db, "SELECT * FROM statement_adjustments ORDER BY reason") == [
        (MONTH, "A", "2024-01", -30, "late data for 2024-01"),
        (MONTH, "A", "2024-01", 10, "payment for 2024-01 returned by the bank, credited back"),
    ]


def test_publishing_twice_writes_nothing_and_reads_nothing_the_second_time(con, app_db):
    assert _publish(app_db, con)["statements"] == 6

    def unread():
        raise AssertionError("an already published month is not read again")

    assert _publish(app_db, con, sources=(unread, unread, unread)) == {
        "statements": 0, "lines": 0, "adjustments": 0, "already_published": 6, "replaced_drafts": 0
    }
    assert _rows(app_db, "SELECT count(*) FROM statements") == [(6,)]
    with pytest.raises(ClosedStatementsDiffer, match="already published as closed with statements hash-1, not hash-2"):
        _publish(app_db, con, statements_hash="hash-2", sources=(unread, unread, unread))


def test_copy_inserts_only_the_new_rows_and_counts_what_it_read(con, app_db):
    """Two publishers of one close race harmlessly: rows already there are skipped (ON CONFLICT)."""
    statements, lines, _ = publication_sources(con, MONTH, CLOSED_AT, HASH, "v4")
    with _connect(app_db) as connection, connection.cursor() as cursor:
        first = copy_new_rows(cursor, "statements", STATEMENT_COLUMNS, "month, payee_id", statements())
        second = copy_new_rows(cursor, "statements", STATEMENT_COLUMNS, "month, payee_id", statements())
    assert (first.read, first.inserted, second.read, second.inserted) == (6, 6, 6, 0)
    assert _rows(app_db, "SELECT count(*) FROM statements") == [(6,)]


def test_draft_rows_of_the_month_are_replaced(con, app_db):
    with _connect(app_db) as connection, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO statements (month, payee_id, opening_balance_cents, earned_cents, pro_rata_cents, paid_cents, "
            "closing_balance_cents, rules_version) "
            "VALUES (%s, 'A', 0, 1, 1, 0, 1, 'v1'), (%s, 'OLD', 0, 2, 2, 0, 2, 'v1')",
            (MONTH, MONTH),
        )
        cursor.execute("INSERT INTO statement_lines VALUES (%s, 'OLD', 'FR', 'paid', 2, 2, 2)", (MONTH,))
    assert _publish(app_db, con)["replaced_drafts"] == 2
    assert _rows(app_db, "SELECT payee_id, earned_cents FROM statements WHERE payee_id IN ('A', 'OLD')") == [("A", 1500)]
    assert _rows(app_db, "SELECT count(*) FROM statement_lines WHERE payee_id = 'OLD'") == [(0,)]


def _spy_copies(monkeypatch) -> list[tuple[str, bool]]:
    calls = []
    real = store.copy_new_rows

    def spy(cursor, table, columns, key, batches, on_conflict=True):
        calls.append((table, on_conflict))
        return real(cursor, table, columns, key, batches, on_conflict=on_conflict)

    monkeypatch.setattr(store, "copy_new_rows", spy)
    return calls


def test_a_first_publication_copies_lines_and_adjustments_without_on_conflict(con, app_db, monkeypatch):
    """No statement of the month was there (a draft's are deleted, and its lines with it): every
    statement is new, so no line or adjustment can be there, and they are copied straight in."""
    with _connect(app_db) as connection, connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO statements (month, payee_id, opening_balance_cents, earned_cents, pro_rata_cents, paid_cents, "
            "closing_balance_cents, rules_version) VALUES (%s, 'A', 0, 1, 1, 0, 1, 'v1')",
            (MONTH,),
        )
        cursor.execute("INSERT INTO statement_lines VALUES (%s, 'A', 'FR', 'paid', 1, 1, 1)", (MONTH,))
    calls = _spy_copies(monkeypatch)
    assert _publish(app_db, con) == {
        "statements": 6, "lines": 5, "adjustments": 2, "already_published": 0, "replaced_drafts": 1
    }
    assert calls == [("statements", True), ("statement_lines", False), ("statement_adjustments", False)]
    assert _rows(app_db, "SELECT uc_cents FROM statement_lines WHERE payee_id = 'A' AND country = 'FR'") == [(1000,)]


def test_a_publication_racing_another_keeps_on_conflict(con, app_db, monkeypatch):
    """Another publisher of the same close commits A's statement, lines and adjustments after this
    one checked the month was not published: A's rows are skipped, the others inserted."""
    statements, lines, adjustments = publication_sources(con, MONTH, CLOSED_AT, HASH, "v4")

    def racing_statements():
        with _connect(app_db) as connection, connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO statements ({', '.join(STATEMENT_COLUMNS)}) VALUES "
                "(%s, 'A', 'Ana', 'ana@example.org', 100, 1500, -20, 1400, 1580, 0, 'v4', %s, %s, NULL, 1500, "
                "'artist_centric')",
                (MONTH, CLOSED_AT, HASH),
            )
            cursor.execute(
                "INSERT INTO statement_lines VALUES (%s, 'A', 'DE', 'free', 500, 500, 400), "
                "(%s, 'A', 'FR', 'paid', 1000, 900, 1100)",
                (MONTH, MONTH),
            )
            cursor.execute(
                "INSERT INTO statement_adjustments SELECT month, payee_id, source_month, cents, reason "
                "FROM (VALUES (%s, 'A', '2024-01', -30::BIGINT, 'late data for 2024-01'), "
                "(%s, 'A', '2024-01', 10, 'payment for 2024-01 returned by the bank, credited back')) "
                "t(month, payee_id, source_month, cents, reason)",
                (MONTH, MONTH),
            )
        return statements()

    calls = _spy_copies(monkeypatch)
    assert _publish(app_db, con, sources=(racing_statements, lines, adjustments)) == {
        "statements": 5, "lines": 3, "adjustments": 0, "already_published": 0, "replaced_drafts": 0
    }
    assert calls == [("statements", True), ("statement_lines", True), ("statement_adjustments", True)]
    assert _rows(app_db, "SELECT count(*) FROM statements") == [(6,)]
    assert _rows(app_db, "SELECT count(*) FROM statement_lines") == [(5,)]
    assert _rows(app_db, "SELECT count(*) FROM statement_adjustments") == [(2,)]


def test_rows_in_another_column_order_are_refused_and_nothing_is_written(con, app_db):
    swapped = pa.table({"payee_id": ["A"], "month": [MONTH]}).to_batches()
    with pytest.raises(ValueError, match=r"columns \['payee_id', 'month'\], expected \['month', 'payee_id'"):
        _publish(app_db, con, sources=(lambda: swapped, lambda: [], lambda: []))
    assert _rows(app_db, "SELECT count(*) FROM statements") == [(0,)]


def _messages() -> list[Message]:
    """Bodies with line breaks, quotes, commas, a lone "\\." line and a CR LF; NULL and empty strings."""
    tricky = "Hello,\n\\.\n\"quoted\", and, commas\r\nZoë 李\n"
    return [
        Message(MONTH, "A", "monthly_statement", "ana@example.org", 'Your "statement", Ana', tricky, f"<p>{tricky}</p>",
                "a.csv", "month,payee_id\n2024-02,A\n", "<m.A@x>"),
        Message(MONTH, "B", "monthly_statement", None, "", "", "", "b.csv", "", "<m.B@x>"),
        Message(MONTH, "C", "monthly_statement", " c@example.org ", "\\.", "\n", "\r\n", "c.csv", ",", "<m.C@x>"),
    ]


def test_messages_go_from_the_lake_to_the_outbox_exactly_and_once(app_db, tmp_path):
    lake = Lake(tmp_path / "warehouse")
    messages = _messages()
    with lake.write_partition("statement_notifications", MONTH) as out:
        write_messages([messages[:2], messages[2:]], out.file(), out.staging_dir)
    query = f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM notification_outbox ORDER BY id"
    with _connect(app_db) as connection, connection.cursor() as cursor:
        assert enqueue_messages(cursor, rendered_message_batches(lake, MONTH, batch_rows=2)) == 3
    assert _rows(app_db, query) == [m.as_row() for m in messages]
    assert _rows(app_db, "SELECT payee_id FROM notification_outbox WHERE recipient IS NULL") == [("B",)]
    assert _rows(app_db, "SELECT payee_id FROM notification_outbox WHERE subject = '' AND body_html = ''") == [("B",)]

    with _connect(app_db) as connection, connection.cursor() as cursor:
        cursor.execute("UPDATE notification_outbox SET status = 'sent' WHERE payee_id = 'A'")
        assert enqueue_messages(cursor, rendered_message_batches(lake, MONTH)) == 0
    assert _rows(app_db, "SELECT payee_id, status FROM notification_outbox ORDER BY id") == [
        ("A", "sent"), ("B", "no_address"), ("C", "pending")
    ]


def test_the_built_counts_add_up_over_batches(tmp_path):
    built = BuiltMessages()
    for messages in (_messages()[1:2], _messages()):
        built.add(RenderedBatch.written(messages, tmp_path))
    assert (built.rows, built.no_address, built.to_send, built.example.payee_id) == (4, 2, 2, "A")

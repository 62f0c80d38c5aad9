"""The month's statement emails, built a batch of payees at a time: each batch is rendered, appended
to the month's Parquet file, its CSV files written, and dropped, so memory holds one batch of
messages, never the month's.

A month of at most ``BATCH_PAYEES`` payees is one batch: its Parquet file is byte for byte the one
``pq.write_table`` writes of the whole table (one row group). A larger month has one row group per
batch, with the same rows in the same order.

``build_messages`` renders the batches of a month of more than one batch in a pool of worker
processes (``WORKERS``, one per core by default): this process reads each batch of statement rows
from DuckDB and sends it to a worker, which renders it, writes its CSV files and sends back its
lake table; the tables are appended to the Parquet file in batch order, so the files are the same
whatever the number of workers. At most ``workers + 1`` batches are in flight.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from fairstream_pipeline.lib.app_db.store import OUTBOX_COLUMNS
from fairstream_pipeline.lib.notifications.closed_statements import statement_row_batches
from fairstream_pipeline.lib.notifications.message import Message
from fairstream_pipeline.lib.notifications.statement_email import Statement, render_statement, write_statement_csvs

BATCH_PAYEES = 20_000  # payees rendered at a time: about 60 MB of messages
MESSAGE_SCHEMA = pa.schema([(name, pa.string()) for name in OUTBOX_COLUMNS])  # the lake table: the outbox's columns
PARQUET_OPTIONS = {"compression": "zstd"}
# Worker processes rendering a month of more than one batch: None is one per core (os.cpu_count());
# 1 renders in this process. Workers are spawned (not forked: this process holds a DuckDB
# connection and Dagster's threads).
WORKERS: int | None = None
START_METHOD = "spawn"


def statement_of(month: str, row: tuple) -> Statement:
    """The ``Statement`` of one row of ``closed_statements.statement_rows``."""
    payee, name, email, *amounts, lines, adjustment, adjustments, hold_reason = row
    return Statement(
        month, payee, name, email, *amounts,
        lines=tuple(tuple(line) for line in lines),
        adjustment_cents=adjustment,
        adjustments=tuple(tuple(a) for a in adjustments),
        hold_reason=hold_reason,
    )


def render_statement_batches(
    con: duckdb.DuckDBPyConnection, month: str, threshold_cents: int, domain: str, batch_size: int | None = None
) -> Iterator[list[Message]]:
    """The month's statement emails, by payee, in lists of at most ``batch_size`` (``BATCH_PAYEES``)."""
    for rows in statement_row_batches(con, batch_size or BATCH_PAYEES):
        yield [render_statement(statement_of(month, row), threshold_cents, domain) for row in rows]


def message_table(messages: list[Message]) -> pa.Table:
    """Messages as the lake table: their outbox rows, every column a string."""
    columns = list(zip(*[m.as_row() for m in messages])) if messages else [[] for _ in OUTBOX_COLUMNS]
    return pa.table({name: pa.array(values, pa.string()) for name, values in zip(OUTBOX_COLUMNS, columns)})


@dataclass
class BuiltMessages:
    """What was written: the message count, those without an address, the first with one."""

    rows: int = 0
    no_address: int = 0
    example: Message | None = None

    @property
    def to_send(self) -> int:
        return self.rows - self.no_address

    def count(self, messages: list[Message]) -> None:
        self.add(RenderedBatch.of(messages, pa.table({})))

    def add(self, batch: "RenderedBatch") -> None:
        """Count a batch rendered after those counted so far."""
        self.rows += batch.rows
        self.no_address += batch.no_address
        if self.example is None:
            self.example = batch.example


def write_messages(batches: Iterable[list[Message]], parquet_path: Path, csv_folder: Path) -> BuiltMessages:
    """Append each batch of messages to the Parquet file ``parquet_path`` (a row group each) and
    write their CSV files in ``csv_folder/statements/``; one batch is in memory at a time."""
    built = BuiltMessages()
    with pq.ParquetWriter(parquet_path, MESSAGE_SCHEMA, **PARQUET_OPTIONS) as writer:
        for messages in batches:
            table = message_table(messages)
            writer.write_table(table)
            write_statement_csvs(messages, csv_folder)
            built.count(messages)
            del messages, table  # dropped before the next batch is rendered
        if not built.rows:  # as pq.write_table writes an empty table: one empty row group
            writer.write_table(message_table([]))
    return built


@dataclass(frozen=True)
class RenderedBatch:
    """A rendered batch as a worker sends it back: its lake table (pickled as Arrow IPC) and the
    counts of ``BuiltMessages``."""

    table: pa.Table
    rows: int
    no_address: int
    example: Message | None  # the batch's first message with an address

    @classmethod
    def of(cls, messages: list[Message], table: pa.Table) -> "RenderedBatch":
        return cls(
            table,
            len(messages),
            sum(1 for m in messages if m.recipient is None),
            next((m for m in messages if m.recipient), None),
        )


@dataclass(frozen=True)
class RenderJob:
    """What a worker needs besides a batch's rows: all picklable."""

    month: str
    threshold_cents: int
    domain: str
    csv_folder: str


def render_batch(job: RenderJob, rows: list[tuple]) -> RenderedBatch:
    """Render a batch of ``closed_statements.statement_rows``, write its CSV files in
    ``job.csv_folder/statements/``, and return its lake table and counts (runs in a worker)."""
    messages = [render_statement(statement_of(job.month, row), job.threshold_cents, job.domain) for row in rows]
    write_statement_csvs(messages, Path(job.csv_folder))
    return RenderedBatch.of(messages, message_table(messages))


def worker_count(workers: int | None = None) -> int:
    """``workers``, else ``WORKERS``, else one per core."""
    count = workers if workers is not None else WORKERS if WORKERS is not None else os.cpu_count() or 1
    if count < 1:
        raise ValueError(f"workers must be at least 1, got {count}")
    return count


def build_messages(
    con: duckdb.DuckDBPyConnection,
    month: str,
    threshold_cents: int,
    domain: str,
    parquet_path: Path,
    csv_folder: Path,
    batch_size: int | None = None,
    workers: int | None = None,
) -> BuiltMessages:
    """The month's statement emails written as ``write_messages(render_statement_batches(...))``
    writes them (the same bytes), the batches rendered by ``workers`` processes (``worker_count``).

    One worker, or a month of one batch, renders in this process. Otherwise this process reads
    the batches of rows from ``con`` and appends the tables the workers send back, in batch order,
    keeping at most ``workers + 1`` batches in flight. An error in a worker is raised here (same
    type and message); the pool is shut down, its pending batches cancelled, before this returns
    or raises."""
    workers = worker_count(workers)
    if workers == 1:
        batches = render_statement_batches(con, month, threshold_cents, domain, batch_size)
        return write_messages(batches, parquet_path, csv_folder)
    job = RenderJob(month, threshold_cents, domain, str(csv_folder))
    row_batches = statement_row_batches(con, batch_size or BATCH_PAYEES)
    first = next(row_batches, None)
    second = next(row_batches, None) if first is not None else None
    if second is None:  # one batch (or none): nothing to share out, no processes to start
        batches = [] if first is None else [first]
        return write_messages(
            ([render_statement(statement_of(month, row), threshold_cents, domain) for row in rows] for rows in batches),
            parquet_path,
            csv_folder,
        )
    first_two = [first, second]
    del first, second  # each batch of rows is dropped once sent to its worker
    built = BuiltMessages()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(START_METHOD))
    try:
        in_flight: deque[Future[RenderedBatch]] = deque()
        with pq.ParquetWriter(parquet_path, MESSAGE_SCHEMA, **PARQUET_OPTIONS) as writer:

            def append(rendered: RenderedBatch) -> None:
                writer.write_table(rendered.table)
                built.add(rendered)

            for rows in _chain(first_two, row_batches):
                in_flight.append(pool.submit(render_batch, job, rows))
                del rows
                if len(in_flight) > workers:
                    append(in_flight.popleft().result())
            while in_flight:
                append(in_flight.popleft().result())
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return built


def _chain(read: list[list[tuple]], rest: Iterator[list[tuple]]) -> Iterator[list[tuple]]:
    """The batches already read (handed over, not kept), then the rest."""
    while read:
        yield read.pop(0)
    yield from rest

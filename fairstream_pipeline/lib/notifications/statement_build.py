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

import itertools
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
        yield render_rows(rows, month, threshold_cents, domain)


def render_rows(rows: list[tuple], month: str, threshold_cents: int, domain: str) -> list[Message]:
    """The emails of rows of ``closed_statements.statement_rows``, in their order."""
    return [render_statement(statement_of(month, row), threshold_cents, domain) for row in rows]


def message_table(messages: list[Message]) -> pa.Table:
    """Messages as the lake table: their outbox rows, every column a string."""
    columns = list(zip(*[m.as_row() for m in messages])) if messages else [[] for _ in OUTBOX_COLUMNS]
    return pa.table({name: pa.array(values, pa.string()) for name, values in zip(OUTBOX_COLUMNS, columns)})


@dataclass(frozen=True)
class RenderedBatch:
    """A batch of messages once its CSV files are written: its lake table (a worker sends it back
    pickled as Arrow IPC) and what ``BuiltMessages`` counts."""

    table: pa.Table
    rows: int
    no_address: int
    example: Message | None  # the batch's first message with an address

    @classmethod
    def written(cls, messages: list[Message], csv_folder: Path) -> "RenderedBatch":
        """Write the CSV files of ``messages`` in ``csv_folder/statements/``; the batch to append."""
        write_statement_csvs(messages, csv_folder)
        return cls(
            message_table(messages),
            len(messages),
            sum(1 for m in messages if m.recipient is None),
            next((m for m in messages if m.recipient), None),
        )


@dataclass
class BuiltMessages:
    """What was written: the message count, those without an address, the first with one."""

    rows: int = 0
    no_address: int = 0
    example: Message | None = None

    @property
    def to_send(self) -> int:
        return self.rows - self.no_address

    def add(self, batch: RenderedBatch) -> None:
        """Count a batch rendered after those counted so far."""
        self.rows += batch.rows
        self.no_address += batch.no_address
        if self.example is None:
            self.example = batch.example


def append_batches(batches: Iterable[RenderedBatch], parquet_path: Path) -> BuiltMessages:
    """Append each batch's table to the Parquet file ``parquet_path`` (a row group each), in
    order; one batch is in memory at a time. No batch: one empty row group, as ``pq.write_table``
    writes an empty table."""
    built = BuiltMessages()
    with pq.ParquetWriter(parquet_path, MESSAGE_SCHEMA, **PARQUET_OPTIONS) as writer:
        for batch in batches:
            writer.write_table(batch.table)
            built.add(batch)
            del batch  # dropped before the next batch is rendered
        if not built.rows:
            writer.write_table(message_table([]))
    return built


def write_messages(batches: Iterable[list[Message]], parquet_path: Path, csv_folder: Path) -> BuiltMessages:
    """Append each batch of messages to the Parquet file ``parquet_path`` (a row group each) and
    write their CSV files in ``csv_folder/statements/``; one batch is in memory at a time."""
    return append_batches(_written(batches, csv_folder), parquet_path)


def _written(batches: Iterable[list[Message]], csv_folder: Path) -> Iterator[RenderedBatch]:
    """Each batch's CSV files written and its table made; neither the messages nor the table are
    kept here once handed over (memory holds one batch)."""
    for messages in batches:
        batch = RenderedBatch.written(messages, csv_folder)
        del messages
        yield batch
        del batch


@dataclass(frozen=True)
class RenderJob:
    """What a worker needs besides a batch's rows: all picklable."""

    month: str
    threshold_cents: int
    domain: str
    csv_folder: str


def render_batch(job: RenderJob, rows: list[tuple]) -> RenderedBatch:
    """Render a batch of ``closed_statements.statement_rows`` and write its CSV files (in a worker,
    or in this process)."""
    messages = render_rows(rows, job.month, job.threshold_cents, job.domain)
    return RenderedBatch.written(messages, Path(job.csv_folder))


def worker_count(workers: int | None = None) -> int:
    """``workers``, else ``WORKERS``, else one per core."""
    count = workers if workers is not None else WORKERS if WORKERS is not None else os.cpu_count() or 1
    if count < 1:
        raise ValueError(f"workers must be at least 1, got {count}")
    return count


def rendered_batches(
    row_batches: Iterator[list[tuple]], job: RenderJob, workers: int
) -> Iterator[RenderedBatch]:
    """Each batch of rows rendered (``render_batch``), in order: by ``workers`` processes when
    there are several workers and at least two batches, with at most ``workers + 1`` batches in
    flight; otherwise in this process, with no process started. The pool is shut down, its pending
    batches cancelled, when the batches end, fail or stop being read; an error in a worker is
    raised here with its type and message."""
    ahead = list(itertools.islice(row_batches, 2))
    if workers == 1 or len(ahead) < 2:
        for rows in itertools.chain(ahead, row_batches):
            yield render_batch(job, rows)
        return
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(START_METHOD))
    try:
        in_flight: deque[Future[RenderedBatch]] = deque()
        for rows in itertools.chain(ahead, row_batches):
            in_flight.append(pool.submit(render_batch, job, rows))
            if len(in_flight) > workers:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


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
    writes them (the same bytes), the batches rendered by ``workers`` processes
    (``worker_count``, :func:`rendered_batches`): this process reads the batches of rows from
    ``con`` and appends the tables the workers send back, in batch order."""
    job = RenderJob(month, threshold_cents, domain, str(csv_folder))
    row_batches = statement_row_batches(con, batch_size or BATCH_PAYEES)
    return append_batches(rendered_batches(row_batches, job, worker_count(workers)), parquet_path)

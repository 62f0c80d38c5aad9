"""The month's statement emails, built a batch of payees at a time: each batch is rendered, appended
to the month's Parquet file, its CSV files written, and dropped, so memory holds one batch of
messages, never the month's.

A month of at most ``BATCH_PAYEES`` payees is one batch: its Parquet file is byte for byte the one
``pq.write_table`` writes of the whole table (one row group). A larger month has one row group per
batch, with the same rows in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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
        self.rows += len(messages)
        self.no_address += sum(1 for m in messages if m.recipient is None)
        if self.example is None:
            self.example = next((m for m in messages if m.recipient), None)


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

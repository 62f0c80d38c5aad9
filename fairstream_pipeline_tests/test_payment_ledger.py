"""The payment run's ledger over several months, for any earnings, payment details and bank returns.

A small lake is built by hand in a temporary folder, month after month: the landing files, the
payees' earnings, the directory and the payment-details snapshot (``snapshot_payment_details``, as
the catalog snapshot makes it). Then the real library calls of the pipeline run on it, as the assets
make them: ``draft_statements`` (rules 9 and 10), ``close_month``, the batch (``build_batch_lines``,
``batch_file``), its approval and release (``check_approval``, ``release_file``), and the bank's
status reports (``build_status_report``, ``attribute``, ``apply_report``, ``publish_status``).

A reference model, written here from the rules (docs/payout-rules.md, rule 10) and independent of
the SQL, says what every statement, adjustment and batch line must be; the issue's properties are
then checked on what the lake holds:

- a batch's control sum is the sum paid over the month's statements, to payees with valid details;
- every paid (payee, month) is in exactly one released batch, and a batch pays nobody else;
- balances reconcile: opening + earned + adjustment - paid = closing, opening = previous closing;
- a returned payment is credited back exactly once, in the next month computed, and no credit
  exists without a return;
- a payee whose payment came back is held (``returned_payment``) while their details are those it
  came back from, and paid again once they change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from fairstream_pipeline.lib.assets import PAYMENT_BATCH, PAYMENT_RELEASE
from fairstream_pipeline.lib.close.draft import draft_statements
from fairstream_pipeline.lib.close.period_close import (
    close_month,
    draft_problems,
    statement_payments,
)
from fairstream_pipeline.lib.lake.duckdb_engine import read_parquet
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.lake.tables import write_table
from fairstream_pipeline.lib.months import following_month
from fairstream_pipeline.lib.payments.bank_details import compact, details_hash
from fairstream_pipeline.lib.payments.batch import (
    batch_file,
    batch_lines,
    batch_month,
    build_batch_lines,
    end_to_end_id,
    execution_date,
)
from fairstream_pipeline.lib.payments.details import snapshot_payment_details
from fairstream_pipeline.lib.payments.lifecycle import (
    PARTLY_RETURNED,
    RETURNED,
    SETTLED,
    apply_report,
    batch_status,
    check_batch_transition,
)
from fairstream_pipeline.lib.payments.release import (
    Release,
    check_approval,
    release_file,
    sha256_of,
)
from fairstream_pipeline.lib.payments.reports import (
    ReportFile,
    applied_entry,
    applied_reports,
    attribute,
    current_payments,
    publish_status,
)
from fairstream_pipeline.lib.payments.sepa_credit_transfer import Debtor, read_pain001
from fairstream_pipeline.lib.payments.status_report import TransactionStatus, build_status_report
from fairstream_pipeline.lib.payouts.rules import HOLD_REASONS, SUSPENSE, PayoutRules

FIRST = "2024-01"
THRESHOLD = 1000
RULES = PayoutRules(royalty_share_ppm=1_000_000, payout_threshold_cents=THRESHOLD)
DEBTOR = Debtor("FairStream SAS", "GB29NWBK60161331926819", None)
APPROVER = "Ines"


@dataclass(frozen=True)
class Details:
    """A payee's row of catalog/payment_details.parquet, and whether the test expects it payable."""

    iban: str
    bic: str | None
    holder: str | None
    valid: bool

    @property
    def account(self) -> tuple[str, str, str]:
        """What makes two rows the same bank details: the IBAN and BIC as compared, the holder."""
        return compact(self.iban), compact(self.bic), (self.holder or "").strip()


# (iban, bic, valid): checked by hand, not by the code under test.
ACCOUNTS = [
    ("DE89370400440532013000", None, True),
    ("DE89370400440532013000", "COBADEFFXXX", True),
    ("FR1420041010050500013M02606", None, True),
    ("fr14 2004 1010 0505 0001 3m02 606", None, True),  # the same account as above, as a payee typed it
    ("GB29NWBK60161331926819", None, True),
    ("NL91ABNA0417164300", None, True),
    ("DE89370400440532013001", None, False),  # checksum
    ("NL91ABNA0417164300", "COBADEFFXXX", False),  # a German BIC for a Dutch IBAN
]
HOLDERS = [None, "Acme Music Ltd"]


def name_of(payee: str) -> str:
    return f"Payee {payee}"


class Ledger:
    """A lake whose months are drafted, closed, batched, released and reported on by the real code."""

    def __init__(self, root: Path, out_dir: Path):
        self.lake = Lake(root)
        self.out_dir = out_dir
        self.reports = 0
        self.database = duckdb.connect()  # one in-memory database; each step on a connection of its own

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A fresh connection for one step (its temporary tables die with it), as each asset has;
        what a step left in the shared catalog (views) is dropped after it."""
        con = self.database.cursor()
        try:
            yield con
        finally:
            con.close()
            for (view,) in self.database.execute(
                "SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary"
            ).fetchall():
                self.database.execute(f'DROP VIEW "{view}"').fetchall()

    # What the landing zone and the earlier assets deliver ----------------------------------------

    def deliver(self, month: str, earnings: dict[str, int], directory: list[str], details: dict[str, Details]) -> None:
        """The month's landing files, earnings, payee directory and payment-details snapshot."""
        rows = [("FR", "paid", payee, cents, cents) for payee, cents in sorted(earnings.items()) if cents]
        earned = pa.table(
            {name: pa.array([r[i] for r in rows], kind) for i, (name, kind) in enumerate(
                [("country", pa.string()), ("tier", pa.string()), ("payee_id", pa.string()),
                 ("uc_cents", pa.int64()), ("pr_cents", pa.int64())])}
        )
        landing = pa.table({"relative_path": [f"listening_events/date={month}-01/part-0.parquet"],
                            "num_rows": [1], "size_bytes": [100], "mtime_ns": [1]})
        assets = ["landing_month", "payee_earnings", "payee_directory", "payment_details"]
        with self.connection() as con, self.lake.write_partitions([(a, month) for a in assets]) as writers:
            con.execute("CREATE TEMP TABLE payee_directory (payee_id VARCHAR, name VARCHAR, email VARCHAR)").fetchall()
            con.executemany("INSERT INTO payee_directory VALUES (?, ?, ?)",
                            [(p, name_of(p), f"{p.lower()}@example.org") for p in directory])
            con.execute("CREATE TEMP TABLE catalog_payment_details "
                        "(payee_id VARCHAR, iban VARCHAR, bic VARCHAR, account_holder VARCHAR)").fetchall()
            if details:
                con.executemany("INSERT INTO catalog_payment_details VALUES (?, ?, ?, ?)",
                                [(p, d.iban, d.bic, d.holder) for p, d in sorted(details.items())])
            snapshot_payment_details(con, configured=True)
            landing_writer, earnings_writer, directory_writer, details_writer = writers
            pq.write_table(landing, landing_writer.file())
            landing_writer.manifest.update(rows=1, input_fingerprint=f"landing-{month}")
            pq.write_table(earned, earnings_writer.file())
            earnings_writer.manifest.update(rows=len(rows), run_id=f"run-{month}", computed_at="",
                                            input_fingerprint=f"landing-{month}")
            for writer, table in ((directory_writer, "payee_directory"), (details_writer, "payment_details")):
                writer.manifest.update(rows=write_table(con, table, writer.file()),
                                       input_fingerprint=f"catalog-{month}", configured=True)
            details_writer.private = True

    # The pipeline's library calls ------------------------------------------------------------------

    def draft(self, month: str) -> dict:
        with self.connection() as con:
            return draft_statements(con, self.lake, FIRST, month, RULES)

    def close(self, month: str) -> dict:
        assert draft_problems(self.lake, FIRST, month) == []
        with self.connection() as con:
            con.execute(
                f"CREATE TEMP VIEW payee_statements AS "
                f"SELECT * FROM {read_parquet(self.lake.parquet_glob('payee_statements', month))}"
            ).fetchall()
            payees_paid, paid = statement_payments(con)
            record = {"closed_at": f"{following_month(month)}-02T06:00:00+00:00", "closed_by_run": f"close-{month}",
                      "rules": RULES.as_dict(), "checks_verified": [], "held_cents": 0, "month_total_cents": 0,
                      "payees_paid": payees_paid, "paid_cents": paid}
            return close_month(con, self.lake, month, record)

    def build_batch(self, month: str) -> None:
        """What the payment_batch asset writes for the closed month."""
        closed_at = self.lake.manifest("period_close", month)["closed_at"]
        with self.connection() as con:
            try:
                build_batch_lines(con, self.lake, month)
            finally:  # the month's id functions, registered in the shared catalog
                for function in ("end_to_end_id", "remittance"):
                    con.remove_function(function)
            lines = batch_lines(con)
            held_payees, held_cents = con.execute(
                f"SELECT count(*), coalesce(sum(closing_balance_cents), 0)::BIGINT "
                f"FROM {read_parquet(self.lake.parquet_glob('payee_statements', month))} WHERE hold_reason IS NOT NULL"
            ).fetchall()[0]
            identifier, xml = batch_file(month, lines, DEBTOR, closed_at) if lines else (None, None)
            with self.lake.write_partition(PAYMENT_BATCH, month) as out:
                rows = write_table(con, PAYMENT_BATCH, out.file())
                file_name = f"{identifier}.xml" if identifier else None
                if xml is not None:
                    (out.staging_dir / file_name).write_bytes(xml)
                out.private = True
                out.manifest.update(
                    rows=rows, batch_id=identifier, control_sum_cents=sum(line.amount_cents for line in lines),
                    file_name=file_name, file_sha256=sha256_of(xml) if xml is not None else None,
                    execution_date=execution_date(month, closed_at).isoformat(), closed_at=closed_at,
                    debtor_name=DEBTOR.name, debtor_iban_masked="GB…6819", payees_held=held_payees,
                    held_cents=held_cents,
                )

    def release(self, month: str) -> bool:
        """The approval of the month's batch (the approver restates its figures); False when empty."""
        batch = self.lake.manifest(PAYMENT_BATCH, month)
        if not batch["file_name"]:
            return False
        check_approval(APPROVER, batch["rows"], batch["control_sum_cents"], batch["rows"], batch["control_sum_cents"])
        data = (self.lake.partition_dir(PAYMENT_BATCH, month) / batch["file_name"]).read_bytes()
        assert sha256_of(data) == batch["file_sha256"]
        path, created = release_file(data, self.out_dir, batch["file_name"])
        assert created
        release = Release(month, batch["batch_id"], batch["file_name"], batch["file_sha256"], batch["rows"],
                          batch["control_sum_cents"], APPROVER, f"{following_month(month)}-03T09:00:00+00:00",
                          f"approve-{month}")
        with self.connection() as con:
            con.execute(
                "CREATE TEMP TABLE payment_release AS SELECT * FROM (VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)) "
                "t(month, batch_id, file_name, file_sha256, payments, control_sum_cents, approver, released_at, released_by_run)",
                list(release.as_dict().values()),
            ).fetchall()
            with self.lake.write_partition(PAYMENT_RELEASE, month) as out:
                write_table(con, PAYMENT_RELEASE, out.file())
                out.manifest.update(rows=1, **release.as_dict(), file_path=str(path))
        return True

    def bank_report(self, transactions: list[TransactionStatus], batch_id: str) -> None:
        """A pain.002 report on ``batch_id`` arrives and is applied, as payment_status applies it."""
        self.reports += 1
        data = build_status_report(f"BANK-{self.reports}", dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc),
                                   batch_id, transactions)
        report = ReportFile(f"payment_reports/bank-{self.reports}.xml", data, hashlib.sha256(data).hexdigest())
        parsed, month = attribute(report)
        assert month == batch_month(batch_id)
        assert self.lake.exists(PAYMENT_RELEASE, month)
        payments = current_payments(self.lake, month)
        before = batch_status(True, [p.status for p in payments])
        result = apply_report(parsed, report.name, batch_id, True, payments)
        after = batch_status(True, [p.status for p in result.payments])
        check_batch_transition(before, after)
        entry = applied_entry(report, f"ingest-{self.reports}", result.settled, result.returned, result.unchanged)
        publish_status(self.lake, month, list(result.payments), applied_reports(self.lake, month) + [entry], batch_id)

    # Reading the lake ------------------------------------------------------------------------------

    def table(self, asset: str, month: str, columns: str) -> list[tuple]:
        return duckdb.sql(
            f"SELECT {columns} FROM {read_parquet(self.lake.parquet_glob(asset, month))} ORDER BY ALL"
        ).fetchall()

    def statements(self, month: str) -> dict[str, tuple]:
        """payee -> (opening, earned, adjustment, paid, closing, hold_reason)"""
        rows = self.table("payee_statements", month, "payee_id, opening_balance_cents, earned_cents, "
                          "adjustment_cents, paid_cents, closing_balance_cents, hold_reason")
        return {payee: tuple(rest) for payee, *rest in rows}

    def adjustments(self, month: str) -> list[tuple]:
        return self.table("payee_adjustments", month, "payee_id, source_month, cents, reason")

    def batch(self, month: str) -> list[tuple]:
        return self.table(PAYMENT_BATCH, month, "payee_id, account_holder, iban, bic, amount_cents, end_to_end_id, "
                          "remittance, details_hash")

    def details(self, month: str) -> dict[str, tuple]:
        """payee -> (details_hash, valid) of the month's snapshot"""
        return {p: (h, v) for p, h, v in self.table("payment_details", month, "payee_id, details_hash, valid")}

    def returned(self, months: list[str]) -> dict[tuple[str, str], tuple[int, str]]:
        """(payee, batch month) -> (amount, details_hash) of every payment the bank returned so far."""
        return {
            (p.payee_id, month): (p.amount_cents, p.details_hash)
            for month in months
            if self.lake.exists(PAYMENT_RELEASE, month)
            for p in current_payments(self.lake, month)
            if p.status == RETURNED
        }


# The reference model ----------------------------------------------------------------------------


@dataclass
class Model:
    """Rules 9 and 10 and the credit of returned payments, by hand."""

    closing: dict[str, int]
    credited: dict[tuple[str, str], int]  # (payee, batch month) -> cents credited back so far

    def month(
        self, month: str, payees: list[str], earnings: dict[str, int], details: dict[str, Details],
        returned: dict[tuple[str, str], tuple[int, Details]],
    ) -> tuple[dict[str, tuple], list[tuple]]:
        """The month's statements and adjustments, given the payments returned so far (with the
        details each was paid to)."""
        adjustments = sorted(
            (payee, source, amount - self.credited.get((payee, source), 0), "returned_payment")
            for (payee, source), (amount, _) in returned.items()
            if amount != self.credited.get((payee, source), 0)
        )
        statements = {}
        for payee in sorted(set(payees) | set(earnings) | set(self.closing)):
            opening = self.closing.get(payee, 0)
            earned = earnings.get(payee, 0)
            adjustment = sum(cents for p, _, cents, _ in adjustments if p == payee)
            due = opening + earned + adjustment
            hold = None
            if payee != SUSPENSE and due >= THRESHOLD and due > 0:
                row = details.get(payee)
                if row is None:
                    hold = "no_payment_details"
                elif not row.valid:
                    hold = "invalid_payment_details"
                elif any(p == payee and d.account == row.account for (p, _), (_, d) in returned.items()):
                    hold = "returned_payment"
                paid = due if hold is None else 0
            else:
                paid = 0
            if opening or earned or adjustment:
                statements[payee] = (opening, earned, adjustment, paid, due - paid, hold)
        return statements, adjustments

    def advance(self, statements: dict[str, tuple], adjustments: list[tuple]) -> None:
        self.closing = {payee: s[4] for payee, s in statements.items()}
        for payee, source, cents, _ in adjustments:
            self.credited[(payee, source)] = self.credited.get((payee, source), 0) + cents


# Hypothesis ------------------------------------------------------------------------------------

PAYEES = ["A", "B", "C", "D", "E", "F"]
REASONS = ["AC01", "AC04", "AC06", "MD07"]


@st.composite
def details_rows(draw) -> Details | None:
    choice = draw(st.integers(0, len(ACCOUNTS)))  # the last one: no row
    if choice == len(ACCOUNTS):
        return None
    iban, bic, valid = ACCOUNTS[choice]
    return Details(iban, bic, draw(st.sampled_from(HOLDERS)), valid)


def draw_report(data, ledger: Ledger, month: str, label: str) -> list[TransactionStatus]:
    """A bank report on ``month``'s batch: random payments settled, returned or still pending
    (never a returned payment settled, which the lifecycle refuses: test_payment_lifecycle)."""
    payments = current_payments(ledger.lake, month)
    chosen = data.draw(st.lists(st.sampled_from(payments), unique_by=lambda p: p.end_to_end_id), label=label)
    transactions = []
    for payment in chosen:
        codes = ["RJCT"] if payment.status == RETURNED else ["RJCT", "RJCT", "ACSC", "ACCP", "PDNG"]
        code = data.draw(st.sampled_from(codes), label=f"{label} {payment.payee_id}")
        reason = data.draw(st.sampled_from(REASONS)) if code == "RJCT" else None
        transactions.append(TransactionStatus(payment.end_to_end_id, code, reason))
    return transactions


@settings(
    max_examples=20,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],  # explaining a failure takes minutes here
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), months=st.integers(3, 4), extra=st.integers(0, 2))
def test_the_payment_ledger_for_any_details_and_returns(tmp_path_factory, data, months, extra):
    root = tmp_path_factory.mktemp("ledger")
    ledger = Ledger(root / "warehouse", root / "bank-out")
    payees = PAYEES[: 4 + extra]
    model = Model(closing={}, credited={})
    month_keys = [FIRST]
    while len(month_keys) < months:
        month_keys.append(following_month(month_keys[-1]))
    details_of: dict[str, dict[str, Details]] = {}
    returned_at_draft: dict[str, dict[tuple[str, str], tuple[int, str]]] = {}
    released: list[str] = []
    for number, month in enumerate(month_keys):
        # Bank reports on the batches released so far, before this month is drafted.
        for k in released:
            if data.draw(st.booleans(), label=f"report on {k} before {month}"):
                transactions = draw_report(data, ledger, k, f"report on {k} before {month}")
                if transactions:
                    ledger.bank_report(transactions, ledger.lake.manifest(PAYMENT_BATCH, k)["batch_id"])
        earnings = data.draw(st.fixed_dictionaries({p: st.integers(0, 3000) for p in [*payees, SUSPENSE]}),
                             label=f"earnings {month}")
        details: dict[str, Details] = {}
        for payee in payees:
            previous = details_of[month_keys[number - 1]].get(payee, "none") if number else "none"
            if previous != "none" and data.draw(st.booleans(), label=f"{payee} keeps their row in {month}"):
                details[payee] = previous
            else:
                row = data.draw(details_rows(), label=f"{payee}'s row in {month}")
                if row is not None:
                    details[payee] = row
        details_of[month] = details
        ledger.deliver(month, earnings, payees, details)
        ledger.draft(month)
        # Sometimes a report lands after the draft: the draft is stale, and is computed again.
        if released and data.draw(st.booleans(), label=f"late report before closing {month}"):
            k = data.draw(st.sampled_from(released), label="late report's batch")
            transactions = draw_report(data, ledger, k, f"late report on {k}")
            if transactions:
                content_before = ledger.lake.content_hash("payment_status", k) if ledger.lake.exists("payment_status", k) else None
                ledger.bank_report(transactions, ledger.lake.manifest(PAYMENT_BATCH, k)["batch_id"])
                if ledger.lake.content_hash("payment_status", k) != content_before:
                    assert draft_problems(ledger.lake, FIRST, month) == [
                        "an earlier month was restated or closed, or the bank reported on a payment, after the draft "
                        f"was computed: recompute the draft (--select 'payee_statements' --partition {month}) and review it"
                    ]
                    event("a report made a draft stale")
                else:  # nothing changed (a pending status, a payment returned again): the draft stands
                    assert draft_problems(ledger.lake, FIRST, month) == []
                ledger.draft(month)
        returned = ledger.returned(month_keys[:number])
        returned_at_draft[month] = returned
        paid_to = {(p, k): details_of[k][p] for p, k in returned}
        expected_statements, expected_adjustments = model.month(
            month, payees, earnings, details, {key: (amount, paid_to[key]) for key, (amount, _) in returned.items()}
        )
        assert ledger.statements(month) == expected_statements, month
        assert ledger.adjustments(month) == expected_adjustments, month
        model.advance(expected_statements, expected_adjustments)
        ledger.close(month)
        ledger.build_batch(month)
        if ledger.release(month):
            released.append(month)
        event(f"returned payments credited in {month}: {len(expected_adjustments)}")

    check_the_ledger(ledger, month_keys, details_of, returned_at_draft)
    returns = len(ledger.returned(month_keys))
    event(f"payments returned in the run: {min(returns, 3)}{'+' if returns >= 3 else ''}")


def check_the_ledger(
    ledger: Ledger, months: list[str], details_of: dict[str, dict[str, Details]],
    returned_at_draft: dict[str, dict[tuple[str, str], tuple[int, str]]],
) -> None:
    """The issue's properties, read from the lake alone (the model is not consulted)."""
    previous: dict[str, int] = {}
    in_batches: dict[tuple[str, str], int] = {}
    credited: dict[tuple[str, str], int] = {}
    for month in months:
        statements = ledger.statements(month)
        snapshot = ledger.details(month)
        paid = {payee: s[3] for payee, s in statements.items() if s[3] > 0}
        batch = ledger.batch(month)
        manifest = ledger.lake.manifest(PAYMENT_BATCH, month)

        # Balances reconcile, and every held payee is held for one of the three reasons.
        for payee, (opening, earned, adjustment, paid_cents, closing, hold) in statements.items():
            assert opening + earned + adjustment - paid_cents == closing, (month, payee)
            assert opening == previous.get(payee, 0), (month, payee)
            due = opening + earned + adjustment
            if payee != SUSPENSE and due >= THRESHOLD and due > 0:
                assert (paid_cents, closing) == ((0, due) if hold else (due, 0)), (month, payee)
                assert hold is None or hold in HOLD_REASONS
            else:
                assert (paid_cents, hold) == (0, None), (month, payee)
        assert {payee for payee, closing in previous.items() if closing} <= set(statements)  # a balance carries on
        previous = {payee: s[4] for payee, s in statements.items()}

        # The batch: the control sum is what the statements pay, to valid details only; each paid
        # payee exactly once, nobody else.
        assert manifest["control_sum_cents"] == sum(paid.values()) == sum(line[4] for line in batch)
        assert manifest["rows"] == len(batch) == len(paid)
        assert sorted(line[0] for line in batch) == sorted(paid)
        for payee_id, holder, iban, bic, amount, e2e, remittance, hash_ in batch:
            row = details_of[month][payee_id]
            assert row.valid and snapshot[payee_id] == (hash_, True)
            assert (holder, iban, bic, amount) == (row.holder or name_of(payee_id), compact(row.iban),
                                                   compact(row.bic) or None, paid[payee_id])
            assert (e2e, remittance) == (end_to_end_id(month, payee_id),
                                         f"FairStream royalties {month}, statement of payee {payee_id}")
            assert hash_ == details_hash(row.iban, row.bic, row.holder)
        for payee in paid:
            assert payee in details_of[month] and details_of[month][payee].valid and snapshot[payee][1]
        if batch:
            released = ledger.lake.manifest(PAYMENT_RELEASE, month)
            assert (released["batch_id"], released["payments"], released["control_sum_cents"]) == (
                manifest["batch_id"], len(batch), manifest["control_sum_cents"])
            data = (ledger.out_dir / manifest["file_name"]).read_bytes()
            assert sha256_of(data) == released["file_sha256"] == manifest["file_sha256"]
            sepa = read_pain001(data)  # validated against the XSD
            assert (sepa.msg_id, sepa.count, sepa.control_sum_cents) == (manifest["batch_id"], len(batch), sum(paid.values()))
            assert sorted((t.end_to_end_id, t.amount_cents, t.iban) for t in sepa.transfers) == sorted(
                (line[5], line[4], line[2]) for line in batch)
            for line in batch:
                in_batches[(line[0], month)] = in_batches.get((line[0], month), 0) + 1
        else:
            assert manifest["batch_id"] is None and not ledger.lake.exists(PAYMENT_RELEASE, month)

        # Holds after a return: held while the details are those the payment came back from.
        for payee, (opening, earned, adjustment, paid_cents, closing, hold) in statements.items():
            due = opening + earned + adjustment
            if payee == SUSPENSE or due < THRESHOLD or due <= 0:
                continue
            row = snapshot.get(payee)
            bounced = {h for (p, _), (_, h) in returned_at_draft[month].items() if p == payee}
            if row is None:
                assert hold == "no_payment_details"
            elif not row[1]:
                assert hold == "invalid_payment_details"
            elif row[0] in bounced:
                assert hold == "returned_payment", (month, payee)
                event("a payee is held after a return")
            else:
                assert (hold, paid_cents) == (None, due), (month, payee)
                if bounced:
                    event("a payee is paid again after a return, to other details")

        for payee, source, cents, reason in ledger.adjustments(month):
            assert reason == "returned_payment"  # no late data in this ledger
            assert source < month
            credited[(payee, source)] = credited.get((payee, source), 0) + cents

    # Every paid (payee, month) is in exactly one released batch.
    paid_everywhere = {(p, m) for m in months for p, s in ledger.statements(m).items() if s[3] > 0}
    assert set(in_batches) == paid_everywhere and set(in_batches.values()) <= {1}
    ids = [line[5] for m in months for line in ledger.batch(m)]
    assert len(ids) == len(set(ids))

    # Every returned payment is credited back exactly once, and nothing else is.
    returned = {key: amount for key, (amount, _) in ledger.returned(months).items()}
    assert credited == returned
    for month in months:
        if ledger.lake.exists("payment_status", month):
            statuses = [p.status for p in current_payments(ledger.lake, month)]
            assert batch_status(True, statuses) == (PARTLY_RETURNED if RETURNED in statuses else
                                                   SETTLED if set(statuses) == {SETTLED} else "released")


# The worked case C11, at the library level ---------------------------------------------------------


X_IBAN, Y_BAD_IBAN, Y_IBAN = "DE89370400440532013000", "DE89370400440532013001", "FR1420041010050500013M02606"


def test_c11_at_the_library_level(tmp_path):
    """Worked case C11 (docs/payout-rules.md): X valid, Y's IBAN wrong, Z without a row; X's payment
    comes back (RJCT AC04), Y's IBAN is corrected; February credits X back and holds X, pays Y."""
    ledger = Ledger(tmp_path / "warehouse", tmp_path / "bank-out")
    jan, feb = "2024-01", "2024-02"
    earnings = {"X": 2000, "Y": 1500, "Z": 1200}
    ledger.deliver(jan, earnings, ["X", "Y", "Z"], {"X": Details(X_IBAN, None, None, True),
                                                   "Y": Details(Y_BAD_IBAN, None, None, False)})
    manifest = ledger.draft(jan)
    assert manifest["rows"] == {"payee_statements": 3, "payee_adjustments": 0}
    assert manifest["payment_details"]["configured"] is True
    assert ledger.statements(jan) == {
        "X": (0, 2000, 0, 2000, 0, None),
        "Y": (0, 1500, 0, 0, 1500, "invalid_payment_details"),
        "Z": (0, 1200, 0, 0, 1200, "no_payment_details"),
    }
    record = ledger.close(jan)
    assert (record["payees_paid"], record["paid_cents"]) == (1, 2000)
    ledger.build_batch(jan)
    batch = ledger.lake.manifest(PAYMENT_BATCH, jan)
    assert (batch["rows"], batch["control_sum_cents"], batch["payees_held"], batch["held_cents"]) == (1, 2000, 2, 2700)
    assert batch["batch_id"].startswith("FS-2024-01-") and len(batch["batch_id"]) == 19
    assert batch["execution_date"] == "2024-02-03"
    x_e2e = end_to_end_id(jan, "X")
    assert ledger.batch(jan) == [
        ("X", "Payee X", X_IBAN, None, 2000, x_e2e, "FairStream royalties 2024-01, statement of payee X",
         details_hash(X_IBAN, None, None)),
    ]
    assert ledger.release(jan)
    (released,) = ledger.out_dir.iterdir()
    assert released.name == f"{batch['batch_id']}.xml"
    sepa = read_pain001(released.read_bytes())
    assert (sepa.count, sepa.control_sum_cents) == (1, 2000)
    assert [(t.end_to_end_id, t.creditor_name, t.iban, t.amount_cents) for t in sepa.transfers] == [
        (x_e2e, "Payee X", X_IBAN, 2000)
    ]

    ledger.bank_report([TransactionStatus(x_e2e, "RJCT", "AC04")], batch["batch_id"])
    (x_payment,) = current_payments(ledger.lake, jan)
    assert (x_payment.payee_id, x_payment.amount_cents, x_payment.status, x_payment.reason_code) == ("X", 2000, RETURNED, "AC04")
    assert x_payment.report == "payment_reports/bank-1.xml"
    assert [(a["report"], a["settled"], a["returned"], a["unchanged"]) for a in applied_reports(ledger.lake, jan)] == [
        ("payment_reports/bank-1.xml", 0, 1, 0)
    ]

    ledger.deliver(feb, earnings, ["X", "Y", "Z"], {"X": Details(X_IBAN, None, None, True),
                                                   "Y": Details(Y_IBAN, None, None, True)})
    ledger.draft(feb)
    assert ledger.statements(feb) == {
        "X": (0, 2000, 2000, 0, 4000, "returned_payment"),
        "Y": (1500, 1500, 0, 3000, 0, None),
        "Z": (1200, 1200, 0, 0, 2400, "no_payment_details"),
    }
    assert ledger.adjustments(feb) == [("X", jan, 2000, "returned_payment")]
    ledger.close(feb)
    ledger.build_batch(feb)
    assert [(p, iban, cents) for p, _, iban, _, cents, *_ in ledger.batch(feb)] == [("Y", Y_IBAN, 3000)]
    assert ledger.lake.manifest(PAYMENT_BATCH, feb)["control_sum_cents"] == 3000

    # March: X's details change, so X is paid again, the credit is not posted twice.
    mar = "2024-03"
    ledger.deliver(mar, {"X": 0, "Y": 0, "Z": 0}, ["X", "Y", "Z"], {"X": Details(X_IBAN, "COBADEFFXXX", None, True),
                                                                   "Y": Details(Y_IBAN, None, None, True)})
    ledger.draft(mar)
    assert ledger.statements(mar) == {
        "X": (4000, 0, 0, 4000, 0, None),
        "Z": (2400, 0, 0, 0, 2400, "no_payment_details"),
    }
    assert ledger.adjustments(mar) == []


@pytest.mark.parametrize("back_to_the_returned_account", [False, True])
def test_a_payee_held_after_a_return_is_paid_once_their_details_change(tmp_path, back_to_the_returned_account):
    """The hold follows the details the payment came back from: another account releases it; going
    back to the account that bounced holds the payee again."""
    ledger = Ledger(tmp_path / "warehouse", tmp_path / "bank-out")
    months = ["2024-01", "2024-02", "2024-03", "2024-04"]
    accounts = [X_IBAN, X_IBAN, Y_IBAN, X_IBAN if back_to_the_returned_account else Y_IBAN]
    for month, iban in zip(months, accounts):
        ledger.deliver(month, {"X": 1500}, ["X"], {"X": Details(iban, None, None, True)})
        ledger.draft(month)
        ledger.close(month)
        ledger.build_batch(month)
        ledger.release(month)
        if month == "2024-01":
            ledger.bank_report([TransactionStatus(end_to_end_id(month, "X"), "RJCT", "AC04")],
                               ledger.lake.manifest(PAYMENT_BATCH, month)["batch_id"])
    assert [ledger.statements(m)["X"] for m in months] == [
        (0, 1500, 0, 1500, 0, None),
        (0, 1500, 1500, 0, 3000, "returned_payment"),
        (3000, 1500, 0, 4500, 0, None),
        (0, 1500, 0, 0, 1500, "returned_payment") if back_to_the_returned_account else (0, 1500, 0, 1500, 0, None),
    ]
    assert [len(ledger.adjustments(m)) for m in months] == [0, 1, 0, 0]

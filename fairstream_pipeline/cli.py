"""The ``fairstream`` console script.

Subcommands:

* ``fairstream sample --month 2026-10 --users 5000 --seed 7 --out data/landing [--events N] [--tracks N]``
  writes one deterministic month of landing-zone data (see
  :mod:`fairstream_pipeline.sample`). It prints a short human summary on stderr and the
  JSON summary on stdout, so ``fairstream sample ... > summary.json`` captures just the JSON.
* ``fairstream summary 2026-09 2026-10`` prints what the pipeline computed for those months
  (accounting, user-centric beside pro-rata, statements), read from ``FAIRSTREAM_WAREHOUSE_DIR``.
* ``fairstream run 2026-09 [2026-10 ...] [--workspace workspace.yaml] [--config-json JSON]`` runs each
  month as a ``monthly_payout_job`` run of the ``DAGSTER_HOME`` instance, showing its steps, and
  exits with the run's status (see :mod:`fairstream_pipeline.run_command`).
* ``fairstream payments show MONTH [--json]`` prints a closed month's payment batch and its status;
  ``fairstream payments approve MONTH --count N --control-sum EUR --approver NAME`` launches
  ``approve_payment_batch`` as a real run and exits 0 only when the batch is released;
  ``fairstream payments ingest`` applies the bank's new status reports (``payment_reports/``), one
  ``ingest_payment_report`` run each, and prints what each changed (see
  :mod:`fairstream_pipeline.payments_command`).
* ``fairstream sample-bank-report --month M --out data/landing [--return N] [--seed S]`` plays the
  bank in the demo: reads the month's released payment file and writes a pain.002 status report
  that settles every payment but N returned ones.
* ``fairstream serve-status [--host H] [--port P]`` serves ``/health`` and ``/metrics`` over HTTP
  (see :mod:`fairstream_pipeline.status_server`).
* ``fairstream health [--heartbeat-tolerance SECONDS] [--now ISO8601]`` prints one JSON object
  (PostgreSQL, daemon heartbeat, last completed payout, alert channels; see
  :mod:`fairstream_pipeline.lib.alerting.health`) and exits 0 when healthy, 1 when something is wrong. A
  warning (alerts are not configured) is printed to stderr as ``warning: ...`` and does not change it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from fairstream_pipeline.lib.months import parse_month
from fairstream_pipeline.sample import MIN_TRACKS, MIN_USERS, generate_month


def _month(value: str) -> str:
    try:
        parse_month(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _at_least(minimum: int):
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {number}")
        return number

    return parse


def _instant(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 time, got {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fairstream", description="FairStream payout pipeline tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_sample_commands(sub)
    _add_status_commands(sub)
    _add_run_command(sub)
    _add_payments_command(sub)
    return parser


def _command(sub, name: str, func, help: str, description: str | None = None) -> argparse.ArgumentParser:
    """The subcommand ``name``, which runs ``func(args)``."""
    command = sub.add_parser(name, help=help, description=description)
    command.set_defaults(func=func)
    return command


def _add_sample_commands(sub) -> None:
    """``sample`` and ``sample-bank-report``: the demo's landing zone and its bank."""
    sample = _command(
        sub, "sample", _cmd_sample, "write one month of deterministic sample landing-zone data",
        "Write the catalog, subscriptions/month=YYYY-MM, ad_revenue/month=YYYY-MM and every "
        "listening_events/date=YYYY-MM-DD day (with _SUCCESS) of one month. Re-running replaces "
        "the month's files. Same arguments, same bytes.",
    )
    sample.add_argument("--month", required=True, type=_month, help="month to generate, YYYY-MM")
    sample.add_argument("--users", required=True, type=_at_least(MIN_USERS), help="size of the user base")
    sample.add_argument("--seed", required=True, type=_at_least(0), help="random seed (>= 0)")
    sample.add_argument("--out", required=True, type=Path, help="landing-zone root, e.g. data/landing")
    sample.add_argument("--events", type=_at_least(1), default=None,
                        help="listening-event rows in the month (default: users * 60)")
    sample.add_argument("--tracks", type=_at_least(MIN_TRACKS), default=None,
                        help="catalog size (default: max(200, users // 2))")

    bank = _command(
        sub, "sample-bank-report", _cmd_sample_bank_report,
        "play the bank in the demo: answer a month's released payment file with a pain.002 status report",
        "Read the month's released payment file (FAIRSTREAM_PAYMENTS_OUT_DIR/FS-MONTH-*.xml) and write a "
        "pain.002.001.10 status report into OUT/payment_reports/ that settles every payment but --return N, "
        "rejected with AC04 (closed account) and AC01 (incorrect account number). Same inputs, same bytes.",
    )
    bank.add_argument("--month", required=True, type=_month, help="the batch's month, YYYY-MM")
    bank.add_argument("--out", required=True, type=Path, help="landing-zone root, e.g. data/landing")
    bank.add_argument("--return", dest="returns", type=_at_least(0), default=2, help="payments to return (default 2)")
    bank.add_argument("--seed", type=_at_least(0), default=7, help="which payments come back (default 7)")


def _add_status_commands(sub) -> None:
    """``summary``, ``db-upgrade``, ``health`` and ``serve-status``."""
    summary = _command(
        sub, "summary", _cmd_summary, "summarize computed months from the warehouse",
        "Print the accounting, UC beside PR, and statements of computed months.",
    )
    summary.add_argument("months", nargs="+", type=_month, help="months, YYYY-MM")
    summary.add_argument("--warehouse", type=Path, default=None,
                         help="warehouse root (default: FAIRSTREAM_WAREHOUSE_DIR, else data/warehouse)")

    _command(sub, "db-upgrade", _cmd_db_upgrade,
             "migrate the application database (FAIRSTREAM_DATABASE_URL) to the newest schema")

    health = _command(
        sub, "health", _cmd_health,
        "check PostgreSQL, the daemon heartbeat, the last payout and the alert channels; exit 1 when unhealthy",
        "Print one JSON object with the checks postgres, daemon, payout and alerts (each with ok and "
        "detail) and the warnings. Exit 0 when every check is ok or only a warning (alerts are not "
        "configured, also printed to stderr as 'warning: ...'), 1 otherwise.",
    )
    health.add_argument("--heartbeat-tolerance", type=_positive_seconds, default=None, metavar="SECONDS",
                        help="maximum age of the newest daemon heartbeat (default 120)")
    health.add_argument("--now", type=_instant, default=None, metavar="ISO8601",
                        help="evaluate as of this time (default: now; without an offset, UTC)")

    status = _command(
        sub, "serve-status", _cmd_serve_status,
        "serve /health (200/503 with the health JSON) and /metrics (Prometheus) over HTTP",
        "An HTTP server for operators: GET /health answers 200 or 503 with the JSON of "
        "`fairstream health` (a Kubernetes probe); GET /metrics the Prometheus metrics of runs, "
        "the outbox, the last closed month and the daemon heartbeat (see docs/operations.md).",
    )
    status.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    status.add_argument("--port", type=_at_least(0), default=9108, help="port (default 9108; 0: any free port)")
    status.add_argument("--window-days", type=_positive_seconds, default=30.0,
                        help="run metrics cover runs created in the last N days (default 30)")


def _add_run_command(sub) -> None:
    """``run``: months as ``monthly_payout_job`` runs of the instance."""
    run = _command(
        sub, "run", _cmd_run,
        "run months as monthly_payout_job runs of the instance (DAGSTER_HOME), showing their steps",
        "Run each month, in order, as a run of monthly_payout_job launched through the workspace "
        "(queued when the daemon serves the run queue, else launched at once), print its steps as "
        "they run, and stop at the first month that fails. Exit 0 when every run succeeded, 1 "
        "otherwise: the last lines then name the failed step or check and why.",
    )
    run.add_argument("months", nargs="+", type=_month, help="months, YYYY-MM, in order")
    run.add_argument("-w", "--workspace", type=Path, default=None,
                     help="workspace file (default: ./workspace.yaml, else the project's)")
    run.add_argument("--config-json", default=None, metavar="JSON",
                     help='run config, e.g. \'{"execution": {"config": {"celery": {}}}}\'')


def _add_payments_command(sub) -> None:
    """``payments show|approve|ingest``: a closed month's payment batch."""
    payments = sub.add_parser(
        "payments",
        help="a closed month's payment batch: show it, approve (release) it, apply the bank's reports",
        description="The payment run (docs/payments.md). approve and ingest launch real runs of the instance (DAGSTER_HOME).",
    )
    actions = payments.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = _command(actions, "show", _cmd_payments_show,
                    "print the month's batch: id, count, control sum, status, holds")
    show.add_argument("month", type=_month, help="month, YYYY-MM")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.add_argument("--field", choices=["batch_id", "payments", "control_sum", "status"], default=None,
                      help="print only this field (for scripts: the demo approves with it)")
    approve = _command(
        actions, "approve", _cmd_payments_approve,
        "release the month's batch as its second approver; exit 0 only when it is released",
        "Launch approve_payment_batch for MONTH. Restate the batch's count and control sum as you "
        "reviewed them in the UI: on a mismatch nothing is released and the message says which differs.",
    )
    approve.add_argument("month", type=_month, help="month, YYYY-MM")
    approve.add_argument("--count", required=True, type=_at_least(0), help="the batch's number of payments")
    approve.add_argument("--control-sum", required=True, metavar="EUR", help="the batch's total in EUR, e.g. 1234.56")
    approve.add_argument("--approver", required=True, help="your name (the second person)")
    approve.add_argument("-w", "--workspace", type=Path, default=None, help="workspace file")
    ingest = _command(
        actions, "ingest", _cmd_payments_ingest,
        "apply the bank's new status reports from the landing zone's payment_reports/",
        "One ingest_payment_report run per new report; prints what each settled and returned.",
    )
    ingest.add_argument("-w", "--workspace", type=Path, default=None, help="workspace file")


def _cmd_payments_show(args: argparse.Namespace) -> int:
    from fairstream_pipeline.lib.lake.storage import Lake
    from fairstream_pipeline.payments_command import show
    from fairstream_pipeline.settings import get_settings

    return show(Lake(get_settings().warehouse_dir), args.month, args.json, args.field)


def _cmd_payments_approve(args: argparse.Namespace) -> int:
    from fairstream_pipeline.payments_command import approve, parse_eur
    from fairstream_pipeline.run_command import default_workspace

    parse_eur(args.control_sum)  # a bad amount is a usage error before anything is launched
    return approve(args.month, args.count, args.control_sum, args.approver, args.workspace or default_workspace())


def _cmd_payments_ingest(args: argparse.Namespace) -> int:
    from fairstream_pipeline.payments_command import ingest
    from fairstream_pipeline.run_command import default_workspace

    return ingest(args.workspace or default_workspace())


def _cmd_run(args: argparse.Namespace) -> int:
    from fairstream_pipeline.run_command import default_workspace, parse_run_config, run_months

    config = parse_run_config(args.config_json)
    return run_months(args.months, args.workspace or default_workspace(), config)


def _cmd_sample_bank_report(args: argparse.Namespace) -> int:
    from fairstream_pipeline.lib.format import eur
    from fairstream_pipeline.sample.bank_report import write_bank_report
    from fairstream_pipeline.settings import get_settings

    report = write_bank_report(get_settings().payments_out_dir, args.month, args.out, args.returns, args.seed)
    print(f"wrote {report.path}: {report.settled:,} payments of {report.batch_id} settled, {len(report.returned)} returned")
    for end_to_end_id, amount, reason in report.returned:
        print(f"  returned {end_to_end_id} {eur(amount)} ({reason})")
    return 0


def _cmd_db_upgrade(args: argparse.Namespace) -> int:
    from fairstream_pipeline.lib.app_db.schema import upgrade
    from fairstream_pipeline.settings import get_settings

    url = get_settings().database_url.get_secret_value()
    if not url:
        print("FAIRSTREAM_DATABASE_URL is not set", file=sys.stderr)
        return 1
    print(f"application database at revision {upgrade(url)}")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from fairstream_pipeline.lib.lake.storage import Lake, MissingPartitionError
    from fairstream_pipeline.lib.close.month_summary import summarize_month
    from fairstream_pipeline.settings import get_settings

    lake = Lake(args.warehouse or get_settings().warehouse_dir)
    for month in args.months:
        try:
            print(summarize_month(lake, month))
        except MissingPartitionError as exc:
            print(f"== {month}\nnot computed: {exc}", file=sys.stderr)
            return 1
    return 0


def _cmd_serve_status(args: argparse.Namespace) -> int:
    from fairstream_pipeline.status_server import serve

    serve(args.host, args.port, args.window_days)
    return 0


def _cmd_health(args: argparse.Namespace) -> int:
    from fairstream_pipeline.instance_status import read_heartbeats
    from fairstream_pipeline.lib.alerting.health import DEFAULT_HEARTBEAT_TOLERANCE_SECONDS, health_report

    tolerance = args.heartbeat_tolerance or DEFAULT_HEARTBEAT_TOLERANCE_SECONDS
    report = health_report(args.now or datetime.now(timezone.utc), read_heartbeats, tolerance)
    print(json.dumps(report, indent=2))
    for warning in report["warnings"]:  # not ok, but not unhealthy: the exit status ignores them
        print(f"warning: {warning}", file=sys.stderr)
    return 0 if report["ok"] else 1


def _cmd_sample(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    summary = generate_month(
        args.out,
        args.month,
        users=args.users,
        seed=args.seed,
        events=args.events,
        tracks=args.tracks,
    )
    elapsed = time.perf_counter() - started
    s = summary
    rate = s.rows_written / elapsed if elapsed > 0 else float("inf")
    lines = [
        f"wrote {s.month} to {args.out}: {s.rows_written:,} event rows in {s.event_files} files "
        f"over {s.days} days ({s.events_per_day_min:,}..{s.events_per_day_max:,} per day) "
        f"in {elapsed:.1f} s ({rate:,.0f} rows/s)",
        f"users: {s.users:,} in the base, {s.users_billed:,} billed ({s.paying_users:,} paying, "
        f"{s.free_users:,} free), {s.churned_users:,} churned, {s.silent_paying_users:,} silent paying, "
        f"{len(s.bot_user_ids)} bots, {len(s.looper_user_ids)} loopers",
        f"catalog: {s.tracks_in_catalog:,} tracks, {s.payees:,} payees "
        f"({s.payees_without_email} without email), {len(s.broken_split_track_ids)} broken splits, "
        f"{len(s.tracks_without_splits)} without splits; {s.uncataloged_track_plays:,} uncataloged plays; "
        f"payment details: {s.payees_with_valid_details:,} valid, {s.payees_with_invalid_details:,} invalid, "
        f"{s.payees_without_details:,} missing",
        f"anomalies: {s.invalid_rows} invalid, {s.outside_partition} outside partition, "
        f"{s.conflicting_duplicate_rows} conflicting-duplicate rows, {s.exact_duplicates:,} exact "
        f"duplicates, {s.unknown_user_events} unknown-user events; "
        f"expected clean plays {s.expected_clean_plays:,}",
    ]
    print("\n".join(lines), file=sys.stderr)
    print(json.dumps(summary.to_dict(), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        parser.error(str(exc))  # exits with status 2
    return 2  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

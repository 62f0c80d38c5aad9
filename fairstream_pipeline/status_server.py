"""``fairstream serve-status``: health and metrics over HTTP, for probes and Prometheus.

* ``GET /health``: 200 when ``fairstream health`` is ok, 503 otherwise, with its JSON either way
  (usable as a Kubernetes liveness or readiness probe).
* ``GET /metrics``: Prometheus text format, read fresh at every scrape:

  - ``fairstream_dagster_runs{job,status}``: runs created in the last ``--window-days`` (30) days;
  - ``fairstream_dagster_run_duration_seconds_sum`` / ``_count{job,status}``: their durations;
  - ``fairstream_dagster_last_run_duration_seconds{job,status}`` and
    ``fairstream_dagster_last_run_end_timestamp_seconds{job,status}``;
  - ``fairstream_outbox_messages{month,status}``, ``fairstream_outbox_dead_letters``,
    ``fairstream_outbox_oldest_pending_age_seconds`` (application database);
  - ``fairstream_last_closed_month_start_timestamp_seconds`` and
    ``fairstream_last_closed_month_info{month}``, ``fairstream_payout_overdue`` (0 or 1);
  - ``fairstream_payments_released_cents{month}``, ``fairstream_payments_released{month}`` (payments
    in the released batch), ``fairstream_payments_returned{month}`` and
    ``fairstream_payments_returned_cents{month}`` (returned by the bank) for every released month;
  - ``fairstream_daemon_heartbeat_age_seconds{daemon}`` (every daemon of the instance);
  - ``fairstream_metrics_source_up{source}``: 0 when a source (instance, app database, lake)
    could not be read at this scrape; its metrics are then missing, never made up.

Reads the same settings as the pipeline (``DAGSTER_HOME``, ``FAIRSTREAM_*``).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import dagster as dg
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from fairstream_pipeline.instance_status import heartbeats
from fairstream_pipeline.lib.notifications import outbox_queue
from fairstream_pipeline.lib.app_db.store import transaction
from fairstream_pipeline.lib.alerting.health import check_payout, completed_months, health_report
from fairstream_pipeline.lib.lake.storage import Lake
from fairstream_pipeline.lib.months import first_month, parse_month
from fairstream_pipeline.lib.payments.overview import batch_overview
from fairstream_pipeline.lib.assets import PAYMENT_RELEASE
from fairstream_pipeline.settings import get_settings

logger = logging.getLogger(__name__)


def _epoch(month: str) -> float:
    return datetime.combine(parse_month(month), datetime.min.time(), tzinfo=timezone.utc).timestamp()


class PipelineCollector(Collector):
    """Every metric, computed at scrape time from the instance, the app database and the lake."""

    def __init__(self, instance: dg.DagsterInstance, database_url: str, window_days: float = 30.0):
        self.instance, self.database_url, self.window_days = instance, database_url, window_days

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("fairstream_metrics_source_up", "Whether a source could be read at this scrape.",
                               labels=["source"])
        for source, metrics in (("instance", self._runs), ("instance_daemons", self._daemons),
                                ("app_database", self._outbox), ("lake", self._months), ("lake_payments", self._payments)):
            try:
                families = list(metrics())
            except Exception as exc:  # a scrape reports what it can; the source shows as down
                logger.warning("metrics: cannot read %s: %s: %s", source, type(exc).__name__, exc)
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from families
        yield up

    def _runs(self) -> Iterator[GaugeMetricFamily]:
        since = datetime.now(timezone.utc) - timedelta(days=self.window_days)
        records = self.instance.get_run_records(filters=dg.RunsFilter(created_after=since))
        counts: dict[tuple[str, str], int] = {}
        durations: dict[tuple[str, str], list[float]] = {}
        last: dict[tuple[str, str], tuple[float, float]] = {}
        for record in records:
            key = (record.dagster_run.job_name, record.dagster_run.status.value)
            counts[key] = counts.get(key, 0) + 1
            if record.start_time and record.end_time:
                duration = record.end_time - record.start_time
                durations.setdefault(key, []).append(duration)
                if key not in last or record.end_time > last[key][0]:
                    last[key] = (record.end_time, duration)
        runs = GaugeMetricFamily("fairstream_dagster_runs", f"Runs created in the last {self.window_days:g} days.",
                                 labels=["job", "status"])
        total = GaugeMetricFamily("fairstream_dagster_run_duration_seconds_sum",
                                  "Total duration of those runs that started and ended.", labels=["job", "status"])
        count = GaugeMetricFamily("fairstream_dagster_run_duration_seconds_count",
                                  "How many of those runs started and ended.", labels=["job", "status"])
        last_duration = GaugeMetricFamily("fairstream_dagster_last_run_duration_seconds",
                                          "Duration of the latest run to end.", labels=["job", "status"])
        last_end = GaugeMetricFamily("fairstream_dagster_last_run_end_timestamp_seconds",
                                     "When the latest run ended (Unix time).", labels=["job", "status"])
        for key, n in sorted(counts.items()):
            runs.add_metric(list(key), n)
        for key, values in sorted(durations.items()):
            total.add_metric(list(key), sum(values))
            count.add_metric(list(key), len(values))
            last_end.add_metric(list(key), last[key][0])
            last_duration.add_metric(list(key), last[key][1])
        yield from (runs, total, count, last_duration, last_end)

    def _daemons(self) -> Iterator[GaugeMetricFamily]:
        now = datetime.now(timezone.utc).timestamp()
        ages = GaugeMetricFamily("fairstream_daemon_heartbeat_age_seconds",
                                 "Seconds since each daemon's latest heartbeat.", labels=["daemon"])
        for daemon, beat in sorted(heartbeats(self.instance).items()):
            ages.add_metric([daemon], now - beat)
        yield ages

    def _outbox(self) -> Iterator[GaugeMetricFamily]:
        if not self.database_url:
            return
        with transaction(self.database_url) as cursor:
            by_month = outbox_queue.counts_by_month(cursor)
            oldest = outbox_queue.oldest_waiting_age_seconds(cursor)
        messages = GaugeMetricFamily("fairstream_outbox_messages", "Statement emails per month and status.",
                                     labels=["month", "status"])
        for (month, status), n in sorted(by_month.items()):
            messages.add_metric([month, status], n)
        dead = GaugeMetricFamily("fairstream_outbox_dead_letters", "Dead letters, all months.")
        dead.add_metric([], sum(n for (_, status), n in by_month.items() if status == "dead"))
        age = GaugeMetricFamily("fairstream_outbox_oldest_pending_age_seconds",
                                "Age of the oldest message still to send (pending or retry); 0 when none.")
        age.add_metric([], oldest)
        yield from (messages, dead, age)

    def _months(self) -> Iterator[GaugeMetricFamily]:
        now, first = datetime.now(timezone.utc), first_month()
        closed = completed_months(get_settings().warehouse_dir, first, now)
        overdue = GaugeMetricFamily("fairstream_payout_overdue",
                                    "1 when the month due by now (the 3rd) is not closed.")
        overdue.add_metric([], 0 if check_payout(now, first, closed).ok else 1)
        yield overdue
        if closed:
            start = GaugeMetricFamily("fairstream_last_closed_month_start_timestamp_seconds",
                                      "Start (Unix time) of the latest month that is closed.")
            start.add_metric([], _epoch(closed[-1]))
            info = GaugeMetricFamily("fairstream_last_closed_month_info", "The latest month that is closed.",
                                     labels=["month"])
            info.add_metric([closed[-1]], 1)
            yield from (start, info)


    def _payments(self) -> Iterator[GaugeMetricFamily]:
        """What each released batch paid out and what the bank returned, from the lake."""
        lake = Lake(get_settings().warehouse_dir)
        now, first = datetime.now(timezone.utc), first_month()
        families = {
            "released_cents": GaugeMetricFamily("fairstream_payments_released_cents",
                                                "Cents in the month's released payment batch.", labels=["month"]),
            "released": GaugeMetricFamily("fairstream_payments_released",
                                          "Payments in the month's released payment batch.", labels=["month"]),
            "returned": GaugeMetricFamily("fairstream_payments_returned",
                                          "Payments of the month's batch that the bank returned.", labels=["month"]),
            "returned_cents": GaugeMetricFamily("fairstream_payments_returned_cents",
                                                "Cents of the month's batch that the bank returned.", labels=["month"]),
        }
        for month in completed_months(get_settings().warehouse_dir, first, now):
            if not lake.exists(PAYMENT_RELEASE, month):
                continue
            o = batch_overview(lake, month)
            families["released_cents"].add_metric([month], o["control_sum_cents"])
            families["released"].add_metric([month], o["payments"])
            families["returned"].add_metric([month], o["returned"])
            families["returned_cents"].add_metric([month], o["returned_cents"])
        yield from families.values()


def make_handler(registry: CollectorRegistry, instance: dg.DagsterInstance):
    class StatusHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path.split("?")[0] == "/metrics":
                self._reply(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif self.path.split("?")[0] == "/health":
                report = health_report(datetime.now(timezone.utc), lambda: heartbeats(instance))
                body = json.dumps(report, indent=2, sort_keys=True).encode()
                self._reply(200 if report["ok"] else 503, "application/json", body)
            else:
                self._reply(404, "text/plain", b"not found: try /health or /metrics\n")

        def _reply(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args) -> None:
            logger.info("%s %s", self.address_string(), fmt % args)

    return StatusHandler


def serve(host: str, port: int, window_days: float = 30.0) -> None:
    """Serve /health and /metrics until interrupted."""
    instance = dg.DagsterInstance.get()
    registry = CollectorRegistry(auto_describe=False)
    database_url = get_settings().database_url.get_secret_value()
    registry.register(PipelineCollector(instance, database_url, window_days))
    server = ThreadingHTTPServer((host, port), make_handler(registry, instance))
    print(f"fairstream status on http://{host}:{server.server_port} (/health, /metrics)", flush=True)
    # SIGTERM (Kubernetes, systemd) stops it like Ctrl-C, whatever the parent left the signal at
    # (a process started from a background job may inherit SIGTERM ignored).
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        instance.dispose()

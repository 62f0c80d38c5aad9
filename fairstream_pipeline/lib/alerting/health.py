"""Health of a deployment: the instance's PostgreSQL, the Dagster daemon, the monthly payout.

``fairstream health`` prints ``{"ok": ..., "now": ..., "checks": {"postgres": ..., "daemon": ...,
"payout": ..., "alerts": ...}, "warnings": [...]}`` (each check has ``ok`` and ``detail``; a warning
check also has ``"warning": true``) and exits 0 when every check is ok or only a warning, else 1.
A warning is not ok but does not make the deployment unhealthy (``/health`` stays 200): restarting
would not fix it. Each warning's detail is in ``warnings`` and on stderr as ``warning: <detail>``.

* ``postgres``: a psycopg2 connection (``connect_timeout`` 3 s, then ``SELECT 1``) to
  ``FAIRSTREAM_PG_HOST``/``PORT`` (default 5432)/``USER``/``PASSWORD``/``DB``. Without
  ``FAIRSTREAM_PG_HOST`` it is ok: "not configured (embedded instance)".

The settings come from ``fairstream_pipeline.settings``; one that does not parse (``FAIRSTREAM_PG_PORT:
expected an integer, got 'x'``) fails the postgres, payout and alerts checks with its message.
* ``daemon``: the newest heartbeat of any daemon in the instance of ``DAGSTER_HOME`` is younger than
  the tolerance (default 120 s; the daemon beats every ~30 s). No heartbeat at all is not ok. When
  the PostgreSQL check failed the instance is not opened (it would only retry and fail).
* ``payout``: the payout of month M is due on day ``PAYOUT_DUE_DAY`` (3) of month M+1 at 00:00 UTC
  and is complete when M is closed (``period_close`` for M is in the lake, ``FAIRSTREAM_WAREHOUSE_DIR``):
  a closed month's statements are final and published. Not ok when the most recent month whose due
  time has come (due time <= now) and that is not before ``FAIRSTREAM_FIRST_MONTH`` is not closed.
  Reports ``last_completed_month`` (the newest ended month that is closed), ``due_month`` and ``due_at``.
* ``alerts`` (a warning): the failure alerts have a channel, ``FAIRSTREAM_ALERT_WEBHOOK_URL`` or
  ``FAIRSTREAM_SMTP_HOST`` (``channels``); without one: "alerts are not configured: set
  FAIRSTREAM_ALERT_WEBHOOK_URL or FAIRSTREAM_SMTP_HOST".

The decisions are pure functions of plain values (``check_payout``, ``check_heartbeats``); the
``probe_*`` functions do the I/O. Nothing here imports Dagster: the caller passes the function that
reads the daemon heartbeats (``fairstream_pipeline.instance_status``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Collection, Mapping

from fairstream_pipeline.lib.alerting.alerts import ALERTS_NOT_CONFIGURED, alert_channels
from fairstream_pipeline.lib.assets import CLOSE
from fairstream_pipeline.lib.months import month_key, next_month_start, parse_month, previous_month
from fairstream_pipeline.lib.payouts.rules import PAYOUT_DUE_DAY

if TYPE_CHECKING:
    from fairstream_pipeline.settings import Settings

DEFAULT_HEARTBEAT_TOLERANCE_SECONDS = 120.0
PG_CONNECT_TIMEOUT_SECONDS = 3
NOT_CONFIGURED = "not configured (embedded instance)"


@dataclass(frozen=True)
class Check:
    """The outcome of one health check; a ``warning`` check that is not ok leaves the deployment healthy."""

    ok: bool
    detail: str
    data: Mapping[str, Any] = field(default_factory=dict)
    warning: bool = False

    @property
    def healthy(self) -> bool:
        return self.ok or self.warning

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, **({"warning": True} if self.warning else {}), **self.data}


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def payout_due_at(month: str) -> datetime:
    """When the payout of ``month`` is due: day ``PAYOUT_DUE_DAY`` of the next month, 00:00 UTC."""
    start = next_month_start(month) + timedelta(days=PAYOUT_DUE_DAY - 1)
    return datetime.combine(start, time(0), tzinfo=timezone.utc)


def latest_due_month(now: datetime) -> str:
    """The most recent month whose payout due time is at or before ``now``."""
    shifted = now.astimezone(timezone.utc) - timedelta(days=PAYOUT_DUE_DAY - 1)
    return previous_month(month_key(shifted.date()))


def last_closed_month(now: datetime) -> str:
    return previous_month(month_key(now.astimezone(timezone.utc).date()))


def months_between(first: str, last: str) -> list[str]:
    """Every month from ``first`` to ``last`` inclusive (empty when ``last`` < ``first``)."""
    months, current = [], parse_month(first)
    end = parse_month(last)
    while current <= end:
        months.append(month_key(current))
        current = next_month_start(month_key(current))
    return months


def check_payout(now: datetime, first_month: str, completed: Collection[str]) -> Check:
    """Whether the payout that is due by ``now`` is done; ``completed``: the closed months."""
    last = max(completed) if completed else None
    due = latest_due_month(now)
    if due < first_month:
        return Check(
            True,
            f"no payout due yet: the first month {first_month} is due {iso(payout_due_at(first_month))}",
            {"last_completed_month": last, "due_month": None, "due_at": None},
        )
    data = {"last_completed_month": last, "due_month": due, "due_at": iso(payout_due_at(due))}
    if due in completed:
        return Check(True, f"payout for {due} is complete (due {data['due_at']})", data)
    return Check(
        False,
        f"payout for {due} is overdue: due {data['due_at']}, {due} is not closed (no period_close); "
        f"last completed month: {last or 'none'}",
        data,
    )


def check_heartbeats(now: datetime, heartbeats: Mapping[str, float], tolerance_seconds: float) -> Check:
    """Whether the newest daemon heartbeat (``{daemon_type: unix timestamp}``) is younger than the tolerance."""
    if not heartbeats:
        return Check(
            False,
            "no daemon heartbeat in the instance: is dagster-daemon running?",
            {"newest_heartbeat_age_seconds": None, "tolerance_seconds": tolerance_seconds},
        )
    now_ts = now.timestamp()
    ages = {daemon: round(now_ts - ts, 1) for daemon, ts in sorted(heartbeats.items())}
    newest_daemon = max(heartbeats, key=lambda d: heartbeats[d])
    age = now_ts - heartbeats[newest_daemon]
    data = {
        "newest_heartbeat_age_seconds": round(age, 1),
        "tolerance_seconds": tolerance_seconds,
        "heartbeat_ages_seconds": ages,
    }
    if age < tolerance_seconds:
        return Check(True, f"newest heartbeat {age:.0f} s ago ({newest_daemon})", data)
    return Check(
        False,
        f"newest heartbeat {age:.0f} s ago ({newest_daemon}), older than {tolerance_seconds:g} s: "
        "is dagster-daemon running?",
        data,
    )


def check_alerts(webhook_url: str, smtp_host: str) -> Check:
    """Whether the failure alerts have a channel (a warning when not)."""
    channels = alert_channels(webhook_url, smtp_host)
    if not channels:
        return Check(False, ALERTS_NOT_CONFIGURED, {"channels": []}, warning=True)
    return Check(True, f"failure alerts go to {' and '.join(channels)}", {"channels": channels})


@dataclass(frozen=True)
class PostgresTarget:
    host: str
    port: int
    user: str
    password: str
    dbname: str

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}/{self.dbname}"


def postgres_target(settings: Settings) -> PostgresTarget | None:
    """The instance's PostgreSQL from ``FAIRSTREAM_PG_*``, or ``None`` when no host is set."""
    if not settings.pg_host:
        return None
    return PostgresTarget(
        host=settings.pg_host,
        port=settings.pg_port,
        user=settings.pg_user,
        password=settings.pg_password.get_secret_value(),
        dbname=settings.pg_db,
    )


def probe_postgres(target: PostgresTarget | None) -> Check:
    """Connect to ``target`` and run ``SELECT 1``."""
    if target is None:
        return Check(True, NOT_CONFIGURED)
    import psycopg2

    try:
        connection = psycopg2.connect(
            host=target.host,
            port=target.port,
            user=target.user,
            password=target.password,
            dbname=target.dbname,
            connect_timeout=PG_CONNECT_TIMEOUT_SECONDS,
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        finally:
            connection.close()
    except psycopg2.Error as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return Check(False, f"cannot reach {target.where}: {first_line}")
    return Check(True, f"reachable at {target.where}")


def probe_daemon(
    now: datetime, tolerance_seconds: float, postgres: Check, read_heartbeats: Callable[[], Mapping[str, float]]
) -> Check:
    if not postgres.ok:
        return Check(False, "not checked: the instance's PostgreSQL is unreachable")
    try:
        heartbeats = read_heartbeats()
    except Exception as exc:  # any failure to open the instance is a finding, not a crash
        first_line = (str(exc).strip().splitlines() or [""])[0].strip()
        return Check(False, f"cannot read the Dagster instance: {type(exc).__name__}: {first_line}")
    return check_heartbeats(now, heartbeats, tolerance_seconds)


def completed_months(warehouse: str, first_month: str, now: datetime) -> list[str]:
    """Ended months from ``first_month`` that are closed (``period_close`` is in the lake)."""
    from fairstream_pipeline.lib.lake.storage import Lake

    lake = Lake(warehouse)
    return [m for m in months_between(first_month, last_closed_month(now)) if lake.exists(CLOSE, m)]


def probe_payout(now: datetime, warehouse: str) -> Check:
    from fairstream_pipeline.lib.months import first_month

    try:
        first = first_month()
    except ValueError as exc:
        return Check(False, str(exc))
    return check_payout(now, first, completed_months(warehouse, first, now))


def health_report(
    now: datetime,
    read_heartbeats: Callable[[], Mapping[str, float]],
    heartbeat_tolerance_seconds: float = DEFAULT_HEARTBEAT_TOLERANCE_SECONDS,
) -> dict[str, Any]:
    """Run every check against the environment's deployment; the JSON-able report.

    ``read_heartbeats`` returns ``{daemon_type: unix timestamp}`` from the Dagster instance (see
    ``fairstream_pipeline.instance_status``); it may raise when the instance cannot be read.
    """
    from fairstream_pipeline.settings import get_settings

    try:
        settings = get_settings()
    except ValueError as exc:  # a setting that does not parse: every check that needs one says so
        postgres = payout = alerts = Check(False, str(exc))
    else:
        postgres = probe_postgres(postgres_target(settings))
        payout = probe_payout(now, settings.warehouse_dir)
        alerts = check_alerts(settings.alert_webhook_url.get_secret_value(), settings.smtp_host)
    checks = {
        "postgres": postgres,
        "daemon": probe_daemon(now, heartbeat_tolerance_seconds, postgres, read_heartbeats),
        "payout": payout,
        "alerts": alerts,
    }
    return {
        "ok": all(c.healthy for c in checks.values()),
        "now": iso(now),
        "checks": {name: c.to_dict() for name, c in checks.items()},
        "warnings": [c.detail for c in checks.values() if not c.ok and c.warning],
    }

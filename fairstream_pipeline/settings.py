"""Configuration: every ``FAIRSTREAM_*`` environment variable, typed, in one class (docs/configuration.md).

``get_settings()`` reads the environment each time it is called (never at import), so a value
changed for a test or a process is seen by the next reader. An empty variable means its default.
A value that does not parse fails the call with a ``ValueError`` that starts with the variable's
name (``FAIRSTREAM_SMTP_STARTTLS: expected true or false, got 'maybe'``). The month and bucket
ranges are checked where those values are used: ``lib.months.first_month()`` and
``lib.ingestion.user_buckets.user_buckets()``. This module imports nothing of the project.

Secrets are ``SecretStr`` (shown as ``**********``); the Dagster resources still pass them as
``dg.EnvVar``, so a secret is resolved in the run's process and never becomes a literal in its config.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "FAIRSTREAM_"
DEFAULT_UI_BASE_URL = "http://127.0.0.1:3000"
TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


class Settings(BaseSettings):
    """Every ``FAIRSTREAM_*`` setting: the field ``smtp_host`` is the variable ``FAIRSTREAM_SMTP_HOST``, and so on."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, use_attribute_docstrings=True, frozen=True
    )

    # --- the lake and DuckDB ---
    landing_dir: str = "data/landing"
    """Root of the landing zone (relative to the working directory)."""
    warehouse_dir: str = "data/warehouse"
    """Root of the lake the assets write."""
    first_month: str = "2024-01"
    """The first monthly partition (``YYYY-MM``, checked by ``lib.months.first_month()``); it opens with zero balances."""
    duckdb_memory_limit: str = "4GB"
    """DuckDB's memory limit per step."""
    duckdb_threads: int | None = None
    """DuckDB threads per step; empty: every core."""
    duckdb_temp_dir: str = ""
    """Where DuckDB spills; empty: ``<warehouse>/.duckdb_tmp``."""
    user_buckets: int | None = None
    """How many user buckets a month is sharded into when it is ingested (1-1024, checked by
    ``lib.ingestion.user_buckets.user_buckets()``); empty: one per ``plays_per_user_bucket`` landing rows, at least 8."""
    plays_per_user_bucket: int = 25_000_000
    """With ``user_buckets`` empty: about how many plays each user bucket gets."""

    # --- retries and the sensor ---
    landing_wait_retries: int = 6
    """How often the first step retries while the month is incomplete."""
    landing_wait_delay_seconds: float = 600
    """Its first wait; each next one doubles (+/- jitter)."""
    database_write_retries: int = 4
    """How often a step that writes the application database retries while it is unreachable."""
    database_write_delay_seconds: float = 5
    """Its first wait; each next one doubles (+/- jitter)."""
    sensor_interval_seconds: int = 60
    """How often the landing-zone sensor looks."""

    # --- closing and publishing ---
    auto_close: bool = True
    """Whether a run that computes a month's statements also closes it; false: it leaves a draft."""
    database_url: SecretStr = SecretStr("")
    """The application database (``postgresql://...``); empty: not configured. Secret."""
    message_id_domain: str = "statements.fairstream.example"
    """The domain part of statement emails' Message-IDs."""

    # --- payment runs ---
    payments_debtor_name: str = ""
    """FairStream's name as the debtor of the SEPA payment files; empty: payment batches are not configured."""
    payments_debtor_iban: SecretStr = SecretStr("")
    """FairStream's IBAN, debited by the payment batches; empty: not configured. Never logged."""
    payments_debtor_bic: str = ""
    """FairStream's BIC (optional; it must be of the IBAN's country)."""
    payments_out_dir: str = "data/payments"
    """Where a released payment file is written (``<MsgId>.xml``, mode 0600) for the bank connector or finance."""

    # --- mail: the relay, statement emails, alerts ---
    smtp_host: str = ""
    """The mail relay, for alert and statement emails; empty: no email."""
    smtp_port: int = 587
    """The relay's port."""
    smtp_starttls: bool = True
    """Whether to use STARTTLS with the relay."""
    smtp_user: SecretStr = SecretStr("")
    """The relay login; empty: no login. Secret."""
    smtp_password: SecretStr = SecretStr("")
    """The relay password. Secret."""
    mail_from: str = ""
    """The From address of statement emails; required to send them."""
    mail_rate_per_second: float = 10
    """The statement sender's rate limit, messages per second for all senders together; 0: no limit."""
    alert_webhook_url: SecretStr = SecretStr("")
    """Where failure alerts are posted as JSON; empty: no webhook. Secret."""
    alert_from: str = ""
    """The sender of alert emails."""
    alert_to: str = ""
    """Comma-separated recipients of alert emails."""
    ui_base_url: str = DEFAULT_UI_BASE_URL
    """The Dagster UI's address, for the run links in alerts and ``fairstream run``."""

    # --- the Dagster instance and Celery ---
    pg_host: str = ""
    """PostgreSQL of the Dagster instance (``dagster.yaml``, ``fairstream health``); empty: not configured."""
    pg_port: int = 5432
    """Its port."""
    pg_db: str = ""
    """Its database."""
    pg_user: str = ""
    """Its user."""
    pg_password: SecretStr = SecretStr("")
    """Its password. Secret."""
    celery_broker: SecretStr = SecretStr("pyamqp://guest:guest@127.0.0.1:5672//")
    """The broker of a run that chooses Celery without naming one (its URL may hold a password). Secret."""
    celery_backend: str = "rpc://"
    """Its result backend."""
    rabbitmqctl: str = ""
    """The ``rabbitmqctl`` that the local Celery workers use; empty: the one on PATH, else ``/usr/sbin/rabbitmqctl``."""

    # --- the fault tests ---
    fault_point: str = ""
    """Tests only: the fault point at which the process kills itself (``lib.lake.faults``)."""
    fault_pause_file: str = ""
    """Tests only: hold at the fault point until this file is deleted, instead of dying."""

    @field_validator("auto_close", "smtp_starttls", mode="before")
    @classmethod
    def _true_or_false(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        value = value.strip().lower()
        if value in TRUE:
            return True
        if value in FALSE:
            return False
        raise ValueError(f"expected true or false, got {value!r}")

    @field_validator(
        "duckdb_threads", "user_buckets", "plays_per_user_bucket", "landing_wait_retries", "database_write_retries",
        "sensor_interval_seconds", "smtp_port", "pg_port", mode="before",
    )
    @classmethod
    def _integer(cls, value: Any) -> Any:
        return _parse(value, int, "an integer")

    @field_validator("landing_wait_delay_seconds", "database_write_delay_seconds", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        return _parse(value, float, "a number of seconds")

    @field_validator("mail_rate_per_second", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        rate = _parse(value, float, "a number of messages per second")
        if rate < 0:
            raise ValueError(f"must be >= 0 (0: no limit), got {value!r}")
        return rate


def _parse(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"expected {what}, got {value!r}") from None


def env_name(field: str) -> str:
    """The environment variable of the setting ``field`` (``smtp_host`` -> ``FAIRSTREAM_SMTP_HOST``)."""
    return ENV_PREFIX + field.upper()


def get_settings() -> Settings:
    """The settings as the environment has them now; a bad value raises a ``ValueError`` naming its variable."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ValueError("; ".join(_describe(error) for error in exc.errors())) from None


def _describe(error: Any) -> str:
    cause = error.get("ctx", {}).get("error")
    return f"{env_name(str(error['loc'][0]))}: {cause if cause is not None else error['msg']}"


def auto_close() -> bool:
    """Whether a run that computes a month's draft also closes it (``FAIRSTREAM_AUTO_CLOSE``)."""
    return get_settings().auto_close

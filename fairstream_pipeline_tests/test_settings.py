"""The settings: one typed class for every FAIRSTREAM_* variable, in step with the table of docs/configuration.md."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from fairstream_pipeline.lib.notifications.smtp import SmtpSettings
from fairstream_pipeline.lib.ingestion.user_buckets import user_buckets
from fairstream_pipeline.lib.months import first_month
from fairstream_pipeline.settings import Settings, env_name, get_settings

CONFIGURATION_DOC = Path(__file__).parents[1] / "docs" / "configuration.md"
PACKAGE = Path(__file__).parents[1] / "fairstream_pipeline"
ROW = re.compile(r"^\| `(FAIRSTREAM_[A-Z_]+)` \| (.+?) \| (.+) \|$")
SECRETS = {"database_url", "smtp_user", "smtp_password", "alert_webhook_url", "pg_password", "payments_debtor_iban", "celery_broker"}


def documented_settings() -> dict[str, str]:
    """``{variable: default cell}`` of the table in docs/configuration.md ("Environment variables")."""
    section = CONFIGURATION_DOC.read_text().split("## Environment variables\n", 1)[1].split("\n## ", 1)[0]
    return {m.group(1): m.group(2) for line in section.splitlines() if (m := ROW.match(line))}


def documented_default(value: object) -> str:
    """How docs/configuration.md writes a default: ``(empty...)`` for nothing, else the value in backticks."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value in ("", None):
        return "(empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def test_the_configuration_doc_lists_every_setting_with_its_default():
    table = documented_settings()
    fields = {env_name(name): field.default for name, field in Settings.model_fields.items()}
    assert sorted(table) == sorted(fields)
    for name, default in fields.items():
        cell = table[name]
        expected = documented_default(default)
        assert (cell.startswith(expected) if expected == "(empty" else cell == expected), (name, cell, expected)


def test_every_variable_the_package_names_is_a_setting():
    named = set()
    for path in [*PACKAGE.rglob("*.py"), PACKAGE.parent / "dagster.yaml"]:
        named.update(re.findall(r"\bFAIRSTREAM_[A-Z_]*[A-Z]\b", path.read_text()))
    assert named - {env_name(name) for name in Settings.model_fields} == set()


def test_every_setting_says_what_it_does():
    assert [name for name, field in Settings.model_fields.items() if not field.description] == []


def test_the_environment_is_read_at_each_call(monkeypatch):
    assert get_settings().smtp_host == ""
    monkeypatch.setenv("FAIRSTREAM_SMTP_HOST", "smtp.fairstream.test")
    monkeypatch.setenv("FAIRSTREAM_SMTP_PORT", "2525")
    monkeypatch.setenv("FAIRSTREAM_AUTO_CLOSE", "Off")
    settings = get_settings()
    assert (settings.smtp_host, settings.smtp_port, settings.auto_close) == ("smtp.fairstream.test", 2525, False)


@pytest.mark.parametrize("name", ["SMTP_PORT", "SMTP_STARTTLS", "AUTO_CLOSE", "FIRST_MONTH", "DUCKDB_THREADS",
                                  "MAIL_RATE_PER_SECOND", "UI_BASE_URL", "DATABASE_URL", "USER_BUCKETS"])
def test_an_empty_variable_means_the_default(monkeypatch, name):
    field = name.lower()
    monkeypatch.setenv(f"FAIRSTREAM_{name}", "")
    assert getattr(get_settings(), field) == Settings.model_fields[field].default


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("TRUE", True), (" yes ", True), ("On", True), ("0", False), ("false", False), ("NO", False),
     ("off", False)],
)
def test_true_or_false_in_any_case(monkeypatch, value, expected):
    monkeypatch.setenv("FAIRSTREAM_SMTP_STARTTLS", value)
    assert get_settings().smtp_starttls is expected


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("FAIRSTREAM_SMTP_STARTTLS", "maybe", "FAIRSTREAM_SMTP_STARTTLS: expected true or false, got 'maybe'"),
        ("FAIRSTREAM_SMTP_PORT", "smtp", "FAIRSTREAM_SMTP_PORT: expected an integer, got 'smtp'"),
        ("FAIRSTREAM_PG_PORT", "5432x", "FAIRSTREAM_PG_PORT: expected an integer, got '5432x'"),
        ("FAIRSTREAM_LANDING_WAIT_DELAY_SECONDS", "soon",
         "FAIRSTREAM_LANDING_WAIT_DELAY_SECONDS: expected a number of seconds, got 'soon'"),
        ("FAIRSTREAM_MAIL_RATE_PER_SECOND", "fast",
         "FAIRSTREAM_MAIL_RATE_PER_SECOND: expected a number of messages per second, got 'fast'"),
        ("FAIRSTREAM_MAIL_RATE_PER_SECOND", "-1", r"FAIRSTREAM_MAIL_RATE_PER_SECOND: must be >= 0 \(0: no limit\), got '-1'"),
    ],
)
def test_a_bad_value_is_a_value_error_that_names_its_variable(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"^{message}$"):
        get_settings()


def test_months_and_buckets_out_of_range_fail_where_they_are_used(monkeypatch):
    monkeypatch.setenv("FAIRSTREAM_FIRST_MONTH", "2026-13")
    monkeypatch.setenv("FAIRSTREAM_USER_BUCKETS", "0")
    assert get_settings().smtp_port == 587  # the other settings are still readable
    with pytest.raises(ValueError, match="^FAIRSTREAM_FIRST_MONTH: '2026-13' is not a month key"):
        first_month()
    with pytest.raises(ValueError, match="^FAIRSTREAM_USER_BUCKETS: the number of user buckets must be an integer"):
        user_buckets(1_000)


@pytest.mark.parametrize(
    ("setting", "event_rows", "expected"),
    [(None, 0, 8), (None, 200_000_000, 8), (None, 200_000_001, 9), (None, 400_000_000, 16),
     (None, 1_000_000_000, 40), (None, 10**12, 1024), ("3", 1_000_000_000, 3), ("1", 0, 1)],
)
def test_the_user_buckets_are_the_setting_or_one_per_25m_plays_at_least_8(monkeypatch, setting, event_rows, expected):
    if setting is None:
        monkeypatch.delenv("FAIRSTREAM_USER_BUCKETS", raising=False)
    else:
        monkeypatch.setenv("FAIRSTREAM_USER_BUCKETS", setting)
    assert user_buckets(event_rows) == expected


def test_the_plays_per_bucket_can_be_set_and_must_be_positive(monkeypatch):
    monkeypatch.delenv("FAIRSTREAM_USER_BUCKETS", raising=False)
    monkeypatch.setenv("FAIRSTREAM_PLAYS_PER_USER_BUCKET", "1000")
    assert user_buckets(20_001) == 21
    monkeypatch.setenv("FAIRSTREAM_PLAYS_PER_USER_BUCKET", "0")
    with pytest.raises(ValueError, match="^FAIRSTREAM_PLAYS_PER_USER_BUCKET: plays per user bucket must be at least 1, got 0$"):
        user_buckets(20_001)


def test_secrets_never_show_in_a_repr(monkeypatch):
    for field in SECRETS:
        monkeypatch.setenv(env_name(field), f"s3cret-{field}")
    settings = get_settings()
    assert {name for name, field in Settings.model_fields.items() if field.annotation is SecretStr} == SECRETS
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings.model_dump())
    assert settings.smtp_password.get_secret_value() == "s3cret-smtp_password"
    assert "hunter2" not in repr(SmtpSettings("smtp.fairstream.test", user="mailer", password="hunter2"))


IMPORT_EVERY_MODULE = """
import pkgutil, importlib, sys
import fairstream_pipeline
names = sorted(m.name for m in pkgutil.walk_packages(fairstream_pipeline.__path__, "fairstream_pipeline."))
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def test_importing_every_module_reads_no_setting():
    """Settings are read when used: with every FAIRSTREAM_* variable garbage, every module of the
    package still imports (the definitions are built by the loader, the steps read at run time),
    while reading the settings fails, naming the first bad variable."""
    import subprocess
    import sys

    garbage = {env_name(field): "garbage!" for field in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAIRSTREAM_")} | garbage
    read = subprocess.run(
        [sys.executable, "-c", "from fairstream_pipeline.settings import get_settings; get_settings()"],
        env=env, capture_output=True, text=True, check=False,
    )
    assert read.returncode != 0 and "ValueError: FAIRSTREAM_" in read.stderr, read.stderr
    imported = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERY_MODULE], env=env, capture_output=True, text=True, check=False
    )
    assert imported.returncode == 0, imported.stderr
    # every module but the root package (imported first) and the Alembic scripts (run by Alembic)
    modules = [p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts and p != PACKAGE / "__init__.py"]
    assert int(imported.stdout.split()[-1]) == len(modules)

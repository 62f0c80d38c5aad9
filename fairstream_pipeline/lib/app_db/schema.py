"""The application database's schema: its Alembic migrations, run to the newest revision by ``upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).parent / "migrations"


def sqlalchemy_url(url: str) -> str:
    """Use the psycopg2 driver whatever the URL says (SQLAlchemy 2.1 maps ``postgresql://`` to psycopg 3)."""
    for prefix in ("postgresql+psycopg2://", "postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    raise ValueError(f"FAIRSTREAM_DATABASE_URL must be a postgresql:// URL, got {url.split('://')[0]}://...")


def _config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return config


def upgrade(url: str) -> str:
    """Migrate the database at ``url`` to the newest revision; return that revision."""
    command.upgrade(_config(url), "head")
    return head_revision()


def head_revision() -> str:
    return ScriptDirectory.from_config(_config("postgresql://localhost/x")).get_current_head()

"""Alembic, driven from Python: the service and the tests migrate without an alembic.ini.

The migration scripts live in the package (``intake/migrations``), so an installed wheel can
migrate its own database. To write a new revision from a shell::

    python -c "from alembic import command; from intake.storage.migrate import alembic_config; \
command.revision(alembic_config('sqlite:///instance/intake.db'), 'what changed', autogenerate=True)"

then review the generated file (and write the SQL out explicitly where autogenerate guesses).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from intake.storage.db import make_engine, normalize_url

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic Config for `url` with the package's migration scripts."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # The option value goes through ConfigParser interpolation: a '%' in a password must be doubled.
    rendered = normalize_url(url).render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def create_database_if_missing(url: str) -> bool:
    """Create the PostgreSQL database named in `url` when the server lacks it (True if made).

    For `make run-prod` and first deployments: the URL's user must be allowed to create
    databases. SQLite files are created on first connection, so nothing is done for them.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        return False
    engine = make_engine(parsed.set(database="postgres"))
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                        {"name": parsed.database}).scalar()
            if exists:
                return False
            quoted = connection.dialect.identifier_preparer.quote(parsed.database)
            connection.execute(text(f"CREATE DATABASE {quoted}"))
            return True
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (``alembic upgrade head``)."""
    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The database's revision, or None when it was never migrated."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()

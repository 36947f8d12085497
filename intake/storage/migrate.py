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

"""Alembic environment: the URL comes from the Config (see `intake.storage.migrate`), not an ini.

Online migrations connect through `intake.storage.db.make_engine`, so SQLite migrations run
with the same pragmas and ``BEGIN IMMEDIATE`` (SQLite DDL is transactional) as the service.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlalchemy import Connection, text

from intake.storage.db import make_engine, normalize_url
from intake.storage.models import Base, UTCDateTime

MIGRATION_LOCK = 0x1D7A_0001  # pg_advisory_xact_lock key held while migrating

config = context.config
target_metadata = Base.metadata


def _render_item(type_: str, obj: Any, _autogen_context: Any) -> str | Literal[False]:
    """Autogenerate writes the plain SQL type, so revisions do not import application types."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(*, sqlite: bool, **kwargs: Any) -> None:
    """Options shared by offline and online mode; batch mode because SQLite cannot ALTER much.

    ``transactional_ddl`` is set for SQLite too: Alembic assumes pysqlite's implicit transactions,
    which commit before DDL, but `make_engine` emits its own BEGIN, so SQLite DDL is transactional
    here and the whole upgrade can run in one transaction (see `_run`).
    """
    context.configure(
        target_metadata=target_metadata,
        render_as_batch=sqlite,
        transactional_ddl=True,
        render_item=_render_item,
        compare_type=True,
        **kwargs,
    )


def run_migrations_offline() -> None:
    """Emit SQL text instead of executing it (``alembic upgrade --sql``)."""
    url = normalize_url(config.get_main_option("sqlalchemy.url") or "")
    _configure(
        sqlite=url.get_backend_name() == "sqlite",
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    """Migrate in one transaction that first takes the migration lock.

    Several app instances may start (and upgrade) at once: on PostgreSQL an advisory lock makes
    them take turns, and the later ones find the database at head. On SQLite the transaction's
    ``BEGIN IMMEDIATE`` takes the write lock first and does the same.
    """
    _configure(sqlite=connection.dialect.name == "sqlite", connection=connection)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate over a caller's connection (``config.attributes["connection"]``) or a new engine."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set the sqlalchemy.url option on the Alembic Config")
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

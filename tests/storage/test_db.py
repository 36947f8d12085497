"""Engine settings, session scope and migrations."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from intake.storage import migrate
from intake.storage.db import (
    make_engine,
    make_session_factory,
    normalize_url,
    session_scope,
)
from intake.storage.models import Base, Patient

HEAD = "0015"  # the newest migration in intake/migrations/versions

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite engine, whatever database the rest of the suite runs on."""
    url = f"sqlite:///{tmp_path / 'pragmas.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def test_sqlite_pragmas_are_in_effect(sqlite_engine: Engine) -> None:
    names = ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
    with sqlite_engine.connect() as connection:
        values = [connection.exec_driver_sql(f"PRAGMA {name}").scalar() for name in names]
    assert values == ["wal", 2, 1, 30000]  # synchronous 2 is FULL


def test_sqlite_transactions_take_the_write_lock_at_begin(sqlite_engine: Engine) -> None:
    """A session that has only read still holds the write lock: BEGIN IMMEDIATE."""
    database = sqlite_engine.url.database
    assert database is not None
    with make_session_factory(sqlite_engine)() as session:
        session.execute(select(Patient)).all()
        other = sqlite3.connect(database, timeout=0, isolation_level=None)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()


def test_sqlite_read_only_sessions_do_not_block_writers(sqlite_engine: Engine) -> None:
    database = sqlite_engine.url.database
    assert database is not None
    with make_session_factory(sqlite_engine, read_only=True)() as session:
        session.execute(select(Patient)).all()
        other = sqlite3.connect(database, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        finally:
            other.close()


def test_sqlite_foreign_keys_are_enforced(sqlite_engine: Engine) -> None:
    with pytest.raises(IntegrityError, match="FOREIGN KEY"), sqlite_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO intakes (id, patient_id, questionnaires, status, created_at,"
                " updated_at) VALUES ('i', 'no-such-patient', '[]', 'not-started',"
                " '2025-01-01 00:00:00', '2025-01-01 00:00:00')"
            )
        )


@pytest.mark.parametrize(
    "url", ["postgresql://u@db/x", "postgres://u@db/x", "postgresql+psycopg://u@db/x"]
)
def test_postgresql_urls_use_psycopg3_with_pre_ping(url: str) -> None:
    assert normalize_url(url).drivername == "postgresql+psycopg"
    engine = make_engine(url)  # does not connect
    try:
        assert engine.dialect.driver == "psycopg"
        assert engine.pool._pre_ping
    finally:
        engine.dispose()


def test_unsupported_backends_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        make_engine("mysql://u@db/x")


def test_session_scope_commits_on_success_and_rolls_back_on_error(
    session_factory: sessionmaker[Session],
) -> None:
    with session_scope(session_factory) as session:
        session.add(Patient(name="Kept", birth_date=date(1980, 1, 1)))
    with pytest.raises(RuntimeError), session_scope(session_factory) as session:
        session.add(Patient(name="Dropped", birth_date=date(1980, 1, 1)))
        session.flush()
        raise RuntimeError("boom")
    with session_scope(session_factory) as session:
        assert session.scalars(select(Patient.name)).all() == ["Kept"]


def test_upgrade_on_an_empty_database_matches_the_models(empty_database_url: str) -> None:
    assert migrate.current_revision(empty_database_url) is None
    migrate.upgrade(empty_database_url)
    migrate.upgrade(empty_database_url)  # already at head: nothing to do
    assert migrate.current_revision(empty_database_url) == HEAD
    engine = make_engine(empty_database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            tables = set(inspect(connection).get_table_names())
    finally:
        engine.dispose()
    assert tables == set(Base.metadata.tables) | {"alembic_version"}


def test_migrated_constraint_and_index_names_are_the_models(database_url: str) -> None:
    """compare_metadata ignores names and CHECK constraints; later migrations rely on both."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            inspector = inspect(connection)
            for table in Base.metadata.sorted_tables:
                reflected = {
                    inspector.get_pk_constraint(table.name)["name"],
                    *(fk["name"] for fk in inspector.get_foreign_keys(table.name)),
                    *(uq["name"] for uq in inspector.get_unique_constraints(table.name)),
                    *(ck["name"] for ck in inspector.get_check_constraints(table.name)),
                    *(
                        ix["name"]
                        for ix in inspector.get_indexes(table.name)
                        if "duplicates_constraint" not in ix
                    ),
                }
                expected = {str(c.name) for c in table.constraints} | {
                    str(i.name) for i in table.indexes
                }
                assert reflected == expected, table.name
    finally:
        engine.dispose()


def test_concurrent_upgrades_take_turns(empty_database_url: str) -> None:
    """App instances may migrate at start-up together; none may fail creating the same table.

    Separate processes, as in production: Alembic's ``context`` is process-global, not
    thread-safe.
    """
    code = "import sys; from intake.storage import migrate; migrate.upgrade(sys.argv[1])"
    processes = [
        subprocess.Popen([sys.executable, "-c", code, empty_database_url], cwd=PROJECT_ROOT)
        for _ in range(3)
    ]
    assert [process.wait(timeout=60) for process in processes] == [0, 0, 0]
    assert migrate.current_revision(empty_database_url) == HEAD

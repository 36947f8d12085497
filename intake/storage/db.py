"""Engine and session set-up for the two supported databases.

SQLite is the embedded default, so it is configured for durability and for predictable locking:
WAL (readers never block the writer), ``synchronous=FULL`` (a committed answer survives a power
cut), foreign keys enforced, a generous busy timeout, and ``BEGIN IMMEDIATE`` so a transaction
takes the write lock when it starts instead of failing half-way with "database is locked" when it
first writes. PostgreSQL is production; it only needs the psycopg 3 driver and stale-connection
checks. The URL alone picks the database.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

#: Execution option marking a read-only engine/session (see `make_session_factory`).
READ_ONLY_OPTION = "intake_read_only"
#: Execution option marking sessions whose commits need not wait for the disk (see `make_session_factory`).
RELAXED_OPTION = "intake_relaxed_durability"

SQLITE_BUSY_TIMEOUT_MS = 30_000

# busy_timeout first, so the pragmas after it wait for a lock instead of failing at once.
_SQLITE_PRAGMAS = (
    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
)
#: Pause between attempts to switch a new database file to WAL while another process holds it.
_WAL_RETRY_PAUSE_S = 0.05


def normalize_url(url: str | URL) -> URL:
    """The URL with PostgreSQL pinned to psycopg 3 (``postgres://`` and ``postgresql://`` too).

    Hosting platforms hand out plain ``postgresql://`` (or legacy ``postgres://``) URLs, which
    SQLAlchemy would map to psycopg2; only psycopg 3 is installed.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL) -> Engine:
    """An engine for `url` (SQLite or PostgreSQL) with the settings described in the module doc."""
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = create_engine(parsed)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    if backend == "postgresql":
        engine = create_engine(parsed, pool_pre_ping=True)
        event.listen(engine, "begin", _postgresql_on_begin)
        return engine
    raise ValueError(f"unsupported database backend {backend!r}: use sqlite or postgresql")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    """Apply the pragmas and take transaction control away from pysqlite.

    ``isolation_level = None`` stops pysqlite's own implicit BEGIN (which it skips for SELECT and
    DDL); `_sqlite_on_begin` emits the BEGIN instead. This is SQLAlchemy's documented recipe.
    """
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(pragma)
        _switch_to_wal(cursor)
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """Put the database in WAL mode, waiting out other processes doing the same.

    Changing the journal mode needs the database to itself, and SQLite reports "database is
    locked" at once, without the busy handler, when another connection is opening the same new
    file (several workers or migrations starting together). Once a file is in WAL mode the pragma
    is a read and never waits.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(_WAL_RETRY_PAUSE_S)


def _sqlite_on_begin(conn: Any) -> None:
    """Start every transaction with the write lock, unless the connection is marked read-only;
    set `synchronous` for the kind of session (FULL, or NORMAL for relaxed ones) when it changes."""
    options = conn.get_execution_options()
    if options.get(READ_ONLY_OPTION):
        conn.exec_driver_sql("BEGIN")
        return
    wanted = "NORMAL" if options.get(RELAXED_OPTION) else "FULL"
    info = conn.connection.info
    if info.get("synchronous", "FULL") != wanted:
        conn.exec_driver_sql(f"PRAGMA synchronous={wanted}")
        info["synchronous"] = wanted
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _postgresql_on_begin(conn: Any) -> None:
    if conn.get_execution_options().get(RELAXED_OPTION):
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


def make_session_factory(engine: Engine, *, read_only: bool = False, relaxed: bool = False) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (views render after the transaction).

    All sessions start their SQLite transaction with ``BEGIN IMMEDIATE``, so even a pure read
    holds the single write lock until it ends. ``read_only=True`` gives sessions for pages that
    only read: a deferred ``BEGIN`` on SQLite (never blocks writers under WAL) and a
    ``READ ONLY`` transaction on PostgreSQL.

    ``relaxed=True`` gives write sessions whose commit does not wait for the disk: SQLite
    ``synchronous=NORMAL`` under WAL, PostgreSQL ``synchronous_commit=off``. A committed row
    survives the process being killed, but a power cut or OS crash can lose the last moments of
    them. Only for records whose loss then is tolerable (the audit rows of reads); a patient's
    answers always use the durable sessions.
    """
    bind = engine
    options: dict[str, Any] = {}
    if read_only:
        options[READ_ONLY_OPTION] = True
        if engine.dialect.name == "postgresql":
            options["postgresql_readonly"] = True
    if relaxed:
        options[RELAXED_OPTION] = True
    if options:
        bind = engine.execution_options(**options)
    return sessionmaker(bind=bind, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit when the block succeeds, roll back when it raises, then close."""
    with factory() as session, session.begin():
        yield session

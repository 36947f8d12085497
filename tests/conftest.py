"""Shared fixtures. Database: INTAKE_TEST_DATABASE_URL (PostgreSQL) when set, else a SQLite file.

The schema always comes from the Alembic migrations (never ``create_all``), so every test run
also tests the migrations.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import Engine, MetaData, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from intake.storage import migrate
from intake.storage.db import make_engine, make_session_factory

SERVER_URL = os.environ.get("INTAKE_TEST_DATABASE_URL") or None
_RUN_LOCK = 0x1D7A_4E  # pg advisory lock key: concurrent test runs on one server take turns


def _drop_all_tables(url: str) -> None:
    """Empty the server database completely, alembic_version included."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            metadata = MetaData()
            metadata.reflect(connection)
            metadata.drop_all(connection)
    finally:
        engine.dispose()


def _truncate_all_tables(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            names = [n for n in inspect(connection).get_table_names() if n != "alembic_version"]
            if names:
                # the audit log's append-only triggers (migration 0007) refuse TRUNCATE; a test
                # reset is the one place allowed to empty it, so triggers are off for this step
                connection.execute(text("SET LOCAL session_replication_role = replica"))
                quoted = ", ".join(connection.dialect.identifier_preparer.quote(n) for n in names)
                connection.execute(text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))
            if "audit_head" in names:  # the row migration 0004 seeds: the audit chain's genesis
                connection.execute(text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :genesis)"),
                                   {"genesis": "0" * 64})
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def server_database_url() -> Iterator[str | None]:
    """The PostgreSQL test database, emptied and migrated once per run; None means SQLite."""
    if SERVER_URL is None:
        yield None
        return
    engine = make_engine(SERVER_URL)
    try:
        with engine.connect() as lock:
            lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _RUN_LOCK})
            lock.commit()
            _drop_all_tables(SERVER_URL)
            migrate.upgrade(SERVER_URL)
            yield SERVER_URL
    finally:
        engine.dispose()  # closing the connection releases the advisory lock


@pytest.fixture
def empty_database_url(server_database_url: str | None, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all (the server one is re-migrated afterwards)."""
    if server_database_url is None:
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    _drop_all_tables(server_database_url)
    try:
        yield server_database_url
    finally:
        _drop_all_tables(server_database_url)
        migrate.upgrade(server_database_url)


@pytest.fixture
def database_url(server_database_url: str | None, tmp_path: Path) -> str:
    """A migrated database with no rows: a fresh SQLite file, or the truncated server one."""
    if server_database_url is None:
        url = f"sqlite:///{tmp_path / 'intake.db'}"
        migrate.upgrade(url)
        return url
    _truncate_all_tables(server_database_url)
    return server_database_url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose uncommitted work is rolled back at the end of the test.

    On SQLite its open transaction holds the write lock: tests that also write from other
    sessions or threads should use `session_factory` instead.
    """
    with session_factory() as session:
        yield session


class Receiver(BaseHTTPRequestHandler):
    """A staff-notification webhook receiver on 127.0.0.1 that records what it is sent."""

    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: ClassVar[list[dict[str, Any]]] = []
    handler = type("Handler", (Receiver,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()
    thread.join()

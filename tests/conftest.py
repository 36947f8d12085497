"""Shared fixtures. Database: INTAKE_TEST_DATABASE_URL (PostgreSQL) when set, else a SQLite file.

The schema always comes from the Alembic migrations (never ``create_all``), so every test run
also tests the migrations: once per run (per xdist worker), into a template SQLite file that
each test gets a copy of, or into the server database that each test gets truncated.

Under pytest-xdist (`-n 2`) each worker has its own PostgreSQL database, named after the run
and the worker, created at the start and dropped at the end.

The clinician PDF is rendered by a stand-in (tests/support/quick_pdf.py) unless the test is
marked `pdf`: WeasyPrint's second per intake was most of the suite's time.

Apps: `make_app(**overrides)` builds an app on the test's database with the test settings
(`app_config`) and closes it at the end; every test that needs an app of its own settings uses
it, so a new test setting is added in one place. `clock=` hands the app a `ManualClock`.

Hypothesis profiles (tests/support/sizes.py): `dev`, the default, runs the generated tests at a
small size; `ci` (`--hypothesis-profile=ci`, used by `make test-long`) at their full size.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pytest
from flask import Flask
from sqlalchemy import Engine, MetaData, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from intake import close_app, create_app, documents
from intake.storage import migrate
from intake.storage.db import make_engine, make_session_factory, normalize_url
from tests.support import sizes  # noqa: F401 (registers the Hypothesis profiles)
from tests.support.quick_pdf import quick_pdf

SERVER_URL = os.environ.get("INTAKE_TEST_DATABASE_URL") or None
_RUN_LOCK = 0x1D7A_4E  # pg advisory lock key: concurrent test runs on one server take turns
WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # "gw0", "gw1", ... under pytest-xdist, else None


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


def truncate_all_tables(url: str) -> None:
    """Empty every table of the server database but alembic_version (the genesis row put back)."""
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


def _worker_database(url: str, worker: str) -> str:
    """This xdist worker's own database on the server: `<test database>_<run>_<worker>`."""
    parsed = normalize_url(url)
    run = "".join(c for c in os.environ.get("PYTEST_XDIST_TESTRUNUID", "run") if c.isalnum())[:8].lower()
    return parsed.set(database=f"{parsed.database}_{run}_{worker}").render_as_string(hide_password=False)


def _drop_database(url: str) -> None:
    parsed = normalize_url(url)
    engine = make_engine(parsed.set(database="postgres"))
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            quoted = connection.dialect.identifier_preparer.quote(parsed.database)
            connection.execute(text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def server_database_url() -> Iterator[str | None]:
    """The PostgreSQL test database, emptied and migrated once per run; None means SQLite.

    Without xdist: INTAKE_TEST_DATABASE_URL itself, held under an advisory lock so that runs on
    one server take turns. Under xdist: a database of this run's worker, made here and dropped
    at the end (nobody else uses its name, so no lock is needed)."""
    if SERVER_URL is None:
        yield None
        return
    if WORKER is not None:
        url = _worker_database(SERVER_URL, WORKER)
        migrate.create_database_if_missing(url)
        try:
            migrate.upgrade(url)
            yield url
        finally:
            _drop_database(url)
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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per run (per worker); `database_url` hands out copies."""
    path = tmp_path_factory.mktemp("template") / "intake.db"
    migrate.upgrade(f"sqlite:///{path}")
    with sqlite3.connect(path) as connection:  # everything in the main file, nothing left in -wal
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return path


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
def database_url(server_database_url: str | None, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database with no rows: a copy of the migrated SQLite template, or the
    truncated server one."""
    if server_database_url is None:
        path = tmp_path / "intake.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    truncate_all_tables(server_database_url)
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


# Long enough for an HS256 key (the SMART tokens), so no test needs a key of its own.
TEST_SECRET_KEY = "test-secret-key-32-bytes-at-least"


def app_config(database_url: str, instance_path: Path | str, **overrides: Any) -> dict[str, Any]:
    """The settings every test app starts from: its database and instance folder, TESTING, and
    eager jobs (follow-up work is done when the request returns); `overrides` on top."""
    return {"DATABASE_URL": database_url, "INSTANCE_PATH": str(instance_path), "SECRET_KEY": TEST_SECRET_KEY,
            "TESTING": True, "INTAKE_JOBS": "eager", **overrides}


class AppFactory(Protocol):
    def __call__(self, *, clock: Callable[[], datetime] | None = None, forms: dict[str, Any] | None = None,
                 **overrides: Any) -> Flask: ...


@pytest.fixture
def make_app(database_url: str, tmp_path: Path) -> Iterator[AppFactory]:
    """`make_app(**overrides)`: an app on this test's database (`app_config` + `overrides`, an
    instance folder of its own unless INSTANCE_PATH is given); every app made is closed at the end.
    `forms={stem: Questionnaire}`: the app loads and offers those forms only; `clock`: its clock."""
    made: list[Flask] = []

    def make(*, clock: Callable[[], datetime] | None = None, forms: dict[str, Any] | None = None,
             **overrides: Any) -> Flask:
        folder = tmp_path / f"app-{len(made)}"
        if forms is not None:
            (folder / "forms").mkdir(parents=True)
            for stem, questionnaire in forms.items():
                (folder / "forms" / f"{stem}.json").write_text(json.dumps(questionnaire), encoding="utf-8")
            overrides = {"INTAKE_FORMS_DIR": str(folder / "forms"), "INTAKE_QUESTIONNAIRES": list(forms), **overrides}
        instance = overrides.pop("INSTANCE_PATH", folder / "instance")
        app = create_app(app_config(database_url, instance, **overrides), clock=clock)
        made.append(app)
        return app

    yield make
    for app in made:
        close_app(app)


@pytest.fixture(scope="session", autouse=True)
def _quick_pdf() -> Iterator[None]:
    """The clinician PDF from the stand-in, for the whole run (module fixtures included);
    tests marked `pdf` get WeasyPrint back (`_real_pdf_when_marked`)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(documents, "_pdf_of", quick_pdf)
        yield


_REAL_PDF_OF = documents._pdf_of


@pytest.fixture(autouse=True)
def _real_pdf_when_marked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("pdf") is not None:
        monkeypatch.setattr(documents, "_pdf_of", _REAL_PDF_OF)


_STARTED = pytest.StashKey[float]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_STARTED] = time.time()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Print the axe summary of the browser tests (tests/browser/conftest.py writes the report).
    Under pytest-xdist the controller joins the workers' shares into build/test-output first."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    from tests.browser.axe import join_parts, summary_text, write_report  # cycle-ok: browser support only when it ran
    from tests.browser.support import AXE_RESULTS  # cycle-ok: browser support only when it ran

    if getattr(config.option, "numprocesses", None):  # the xdist controller
        results = join_parts(config.stash.get(_STARTED, time.time()))
        if results:
            write_report(results)
    else:
        results = AXE_RESULTS
    if results:
        terminalreporter.section("axe-core accessibility summary")
        terminalreporter.write(summary_text(results))


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

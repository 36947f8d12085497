"""Real-browser fixtures: the app served over HTTP on 127.0.0.1, Debian's Chromium driven by Playwright.

Never a downloaded browser: Chromium is the machine's /usr/bin/chromium (`apt-get install
chromium`), axe-core comes from the npm registry (`npm ci` at the repository root). Without them
the tests skip with the reason, unless INTAKE_REQUIRE_BROWSER=1 (CI) makes that a failure.

The database is the one every other test uses (tests/conftest.py `database_url`: a fresh SQLite
file, or the truncated INTAKE_TEST_DATABASE_URL PostgreSQL database), one app and server per test.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from intake import close_app, workflow
from intake.services import services
from intake.storage.db import session_scope
from tests.browser.axe import write_part, write_report
from tests.browser.support import (
    AXE_JS,
    AXE_RESULTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    PHONE,
    PROJECT_ROOT,
    SCREENSHOTS,
)
from tests.conftest import AppFactory

_LOADED = time.time()


def _missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    if not AXE_JS.exists():
        return f"{AXE_JS.relative_to(PROJECT_ROOT)} is missing (npm ci at the repository root)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    return None


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("INTAKE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests required (INTAKE_REQUIRE_BROWSER=1) but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole run (each test makes its own contexts)."""
    reason = _missing()
    if reason:
        _skip_or_fail(reason)
    from playwright.sync_api import sync_playwright

    for old in SCREENSHOTS.glob("*.png"):  # the folder shows this run's pages only
        if old.stat().st_mtime < _LOADED:  # (not those another xdist worker has just taken)
            old.unlink(missing_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:  # no access log lines in test output
        pass


class LiveServer:
    """The app behind a real HTTP server on a free 127.0.0.1 port, in a background thread."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="browser-test-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def invite(self, *, name: str = "Browser Patient", birth_date: date = date(1962, 3, 14),
               questionnaires: list[str] | None = None) -> str:
        """A fresh patient and intake (intake.workflow.invite, as front desk and the CLI do); its link."""
        app = self.app
        with session_scope(services(app).sessions) as session:
            _intake, token = workflow.invite(
                session, services(app).catalog, name=name, birth_date=birth_date,
                questionnaires=questionnaires or app.config["INTAKE_QUESTIONNAIRES"], appointment_at=None,
                ttl=timedelta(hours=app.config["INTAKE_LINK_TTL_HOURS"]),
                mrn_system=app.config["INTAKE_MRN_SYSTEM"])
        return f"{self.url}/i/{token}"


@contextmanager
def serving(make_app: AppFactory, **settings: Any) -> Iterator[LiveServer]:
    """The app (`make_app`'s test settings plus `settings`) served on a free port until the block ends."""
    app = make_app(**settings)
    server = LiveServer(app)
    try:
        yield server
    finally:
        server.stop()
        close_app(app)


@pytest.fixture
def live(browser: Any, make_app: AppFactory) -> Iterator[LiveServer]:
    """The app served on a free port."""
    with serving(make_app) as server:
        yield server


@pytest.fixture
def patient_link(live: LiveServer) -> str:
    """The patient link URL of a fresh five-questionnaire intake."""
    return live.invite()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """new_page(viewport=PHONE, lang="en", **context options) -> a page in a new browser context
    (its own cookies); every context is closed after the test."""
    contexts: list[Any] = []

    def make(viewport: dict[str, int] | None = None, lang: str = "en", **options: Any) -> Any:
        context = browser.new_context(viewport=viewport or PHONE, locale="es-ES" if lang == "es" else "en-GB",
                                      **options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the axe report (build/test-output/axe-report.json, axe-summary.txt). An xdist worker
    writes its share (axe-part-<worker>.json) for tests/conftest.py to join and print."""
    if not AXE_RESULTS:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        write_part(AXE_RESULTS, worker)
    else:
        write_report(AXE_RESULTS)

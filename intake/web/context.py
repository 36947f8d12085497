"""Request-scoped helpers the blueprints share: the request's database sessions and the catalog.

They live here, not in `intake.web` (the registrar), so a blueprint imports what it uses without
importing the module that imports every blueprint. GET views read through a read-only session
(on SQLite a deferred BEGIN that never blocks the writer); POST views do their whole unit of work
in one write transaction (`writer()`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, g
from sqlalchemy.orm import Session

from intake.core.catalog import Catalog
from intake.services import services
from intake.storage.db import session_scope


def reader() -> Session:
    """The request's read-only session (opened on first use, closed at teardown)."""
    if "reader" not in g:
        g.reader = services().readers()
    return g.reader


@contextmanager
def readers() -> Iterator[Session]:
    """A fresh read-only session for one block (a new snapshot each time, unlike `reader()`)."""
    with services().readers() as session:
        yield session


@contextmanager
def writer() -> Iterator[Session]:
    """One write transaction: commit on success, roll back on error."""
    with session_scope(services().sessions) as session:
        yield session


def catalog() -> Catalog:
    """The app's loaded Questionnaires."""
    return services().catalog


def register(app: Flask) -> None:
    """Close the request's `reader()` session when the app context ends."""

    @app.teardown_appcontext
    def close_session(_exc: BaseException | None) -> None:
        session = g.pop("reader", None)
        if session is not None:
            session.close()

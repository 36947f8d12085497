"""Blueprints, one per audience, and the database sessions views use.

GET views read through a read-only session (on SQLite a deferred BEGIN that never blocks the
writer); POST views do their whole unit of work in one write transaction (`writer()`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, g
from flask_wtf.csrf import generate_csrf
from sqlalchemy.orm import Session

from intake.core.catalog import Catalog
from intake.jobs import background
from intake.storage.db import make_session_factory, session_scope
from intake.web import contacts, headers, input_guard, language, limits, proxies
from intake.web.forms.fragments import render_question


def register(app: Flask) -> None:
    from intake.web import auditing, fhir_bulk, staff  # noqa: F401  (fhir_bulk adds the $export routes)
    from intake.web.admin import bp as admin_bp
    from intake.web.auth_api import bp as auth_bp
    from intake.web.clinician import bp as clinician_bp
    from intake.web.fhir_api import bp as fhir_bp
    from intake.web.front_desk import bp as front_desk_bp
    from intake.web.openapi import bp as openapi_bp
    from intake.web.patient import bp as patient_bp

    input_guard.register(app)  # first: no hostile path, query or form field reaches a view or the database
    app.extensions["intake.readers"] = make_session_factory(app.extensions["intake.engine"], read_only=True)
    # Commits that need not wait for the disk: the audit rows of reads (intake.audit.queue).
    app.extensions["intake.relaxed_writers"] = make_session_factory(app.extensions["intake.engine"], relaxed=True)
    app.register_blueprint(patient_bp)
    app.register_blueprint(clinician_bp)
    app.register_blueprint(fhir_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(openapi_bp)
    app.register_blueprint(staff.bp)
    app.register_blueprint(front_desk_bp)
    app.register_blueprint(admin_bp)
    staff.register(app)
    auditing.register(app)
    headers.register(app)
    language.register(app)
    contacts.register(app)
    limits.register(app)
    proxies.register(app)
    # Flask-WTF's token for hand-written forms (the review page); page forms are FlaskForms.
    app.jinja_env.globals["csrf_token"] = generate_csrf
    app.jinja_env.globals["cached_question"] = render_question

    @app.teardown_appcontext
    def close_session(_exc: BaseException | None) -> None:
        session = g.pop("reader", None)
        if session is not None:
            session.close()

    # Last: a process that serves starts its clock now, not at the first request or submit, so the
    # work a previous run left (emergency notifications first) goes out after a restart.
    background.start(app)


def reader() -> Session:
    """The request's read-only session (opened on first use, closed at teardown)."""
    if "reader" not in g:
        g.reader = current_app.extensions["intake.readers"]()
    return g.reader


@contextmanager
def readers() -> Iterator[Session]:
    """A fresh read-only session for one block (a new snapshot each time, unlike `reader()`)."""
    with current_app.extensions["intake.readers"]() as session:
        yield session


@contextmanager
def writer() -> Iterator[Session]:
    """One write transaction: commit on success, roll back on error."""
    with session_scope(current_app.extensions["intake.sessions"]) as session:
        yield session


def catalog() -> Catalog:
    return current_app.extensions["intake.catalog"]

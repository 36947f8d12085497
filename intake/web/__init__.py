"""Blueprints, one per audience, registered on the app in one place (`register`).

Request-scoped helpers (the request's sessions, the catalog) are in `intake.web.context`, so the
blueprints never import this module.
"""

from __future__ import annotations

from flask import Flask
from flask_wtf.csrf import generate_csrf

from intake.jobs import background
from intake.services import services
from intake.web import (
    admin,
    auditing,
    auth_api,
    clinician,
    contacts,
    context,
    fhir_api,
    fhir_bulk,  # noqa: F401  (adds the $export routes to the FHIR blueprint)
    front_desk,
    front_desk_patients,  # noqa: F401  (adds the by-patient routes to the front desk blueprint)
    headers,
    input_guard,
    language,
    limits,
    openapi,
    patient,
    proxies,
    staff,
)
from intake.web.forms.fragments import FragmentCache, render_question


def register(app: Flask) -> None:
    input_guard.register(app)  # first: no hostile path, query or form field reaches a view or the database
    services(app).fragments = FragmentCache()
    app.register_blueprint(patient.bp)
    app.register_blueprint(clinician.bp)
    app.register_blueprint(fhir_api.bp)
    app.register_blueprint(auth_api.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(staff.bp)
    app.register_blueprint(front_desk.bp)
    app.register_blueprint(admin.bp)
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

    context.register(app)

    # Last: a process that serves starts its clock now, not at the first request or submit, so the
    # work a previous run left (emergency notifications first) goes out after a restart.
    background.start(app)


"""One check of every request before any view, CSRF check or query runs: no control characters
in the path, the query string or form fields, and no file parts in a form.

PostgreSQL text cannot hold NUL: a NUL in a user name, a patient name, an audit filter or an id
in a URL failed the query (a 500, or an export cut off mid-stream) wherever it reached the
database. Other C0 control characters (all but tab, CR and LF) have no business in any field
either. No route takes uploads (an API client's JWK set is pasted as text), and a file part
where a text field belongs reached WTForms as a FileStorage (a 500). Refusing both here, once,
covers every route, including those added later.

Refused requests get a 400 in the voice of the route: an OperationOutcome (issue code `invalid`)
under /fhir, OAuth error JSON at /auth/token, the staff error page under the staff areas, the
patient error page elsewhere. The message never echoes the value.

Endpoints in `OWN_FIELD_CHECKS` judge their form fields themselves: a patient's question page
refuses a control character or a file in an answer with a message at that question, and ignores
unknown fields (tests/web/test_hostile_input.py). Their path and query string are still checked.
"""

from __future__ import annotations

import json
import re

from flask import Flask, Response, render_template, request
from flask_babel import gettext

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # C0 controls but tab, LF, CR
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
OWN_FIELD_CHECKS = frozenset({"patient.page"})
STAFF_AREAS = ("/staff/", "/admin/", "/front-desk/", "/clinician/")


def problem() -> str | None:
    """What is wrong with this request's path, query or form, as a sentence; None if nothing."""
    if CONTROL.search(request.path):
        return "The web address contains control characters."
    for key, value in request.args.items(multi=True):
        if CONTROL.search(key) or CONTROL.search(value):
            return f"The query parameter {_name(key)} contains control characters."
    if request.method in ("POST", "PUT", "PATCH") and request.is_json and not _fhir(request.path):
        # Flask-WTF reads a JSON body as the form: a deeply nested one overflowed its parser.
        return "This address takes a form, not JSON."
    if request.method not in ("POST", "PUT", "PATCH") or request.mimetype not in FORM_TYPES \
            or request.endpoint in OWN_FIELD_CHECKS:
        return None
    for key, value in request.form.items(multi=True):
        if CONTROL.search(key) or CONTROL.search(value):
            return f"The form field {_name(key)} contains control characters."
    for key in request.files:
        return f"The form field {_name(key)} was sent as a file; this form takes no files."
    return None


def _fhir(path: str) -> bool:
    """The FHIR API: JSON bodies are its own (a transaction Bundle POSTs to the base, /fhir)."""
    return path == "/fhir" or path.startswith("/fhir/")


def _name(key: str) -> str:
    """A field's name for a message: quoted, cut short, control characters shown as `?`."""
    return repr(CONTROL.sub("?", key[:40]))


def refusal(message: str) -> Response | tuple[str, int]:
    """A 400 saying `message`, in the form the route's clients read."""
    path = request.path
    if _fhir(path):
        body = {"resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "invalid", "diagnostics": message}]}
        return Response(json.dumps(body), 400, content_type="application/fhir+json; charset=utf-8")
    if path == "/auth/token":
        response = Response(json.dumps({"error": "invalid_request", "error_description": message}), 400,
                            content_type="application/json")
        response.headers["Cache-Control"] = "no-store"
        return response
    if path.startswith(STAFF_AREAS):
        return render_template("staff/error.html", title="There is a problem with that request",
                               body=f"{message} Go back and try again."), 400
    return render_template("error.html", title=gettext("There is a problem with that request"),
                           body=gettext("Go back and try again.")), 400


def register(app: Flask) -> None:
    """Call before anything else registers a `before_request`: this must run first."""

    @app.before_request
    def refuse_hostile_input() -> Response | tuple[str, int] | None:
        message = problem()
        return refusal(message) if message else None

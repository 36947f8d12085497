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

import re

from flask import Flask, request
from flask.typing import ResponseReturnValue

from intake.web.errors import audience, respond

CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # C0 controls but tab, LF, CR
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
OWN_FIELD_CHECKS = frozenset({"patient.page"})


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


def refusal(message: str) -> ResponseReturnValue:
    """A 400 saying `message`, in the form the route's clients read (`intake.web.errors`); a
    patient's page keeps to its translated words (the message is technical English)."""
    return respond(400, "invalid", message, summary=message if audience() == "staff" else None)


def register(app: Flask) -> None:
    """Call before anything else registers a `before_request`: this must run first."""

    @app.before_request
    def refuse_hostile_input() -> ResponseReturnValue | None:
        message = problem()
        return refusal(message) if message else None

"""Errors turned into responses, in one place, by who is asking (never a stack trace):

- the FHIR API (anything under /fhir, routing errors included): an OperationOutcome;
- the SMART token endpoint and discovery (/auth/..., /.well-known/...): an OAuth error (RFC 6749 §5.2);
- staff pages (/staff, /admin, /front-desk, /clinician): the staff error page;
- everything else, the patient's pages: the patient error page, in the patient's language.

The status and the FHIR issue code come from the error (`intake.errors.IntakeError`) or, for
Werkzeug's HTTP errors, from `intake.errors.issue_code`: one status has one code everywhere. A
message is shown only below 500; a 5xx says nothing of what failed, and the log gets the
error's type and place, never its message (it could carry what a patient typed).
"""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path
from typing import Any, Literal

from flask import Flask, Response, current_app, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException

from intake.core.validation import Issue, operation_outcome
from intake.errors import IntakeError, issue_code

log = logging.getLogger(__name__)

Audience = Literal["fhir", "oauth", "staff", "patient"]

FHIR_JSON = "application/fhir+json"
STAFF_AREAS = ("/staff/", "/admin/", "/front-desk/", "/clinician/")
STAFF_BLUEPRINTS = {"staff", "admin", "front_desk", "clinician"}
# Headers of an HTTP error that still hold on the response built for it.
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")
FHIR_REALM = 'Bearer realm="Intake FHIR API"'
SERVER_ERROR = "internal error; nothing was changed by this request"

MESSAGES = {
    400: (_l("There is a problem with that request"), _l("Go back and try again.")),
    403: (_l("You cannot see this page"), _l("Open the link from your message again.")),
    404: (_l("Page not found"), _l("If you typed the web address, check it is correct.")),
    405: (_l("There is a problem with that request"), _l("Go back and try again.")),
    413: (_l("That was too much to send"), _l("Shorten your answers and try again.")),
    429: (_l("This link cannot be used"),
          _l("Too many tries from this connection. Wait a few minutes, or contact the clinic.")),
}
CLIENT_ERROR = (_l("Sorry, there is a problem"), _l("Try again later."))
SERVICE_ERROR = (_l("Sorry, there is a problem with the service"), _l("Your saved answers are safe. Try again later."))


# --- the response builders each audience reads -----------------------------------------------------


def fhir_content_type() -> str:
    """application/fhir+json, or application/json when `_format` asked for that."""
    if request.args.get("_format") in ("json", "application/json"):
        return "application/json; charset=utf-8"
    return f"{FHIR_JSON}; charset=utf-8"


def fhir_response(body: str | bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A FHIR JSON response (the body is already serialised)."""
    response = Response(body, status, content_type=fhir_content_type())
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def outcome(status: int, code: str, message: str, severity: str = "error") -> Response:
    """An OperationOutcome of one issue, built as the validation's issues are (`Issue`)."""
    body = operation_outcome([Issue(severity, code, None, message)])
    response = fhir_response(json.dumps(body), status)
    if status == 401:
        response.headers["WWW-Authenticate"] = FHIR_REALM
    return response


def oauth_json(body: dict[str, Any], status: int = 200) -> Response:
    """A JSON answer of the token endpoint: never cached (RFC 6749 §5.1)."""
    response = Response(json.dumps(body), status, content_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def oauth_error_code(status: int) -> str:
    """RFC 6749 §5.2 `error` for a status when the error named none itself."""
    if status >= 500:
        return "server_error"
    return "invalid_client" if status == 401 else "invalid_request"


def too_large_message() -> str:
    """What a 413 says to an API client: the limit, in bytes and in MiB."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
    return f"the request body is over the {limit} byte ({limit / 1024 / 1024:g} MiB) limit; send less"


# --- the one mapping -----------------------------------------------------------------------------------


def audience() -> Audience:
    """Who reads this request's error: by blueprint, by path where no route matched."""
    path, blueprint = request.path, request.blueprint
    if path == "/fhir" or path.startswith("/fhir/"):
        return "fhir"
    if blueprint == "auth_api" or path.startswith("/auth/"):
        return "oauth"
    if blueprint in STAFF_BLUEPRINTS or path.startswith(STAFF_AREAS):
        return "staff"
    return "patient"


def respond(status: int, code: str | None, message: str, *, summary: str | None = None,
            oauth_error: str | None = None, headers: dict[str, str] | None = None) -> ResponseReturnValue:
    """The response for an error of `status`, in the form this request's audience reads.

    `message` goes to API clients (OperationOutcome diagnostics, OAuth error_description) and
    `summary` to the error summary of a page; from 500 up neither is shown.
    """
    failed = status >= 500
    if failed:
        message, summary = SERVER_ERROR, None
    kind = audience()
    if kind == "fhir":
        response = outcome(status, code or issue_code(status), message)
    elif kind == "oauth":
        response = oauth_json({"error": oauth_error or oauth_error_code(status), "error_description": message}, status)
    else:
        title, body = SERVICE_ERROR if failed else MESSAGES.get(status, CLIENT_ERROR)
        template = "staff/error.html" if kind == "staff" else "error.html"
        page = render_template(template, title=title, body=body, summary=summary)
        response = current_app.make_response((page, status))
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def intake_error(exc: IntakeError) -> ResponseReturnValue:
    """An error of the tree: its own status, code and (below 500) message."""
    if exc.status >= 500:
        if current_app.testing:
            raise exc  # as `unexpected`: a 5xx is a bug, and the test should see where
        _log_failure(exc)
    return respond(exc.status, exc.code, exc.message, summary=exc.message or None,
                   oauth_error=getattr(exc, "error", None))


def http_error(exc: HTTPException) -> ResponseReturnValue:
    """Werkzeug's errors (abort, routing, size limits): generic words, the status's code."""
    status = exc.code or 500
    if status == 413:
        message = too_large_message()
    elif status == 429:  # the description names the limit that was hit; the client needs the remedy
        message = "too many requests; try again later"
    else:
        message = exc.description or exc.name
    kept = {key: value for key, value in exc.get_headers() if key in KEPT_HEADERS}
    return respond(status, None, message, headers=kept)


def unexpected(exc: Exception) -> ResponseReturnValue:
    """Anything else is a bug: a 500 that says nothing of it (tests see the traceback)."""
    if current_app.testing:
        raise exc
    _log_failure(exc)
    return respond(500, None, SERVER_ERROR)


def _log_failure(exc: BaseException) -> None:
    """Type and place only: the message and the locals could carry what a patient typed."""
    frames = traceback.extract_tb(exc.__traceback__)
    place = f"{Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name}" if frames else "?"
    log.error("unhandled %s at %s (endpoint %s)", type(exc).__name__, place, request.endpoint)


def register(app: Flask) -> None:
    """The one set of error handlers; blueprints add none of their own for these classes."""
    app.register_error_handler(IntakeError, intake_error)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected)

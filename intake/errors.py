"""One exception tree, turned into HTTP at the edge: HTML pages for people, OperationOutcome
for the FHIR API (anything under /fhir, routing errors included); never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, current_app, render_template, request
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

MESSAGES = {
    400: (_l("There is a problem with that request"), _l("Go back and try again.")),
    403: (_l("You cannot see this page"), _l("Open the link from your message again.")),
    404: (_l("Page not found"), _l("If you typed the web address, check it is correct.")),
    405: (_l("There is a problem with that request"), _l("Go back and try again.")),
    413: (_l("That was too much to send"), _l("Shorten your answers and try again.")),
}


def too_large_message() -> str:
    """What a 413 says to an API client: the limit, in bytes and in MiB."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
    return f"the request body is over the {limit} byte ({limit / 1024 / 1024:g} MiB) limit; send less"


def register(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        code = exc.code or 500
        description = too_large_message() if code == 413 else (exc.description or exc.name)
        if _is_fhir():
            from intake.web.fhir_api import outcome

            kind = {404: "not-found", 405: "not-supported", 413: "too-costly"}.get(
                code, "invalid" if code < 500 else "exception"
            )
            return outcome(code, kind, description)
        if request.path == "/auth/token":
            from intake.web.auth_api import _json

            return _json({"error": "invalid_request", "error_description": description}, code)
        title, body = MESSAGES.get(code, (_l("Sorry, there is a problem"), _l("Try again later.")))
        return render_template("error.html", title=title, body=body), code

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        if app.testing:
            raise exc  # tests see the traceback; a 500 is always a bug to fix
        # Log the type and place only: the message could carry what a patient typed.
        log.error("unhandled %s", type(exc).__name__, exc_info=False)
        if _is_fhir():
            from intake.web.fhir_api import outcome

            return outcome(500, "exception", "internal error; nothing was changed by this request")
        return render_template("error.html", title=_l("Sorry, there is a problem with the service"),
                               body=_l("Your saved answers are safe. Try again later.")), 500


def _is_fhir() -> bool:
    return request.path == "/fhir" or request.path.startswith("/fhir/")

"""The SMART Backend Services endpoints: discovery and the token endpoint (see intake/smart.py)."""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, request

from intake import smart
from intake.storage.db import session_scope
from intake.storage.models import utcnow

bp = Blueprint("auth_api", __name__)


def token_url() -> str:
    """The token endpoint as the client reached this server: the `aud` its assertion must name."""
    return request.host_url + "auth/token"


def _json(body: dict, status: int = 200) -> Response:
    response = Response(json.dumps(body), status, content_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@bp.get("/.well-known/smart-configuration")
@bp.get("/fhir/.well-known/smart-configuration")
def smart_configuration() -> Response:
    return _json({
        "token_endpoint": token_url(),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(smart.ASSERTION_ALGORITHMS),
        "scopes_supported": ["system/*.read", "system/*.rs"],
        "capabilities": ["client-confidential-asymmetric"],
    })


@bp.post("/auth/token")
def token() -> Response:
    if request.mimetype != "application/x-www-form-urlencoded":
        return _json({"error": "invalid_request", "error_description": "send application/x-www-form-urlencoded"}, 400)
    form = {key: request.form.get(key, "") for key in ("grant_type", "client_assertion_type", "client_assertion", "scope")}
    if any(len(value) > 16_384 for value in form.values()):
        return _json({"error": "invalid_request", "error_description": "a parameter is too long"}, 400)
    try:
        with session_scope(current_app.extensions["intake.sessions"]) as session:
            body = smart.issue_token(session, form, token_url=token_url(), secret=current_app.config["SECRET_KEY"],
                                     now=utcnow())
    except smart.TokenError as exc:
        return _json({"error": exc.error, "error_description": exc.description}, exc.status)
    return _json(body)

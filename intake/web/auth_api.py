"""The SMART Backend Services endpoints: discovery and the token endpoint (see intake/auth/smart.py).

The token URL — the `aud` every assertion must name, the `iss` of every access token, the
`token_endpoint` discovery advertises — comes from INTAKE_BASE_URL alone, never from the Host or
X-Forwarded-Host header: a client that made an assertion for another server cannot spend it here
by naming that server in a header. Left at its development default (http://127.0.0.1:5000), the
service accepts only assertions made for that address (it fails closed) and says so in the log
at start-up when it runs the production way (INTAKE_JOBS=celery).

`/.well-known/jwks.json` is the other direction: the public key this service signs its own
client assertions with when it pushes to an EHR by SMART Backend Services (intake/fhir/ehr_auth.py),
the JWKS URL to register there.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, current_app, request
from flask.blueprints import BlueprintSetupState

from intake.auth import smart
from intake.config import SETTINGS
from intake.core.fhir_time import utcnow
from intake.fhir import ehr_auth
from intake.services import services
from intake.storage.db import session_scope
from intake.web.errors import oauth_json

log = logging.getLogger(__name__)

bp = Blueprint("auth_api", __name__)


@bp.record_once
def _warn_on_default_base_url(state: BlueprintSetupState) -> None:
    config = state.app.config
    if config["INTAKE_JOBS"] == "celery" and config["INTAKE_BASE_URL"] == SETTINGS["BASE_URL"][1]:
        log.warning("INTAKE_BASE_URL is not set: SMART clients must sign their assertions for %s, "
                    "and printed links name that address; set it to the public https:// address",
                    smart.token_url(config["INTAKE_BASE_URL"]))


def token_url() -> str:
    """The token endpoint at the configured public address (INTAKE_BASE_URL), whatever host the
    request came in by: the `aud` an assertion must name and the `iss` of access tokens."""
    return smart.token_url(current_app.config["INTAKE_BASE_URL"])


@bp.get("/.well-known/smart-configuration")
@bp.get("/fhir/.well-known/smart-configuration")
def smart_configuration() -> Response:
    return oauth_json({
        "token_endpoint": token_url(),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(smart.ASSERTION_ALGORITHMS),
        "scopes_supported": ["system/*.read", "system/*.rs"],
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
    })


@bp.post("/auth/token")
def token() -> Response:
    """An access token, or a `smart.TokenError`: `intake.web.errors` answers it (RFC 6749 §5.2)."""
    if request.mimetype != "application/x-www-form-urlencoded":
        raise smart.TokenError("invalid_request", "send application/x-www-form-urlencoded")
    form = {
        key: request.form.get(key, "") for key in ("grant_type", "client_assertion_type", "client_assertion", "scope")
    }
    if any(len(value) > 16_384 for value in form.values()):
        raise smart.TokenError("invalid_request", "a parameter is too long")
    with session_scope(services().sessions) as session:
        body = smart.issue_token(session, form, token_url=token_url(), secret=current_app.config["SECRET_KEY"],
                                 now=utcnow())
    return oauth_json(body)


@bp.get(ehr_auth.JWKS_PATH)
def jwks() -> Response:
    """The public JWK set of the key the EHR push signs with (no keys when it uses none)."""
    body = ehr_auth.public_jwks(current_app._get_current_object())  # type: ignore[attr-defined]
    response = Response(json.dumps(body), content_type="application/jwk-set+json")
    response.headers["Cache-Control"] = "public, max-age=300"  # EHRs re-read it to follow a key rotation
    return response

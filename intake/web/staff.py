"""Interim staff sign-in for the clinician pages: HTTP Basic against a configured password hash.

Accounts, roles, sessions and audit come with the accounts issue; until then the clinician pages
are closed unless `INTAKE_STAFF_USER` and `INTAKE_STAFF_PASSWORD_HASH` (a werkzeug scrypt hash,
`flask intake hash-password`) are set. Comparison is constant-time; a wrong name costs the same.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Response, current_app, request
from werkzeug.security import check_password_hash

# A hash of a random password, checked when the user name is wrong, so both paths cost the same.
_DECOY = "scrypt:32768:8:1$Qk9VbFpQeW5O$" + "0" * 128


def _challenge() -> Response:
    return Response("Staff sign-in required.", 401, {"WWW-Authenticate": 'Basic realm="Intake staff", charset="UTF-8"'})


def staff_configured() -> bool:
    return bool(current_app.config.get("INTAKE_STAFF_USER") and current_app.config.get("INTAKE_STAFF_PASSWORD_HASH"))


def staff_signed_in() -> bool:
    """The request carries the configured staff user's HTTP Basic credentials (constant-time name
    check; a wrong name is checked against a decoy hash so it costs the same)."""
    auth = request.authorization
    if not staff_configured() or auth is None or auth.type != "basic":
        return False
    user = current_app.config["INTAKE_STAFF_USER"]
    name_ok = hmac.compare_digest((auth.username or "").encode(), user.encode())
    try:
        password_ok = check_password_hash(current_app.config["INTAKE_STAFF_PASSWORD_HASH"] if name_ok else _DECOY,
                                          auth.password or "")
    except ValueError:
        return False
    return name_ok and password_ok


def staff_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not staff_configured():
            return Response("Clinician pages are not configured on this server.", 403)
        if not staff_signed_in():
            return _challenge()
        return view(*args, **kwargs)

    return wrapper

"""Rate limits (Flask-Limiter) on the doors that take guesses: patient links, staff sign-in (and
the change-password page, which asks for the current password) and the token endpoint.

Keyed by client address, one Limiter per app (counts never leak between apps); staff sign-in is
also limited per user name tried (from any address), and there only failed attempts count (a
successful sign-in redirects). Counts live in memory per process by default (each gunicorn worker
counts on its own, so the effective limit is up to workers x the limit); set
`INTAKE_RATE_LIMIT_STORAGE=redis://127.0.0.1:6379` to share them across processes and hosts.
Over the limit: 429, with a page for people and an OAuth error for the token endpoint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import NamedTuple

from flask import Flask, Response, render_template, request
from flask_babel import gettext
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address


def _hashed(prefix: str, name: str) -> str:
    """A limit key for a user name, hashed: the limiter's storage never holds it in clear."""
    return prefix + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()


def _username_key() -> str:
    """The user name tried, folded."""
    return _hashed("login-user:", (request.form.get("username") or "").strip().casefold()[:64])


def _signed_in_key() -> str:
    """The signed-in staff member: wrong current passwords on the change-password page count
    against the account, whichever address they come from."""
    from flask_login import current_user

    return _hashed("password-user:", current_user.username if current_user.is_authenticated else "")


def _failed(response: Response) -> bool:
    return response.status_code != 302


class Rule(NamedTuple):
    setting: str
    key: Callable[[], str] | None = None  # default: the client address
    methods: tuple[str, ...] | None = None  # default: every method
    deduct_when: Callable[[Response], bool] | None = None  # default: every request counts


LIMITED: dict[str, list[Rule]] = {
    "patient.open_link": [Rule("INTAKE_LINK_RATE_LIMIT")],
    "auth_api.token": [Rule("INTAKE_TOKEN_RATE_LIMIT")],
    "staff.login": [Rule("INTAKE_LOGIN_RATE_LIMIT", None, ("POST",), _failed),
                    Rule("INTAKE_LOGIN_USER_RATE_LIMIT", _username_key, ("POST",), _failed)],
    "staff.login_code": [Rule("INTAKE_LOGIN_RATE_LIMIT", None, ("POST",), _failed)],
    # the current password is asked again here: a guess at it is a guess at a sign-in
    "staff.password": [Rule("INTAKE_LOGIN_RATE_LIMIT", None, ("POST",), _failed),
                       Rule("INTAKE_LOGIN_USER_RATE_LIMIT", _signed_in_key, ("POST",), _failed)],
}


def register(app: Flask) -> None:
    """Call after the blueprints are registered: wraps the LIMITED view functions."""
    limiter = Limiter(key_func=get_remote_address, app=app, default_limits=[],
                      storage_uri=app.config["INTAKE_RATE_LIMIT_STORAGE"], headers_enabled=True)
    for endpoint, rules in LIMITED.items():
        view = app.view_functions[endpoint]
        for rule in rules:
            view = limiter.limit(app.config[rule.setting], key_func=rule.key, methods=list(rule.methods) if rule.methods else None,
                                 deduct_when=rule.deduct_when, scope=f"{endpoint}:{rule.setting}")(view)
        app.view_functions[endpoint] = view
    app.extensions["intake.limiter"] = limiter

    @app.errorhandler(RateLimitExceeded)
    def too_many(_exc: RateLimitExceeded):  # type: ignore[no-untyped-def]
        if request.path == "/auth/token":
            from intake.web.auth_api import _json

            return _json({"error": "invalid_request", "error_description": "too many requests; try again later"}, 429)
        if request.path.startswith("/staff/"):
            title = "Too many attempts" if request.endpoint == "staff.password" else "Too many sign-in attempts"
            return render_template("staff/error.html", title=title,
                                   body="Wait a few minutes, then try again. Ask an admin if you have forgotten your password."), 429
        return render_template("error.html", title=gettext("This link cannot be used"),
                               body=gettext("Too many tries from this connection. Wait a few minutes, or contact the clinic.")), 429

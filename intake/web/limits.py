"""Rate limits (Flask-Limiter) on the doors that take guesses: patient links and the token endpoint.

Keyed by client address, one Limiter per app (counts never leak between apps). Counts live in
memory per process by default (each gunicorn worker counts on its own, so the effective limit is
up to workers x the limit); set `INTAKE_RATE_LIMIT_STORAGE=redis://127.0.0.1:6379` to share them
across processes and hosts. Over the limit: 429, with the neutral link page for people and an
OAuth error for the token endpoint.
"""

from __future__ import annotations

from flask import Flask, render_template, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address

# endpoint -> the setting holding its limit
LIMITED = {"patient.open_link": "INTAKE_LINK_RATE_LIMIT", "auth_api.token": "INTAKE_TOKEN_RATE_LIMIT"}


def register(app: Flask) -> None:
    """Call after the blueprints are registered: wraps the LIMITED view functions."""
    limiter = Limiter(key_func=get_remote_address, app=app, default_limits=[],
                      storage_uri=app.config["INTAKE_RATE_LIMIT_STORAGE"], headers_enabled=True)
    for endpoint, setting in LIMITED.items():
        app.view_functions[endpoint] = limiter.limit(app.config[setting])(app.view_functions[endpoint])
    app.extensions["intake.limiter"] = limiter

    @app.errorhandler(RateLimitExceeded)
    def too_many(_exc: RateLimitExceeded):  # type: ignore[no-untyped-def]
        if request.path == "/auth/token":
            from intake.web.auth_api import _json

            return _json({"error": "invalid_request", "error_description": "too many requests; try again later"}, 429)
        return render_template("error.html", title="This link cannot be used",
                               body="Too many tries from this connection. Wait a few minutes, or contact the clinic."), 429

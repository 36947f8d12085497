"""Rate limits (Flask-Limiter) on the doors that take guesses: patient links, staff sign-in (and
the change-password page, which asks for the current password) and the token endpoint.

Keyed by client address, one Limiter per app (counts never leak between apps). Staff sign-in
counts only failed attempts (a successful one redirects), in four ways (OWASP ASVS 2.2.1: slow
automated guessing without letting anyone lock a staff member out):
- per address (INTAKE_LOGIN_RATE_LIMIT) and per address and user name (INTAKE_LOGIN_USER_RATE_LIMIT):
  hard limits, every attempt over them is refused;
- per user name from any address (INTAKE_LOGIN_USER_RATE_LIMIT again): a soft limit. Over it,
  only addresses that have failed fewer than SUSPECT_AFTER sign-ins (any name, password or code)
  within that window may still try the name, so a flood of failures from elsewhere never stops
  its owner (who may mistype twice), while each attacking address gets SUSPECT_AFTER guesses
  per window at most;
- the second step (TOTP) per account (INTAKE_LOGIN_CODE_RATE_LIMIT), from any address or pending
  sign-in: over it, the account's codes are refused, even a right one, until the window ends.
  Only someone who has the password gets that far.
Counts live in memory per process by default (each gunicorn worker counts on its own, so the
effective limit is up to workers x the limit); set `INTAKE_RATE_LIMIT_STORAGE=redis://127.0.0.1:6379`
to share them across processes and hosts. Over the limit: 429, with a page for people and an
OAuth error for the token endpoint.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from typing import NamedTuple

from flask import Flask, Response, current_app, render_template, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from flask_login import current_user
from limits import RateLimitItem, parse
from limits.strategies import RateLimiter

from intake.services import services
from intake.web.errors import http_error


SUSPECT_AFTER = 3  # failed sign-ins within the window after which an address is not let past the soft limit


def _hashed(prefix: str, name: str) -> str:
    """A limit key for a user name, hashed: the limiter's storage never holds it in clear."""
    return prefix + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()


def _folded(username: str) -> str:
    return username.strip().casefold()[:64]


def _address_and_username_key() -> str:
    """The client address and the user name tried, folded."""
    return _hashed("login-pair:", f"{get_remote_address()} {_folded(request.form.get('username') or '')}")


def _signed_in_key() -> str:
    """The signed-in staff member: wrong current passwords on the change-password page count
    against the account, whichever address they come from."""
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
                    Rule("INTAKE_LOGIN_USER_RATE_LIMIT", _address_and_username_key, ("POST",), _failed)],
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
    services(app).limiter = limiter

    @app.errorhandler(RateLimitExceeded)
    def too_many(exc: RateLimitExceeded):  # type: ignore[no-untyped-def]
        """The sign-in pages say what to do about their own limits; the rest is the one mapping's."""
        if request.path.startswith("/staff/"):
            return too_many_attempts("Too many attempts" if request.endpoint == "staff.password" else "Too many sign-in attempts")
        return http_error(exc)


def too_many_attempts(title: str = "Too many sign-in attempts") -> tuple[str, int]:
    """The staff page for a refused attempt."""
    return render_template("staff/error.html", title=title,
                           body="Wait a few minutes, then try again. Ask an admin if you have forgotten your password."), 429


# -- the sign-in limits the decorators cannot express (see the module docstring) --------------------

def _strategy() -> RateLimiter:
    return services().limiter.limiter


def _item(setting: str) -> RateLimitItem:
    return parse(current_app.config[setting])


def _name_key(username: str) -> str:
    return _hashed("login-name:", _folded(username))


def _suspect() -> RateLimitItem:
    """SUSPECT_AFTER failures within the window of the per-name limit."""
    window = _item("INTAKE_LOGIN_USER_RATE_LIMIT")
    return type(window)(SUSPECT_AFTER, window.multiples)


def _failing_address_key() -> str:
    return "login-failing:" + get_remote_address()


def _code_key(user_id: int) -> str:
    return f"login-code:{user_id}"


def name_refused(username: str) -> bool:
    """The soft per-name limit: True if the name has had its fill of failures in this window and
    this address has failed SUSPECT_AFTER sign-ins (for any name) within the window as well."""
    item, strategy = _item("INTAKE_LOGIN_USER_RATE_LIMIT"), _strategy()
    return not strategy.test(item, _name_key(username)) and not strategy.test(_suspect(), _failing_address_key())


def sign_in_failed(username: str) -> None:
    """Count a wrong user name or password against the name, and mark this address as failing."""
    item, strategy = _item("INTAKE_LOGIN_USER_RATE_LIMIT"), _strategy()
    strategy.hit(item, _name_key(username))
    strategy.hit(_suspect(), _failing_address_key())


def code_wait_minutes(user_id: int) -> int:
    """0 while the account takes codes; else the minutes until it takes them again (too many wrong
    codes in this window)."""
    item, strategy = _item("INTAKE_LOGIN_CODE_RATE_LIMIT"), _strategy()
    if strategy.test(item, _code_key(user_id)):
        return 0
    seconds = strategy.get_window_stats(item, _code_key(user_id)).reset_time - time.time()
    return max(1, math.ceil(seconds / 60))


def code_failed(user_id: int) -> bool:
    """Count a wrong code against the account (and mark this address as failing); True if that
    was the last one allowed, so the account's codes are refused from now on."""
    item, strategy = _item("INTAKE_LOGIN_CODE_RATE_LIMIT"), _strategy()
    strategy.hit(item, _code_key(user_id))
    strategy.hit(_suspect(), _failing_address_key())
    return strategy.get_window_stats(item, _code_key(user_id)).remaining == 0

"""Staff sign-in (Flask-Login over server-side sessions), the optional TOTP step, sign-out, and
the role checks every staff page uses.

Flask-Login keeps the session's random token as the "user id" in the signed cookie; the loader
finds the live server-side session for it (`intake.auth.staff.live_session`), so a signed-out,
disabled, idle (INTAKE_STAFF_IDLE_MINUTES) or too old (INTAKE_STAFF_SESSION_HOURS) session is
anonymous at once, even if its old cookie is replayed. Sign-in failures all answer the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import validate_csrf
from sqlalchemy.orm import Session
from wtforms import PasswordField, StringField, ValidationError
from wtforms.validators import EqualTo, InputRequired, Length

from intake import audit
from intake.core.fhir_time import utcnow
from intake.storage.models import User
from intake.web import auditing, limits
from intake.web.context import readers, writer
from intake.auth import staff

bp = Blueprint("staff", __name__, url_prefix="/staff")

HOME = {"admin": "admin.users", "clinician": "clinician.intakes", "front-desk": "front_desk.day"}
PENDING = "staff_login_pending"  # password accepted, waiting for the TOTP code
PENDING_SECONDS = 300
FAILED = "Incorrect user name or password."  # one message for every failure: no user enumeration


class StaffUser(UserMixin):  # type: ignore[misc]
    """What Flask-Login holds for a request: the signed-in account and its session token."""

    def __init__(self, token: str, signed_in: staff.SignedIn) -> None:
        self.token, self.account = token, signed_in

    def get_id(self) -> str:
        return self.token

    @property
    def username(self) -> str:
        return self.account.username

    @property
    def role(self) -> str:
        return self.account.role


def register(app: Flask) -> None:
    manager = LoginManager(app)
    manager.session_protection = None  # the server-side session is the protection
    manager.user_loader(_load_user)

    @manager.unauthorized_handler
    def unauthorized() -> Any:
        return redirect(url_for("staff.login", next=request.full_path if request.query_string else request.path))

    app.jinja_env.globals["staff_user"] = lambda: current_user


def _load_user(token: str) -> StaffUser | None:
    config, now = current_app.config, utcnow()
    with readers() as db:
        found = staff.live_session(db, token, now=now,
                                      idle=timedelta(minutes=config["INTAKE_STAFF_IDLE_MINUTES"]),
                                      absolute=timedelta(hours=config["INTAKE_STAFF_SESSION_HOURS"]))
    if found is None:
        return None
    signed_in, stale = found
    if stale:
        with writer() as db:
            staff.touch_session(db, signed_in.session_hash, now=now)
    return StaffUser(token, signed_in)


def signed_in_role() -> str | None:
    """The role of the signed-in staff member, or None."""
    return current_user.role if current_user.is_authenticated else None


def role_required(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Signed out: to the sign-in page (back here afterwards). Signed in without the role: 403."""
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()
            if current_user.role not in roles:
                return render_template("staff/error.html", title="You cannot see this page",
                                       body="Your account does not have access to this page."), 403
            return view(*args, **kwargs)
        return wrapper
    return decorate


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site, else None: no scheme, no host, no `//` or `/\\`
    (browsers read both as another host), no control characters."""
    if not target or len(target) > 2000 or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _source() -> str:
    return request.remote_addr or ""


class LoginForm(FlaskForm):  # type: ignore[misc]
    # No length rule of its own: a name too long to exist fails like any other wrong name.
    username = StringField("User name", validators=[InputRequired(), Length(max=staff.MAX_PASSWORD)])
    password = PasswordField("Password", validators=[InputRequired(), Length(max=staff.MAX_PASSWORD)])


class CodeForm(FlaskForm):  # type: ignore[misc]
    code = StringField("Code from your authenticator app", validators=[InputRequired(), Length(max=10)])


def _open_session(db: Session, user: User, now: datetime) -> StaffUser:
    """A new server-side session for `user`, in the caller's transaction (sign in it after commit)."""
    token = staff.start_session(db, user, now=now)
    return StaffUser(token, staff.SignedIn.of(user, staff.session_hash(token)))


def _sign_in_browser(staff_user: StaffUser) -> None:
    """Bind this browser to the session: a fresh cookie session, so nothing from before carries over."""
    session.clear()
    login_user(staff_user)


def _finish_login(user_id: int, next_url: str | None) -> Any:
    """Open the server-side session (a new token: nothing from before sign-in carries over)."""
    now = utcnow()
    with writer() as db:
        user = staff.store.get_user(db, user_id)
        if user is None or user.disabled_at is not None:
            abort(403)
        staff_user = _open_session(db, user, now)
        audit.record(db, actor=audit.Actor("user", user.username), action="login", now=now, source=_source())
    _sign_in_browser(staff_user)
    return redirect(next_url or url_for(HOME[staff_user.role]))


def _failed(username: str, reason: str | None = None) -> None:
    """Audit a failed or refused sign-in; `reason` says why when it is not a wrong password or code."""
    with writer() as db:
        audit.record(db, actor=audit.Actor("anonymous", username[:64]), action="login-failed", outcome="failure",
                     now=utcnow(), source=_source(), detail={"reason": reason} if reason else None)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    next_url = safe_next(request.args.get("next"))
    form = LoginForm()
    error = None
    if request.method == "POST":
        if form.validate_on_submit():
            if limits.name_refused(form.username.data):  # the same for every name, known or not
                _failed(form.username.data, "too many failures for this user name, and from this address")
                return limits.too_many_attempts()
            with readers() as db:
                user = staff.check_credentials(db, form.username.data, form.password.data)
            if user is None:
                limits.sign_in_failed(form.username.data)
                _failed(form.username.data)
                error = FAILED
            elif user.totp_secret:
                session.clear()
                session[PENDING] = {"user": user.id, "at": int(time.time()), "next": next_url}
                return redirect(url_for("staff.login_code"))
            else:
                return _finish_login(user.id, next_url)
        else:
            error = "Enter your user name and password." if not form.csrf_token.errors else \
                "The sign-in form expired. Try again."
    status = 400 if error and error != FAILED else (401 if error else 200)
    return render_template("staff/login.html", form=form, error=error, next_url=next_url), status


@bp.route("/login/code", methods=["GET", "POST"])
def login_code() -> Any:
    pending = session.get(PENDING)
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        session.pop(PENDING, None)
        return redirect(url_for("staff.login"))
    form = CodeForm()
    error = None
    if request.method == "POST":
        if form.validate_on_submit():
            wait = limits.code_wait_minutes(pending["user"])
            if wait:
                return _codes_closed(_username(pending["user"]), wait, "codes refused: too many wrong codes for this account")
            with writer() as db:
                user = staff.store.get_user(db, pending["user"])
                ok = user is not None and user.disabled_at is None and staff.accept_totp(db, user, form.code.data, now=utcnow())
                name = user.username if user else ""
            if ok:
                session.pop(PENDING, None)
                return _finish_login(pending["user"], safe_next(pending.get("next")))
            if limits.code_failed(pending["user"]):
                return _codes_closed(name, limits.code_wait_minutes(pending["user"]),
                                     "too many wrong codes: the account's codes are refused for now")
            _failed(name)
            error = "That code is not right. Enter the current code from your app."
        else:
            error = "Enter the 6-digit code from your authenticator app."
    return render_template("staff/code.html", form=form, error=error), (401 if error else 200)


def _username(user_id: int) -> str:
    with readers() as db:
        user = staff.store.get_user(db, user_id)
        return user.username if user else ""


def _codes_closed(username: str, wait: int, reason: str) -> Any:
    """Too many wrong codes for this account, from wherever: audited, and the sign-in starts over
    once the wait is over. Only someone with the password gets here, so the page says so."""
    session.pop(PENDING, None)
    _failed(username, reason)
    return render_template("staff/error.html", title="Too many wrong codes",
                           body=f"After too many wrong codes this account takes no code, not even a right one, "
                                f"for {wait} minute{'s' if wait != 1 else ''}. Then sign in again. If it was not you "
                                "who tried, tell an admin at once: someone else knows your password."), 429


@bp.post("/logout")
def logout() -> Any:
    """Ends the server-side session: the cookie, even if copied, no longer signs anyone in."""
    try:
        validate_csrf(request.form.get("csrf_token"))
    except ValidationError:
        abort(400)
    if current_user.is_authenticated:
        now = utcnow()
        with writer() as db:
            staff.end_session(db, current_user.account.session_hash, now=now)
            audit.record(db, actor=audit.Actor("user", current_user.username), action="logout", now=now, source=_source())
        logout_user()
    session.clear()
    return redirect(url_for("staff.login", signed_out=1))


@bp.route("/two-step", methods=["GET", "POST"])
@role_required("admin", "clinician", "front-desk")
def two_step() -> Any:
    """Turn on the TOTP second factor: scan or type the secret, then prove it with a code. Once it
    is on, this page does not replace it: whoever holds a signed-in browser must not be able to
    move the second factor to their own phone (an admin turns it off first)."""
    hashed = current_user.account.session_hash
    with writer() as db:  # the offer stays with the server-side session, never in the cookie
        user = staff.store.get_user(db, current_user.account.user_id)
        secret = None if user is None or user.totp_secret is not None else staff.offered_totp(db, hashed)
    if secret is None:
        return render_template("staff/error.html", title="Two-step sign-in is on",
                               body="Signing in asks for a code from your app. To move it to a new phone, "
                                    "ask an admin to turn it off, then set it up again here."), \
            (200 if request.method == "GET" else 409)
    form = CodeForm()
    error = None
    if request.method == "POST":
        if form.validate_on_submit():
            now = utcnow()
            with writer() as db:
                user = staff.store.get_user(db, current_user.account.user_id)
                ok = user is not None and staff.enable_totp(db, user, hashed, form.code.data, now=now)
                if ok:
                    audit.record(db, actor=audit.Actor("user", current_user.username), action="update", now=now,
                                 entities=[f"User/{current_user.username}"], detail={"change": "second factor on"},
                                 source=_source())
            if ok:
                return render_template("staff/error.html", title="Two-step sign-in is on",
                                       body="From now on, signing in asks for a code from your app.")
            error = "That code is not right. Check your phone's time and enter the current code."
        else:
            error = "Enter the 6-digit code from your authenticator app."
    return render_template("staff/two_step.html", form=form, error=error, secret=secret,
                           uri=staff.totp_uri(secret, current_user.username)), (400 if error else 200)


def sentence(message: str) -> str:
    """An AccountError's message as a sentence for the page (it may hold several sentences)."""
    message = message.strip()
    return message[:1].upper() + message[1:] + ("" if message.endswith((".", "!", "?")) else ".")


class NewPasswordForm(FlaskForm):  # type: ignore[misc]
    current_password = PasswordField("Current password", validators=[
        InputRequired("Enter your current password."), Length(max=staff.MAX_PASSWORD)])
    new_password = PasswordField(f"New password (at least {staff.MIN_PASSWORD} characters)", validators=[
        InputRequired("Enter a new password."), Length(max=staff.MAX_PASSWORD)])
    new_password_again = PasswordField("New password again", validators=[
        InputRequired("Enter the new password again."),
        EqualTo("new_password", message="The two new passwords are not the same.")])


def _password_problems(form: NewPasswordForm, account: staff.SignedIn) -> bool:
    """Check the rules (as `reset_password` will: the display name counts too) and the current
    password, so every problem shows at once, each on its field. True if there is any."""
    new, username = form.new_password.data, account.username
    try:
        staff.check_password_rules(new, username, account.display_name)
    except staff.AccountError as exc:
        form.new_password.errors.append(sentence(str(exc)))
    if new == form.current_password.data:
        form.new_password.errors.append("The new password must be different from the current one.")
    with readers() as db:  # the slow (scrypt) check runs outside any write transaction
        if staff.check_credentials(db, username, form.current_password.data) is None:
            form.current_password.errors.append("Your current password is not right.")
    return bool(form.errors)


@bp.route("/password", methods=["GET", "POST"])
@role_required("admin", "clinician", "front-desk")
def password() -> Any:
    """Change your own password (OWASP ASVS 2.1.5, 2.1.6): the current one first. Every session of
    the account ends, a copied cookie too; this browser gets a new session and stays signed in."""
    form = NewPasswordForm()
    if request.method == "GET":
        return render_template("staff/password.html", form=form, changed=request.args.get("changed") == "1")
    if not form.validate_on_submit():
        error = "The form expired. Try again." if form.csrf_token.errors else None
        return render_template("staff/password.html", form=form, error=error), 400
    username = current_user.username
    if _password_problems(form, current_user.account):
        return render_template("staff/password.html", form=form), 400
    now = utcnow()
    try:
        with writer() as db:
            user = staff.reset_password(db, username, form.new_password.data, now=now)
            auditing.record_change(db, "update", f"User/{username}", detail={"change": "password"}, now=now)
            staff_user = _open_session(db, user, now)
    except staff.AccountError as exc:  # the account changed since the check above (renamed, or gone)
        form.new_password.errors.append(sentence(str(exc)))
        return render_template("staff/password.html", form=form), 400
    _sign_in_browser(staff_user)
    return redirect(url_for("staff.password", changed=1))

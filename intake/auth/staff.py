"""Staff accounts: passwords, the optional TOTP second factor, and server-side sessions.

Why server-side sessions: a signed cookie alone cannot be taken back. Here the cookie carries a
random 256-bit token and the database keeps its SHA-256 with the session's times, so signing out,
disabling a user or resetting a password ends the session at once (a copied old cookie is refused),
and the idle and absolute timeouts are enforced by the server, not by the browser.

Passwords are hashed with werkzeug's scrypt (memory-hard: N=2^15, r=8 — 32 MiB per check). A
wrong user name is checked against a decoy hash, so name and password failures cost the same and
answer the same (no user enumeration).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash
from zxcvbn import zxcvbn

from intake.errors import IntakeError
from intake.storage import accounts as store
from intake.storage.models import ROLES, User

USERNAME = re.compile(r"[a-z0-9][a-z0-9._@-]{1,63}")
MIN_PASSWORD, MAX_PASSWORD = 12, 256
TOTP_ISSUER = "Intake"
MIN_GUESS_SCORE = 3  # zxcvbn's 0-4 scale; 3 = "safely unguessable", moderate protection offline
GUESS_CHECK_LENGTH = 72  # zxcvbn's own limit (its matching grows with the square of the length)
# How long last_seen may lag: a session's activity is written at most once a minute, so the idle
# timeout is enforced to within that minute without a database write on every page.
TOUCH_EVERY = timedelta(minutes=1)

_DECOY = generate_password_hash(secrets.token_urlsafe(16))


class AccountError(IntakeError):
    """A request about accounts that cannot be done (400); the message is safe to show to staff."""

    status = 400


class UnknownUser(AccountError):
    """No account has the user name given: 404."""

    status = 404


class UserExists(AccountError):
    """The user name is taken: 409."""

    status = 409


@dataclass(frozen=True)
class SignedIn:
    """The staff member behind a live session (what the web layer keeps for a request)."""

    user_id: int
    username: str
    display_name: str
    role: str
    session_hash: str

    @classmethod
    def of(cls, user: User, session_hash: str) -> SignedIn:
        return cls(user.id, user.username, user.display_name, user.role, session_hash)


def normalise_username(raw: str) -> str:
    return raw.strip().casefold()


def check_password_rules(password: str, username: str, display_name: str = "") -> None:
    """NIST SP 800-63B style: length matters, composition rules do not, and a password that is
    common, leaked-list-like or built from the user's own names is refused (zxcvbn's estimate of
    the guesses it would take must be 10^8 or more: score MIN_GUESS_SCORE)."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(f"the password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long")
    if password.casefold() == username.casefold():
        raise AccountError("the password must not be the user name")
    # a longer password is judged by its first GUESS_CHECK_LENGTH characters
    estimate = zxcvbn(password[:GUESS_CHECK_LENGTH], user_inputs=[username, *display_name.split(), TOTP_ISSUER])
    if estimate["score"] < MIN_GUESS_SCORE:
        warning = estimate["feedback"].get("warning") or "It is made of common words or patterns."
        raise AccountError(f"this password is too easy to guess. {warning.rstrip('.')}. "
                           "Try a phrase of four or more unrelated words")


def add_user(session: Session, *, username: str, display_name: str, role: str, password: str, now: datetime) -> User:
    username = normalise_username(username)
    if not USERNAME.fullmatch(username):
        raise AccountError("a user name is 2 to 64 of a-z, 0-9, '.', '_', '@', '-'")
    if role not in ROLES:
        raise AccountError(f"the role must be one of {', '.join(ROLES)}")
    display_name = " ".join(display_name.split()) or username
    if len(display_name) > 128 or not display_name.isprintable():
        raise AccountError("the display name must be up to 128 printable characters")
    if store.user_named(session, username) is not None:
        raise UserExists(f"there is already a user {username!r}")
    check_password_rules(password, username, display_name)
    return store.add_user(session, username=username, display_name=display_name, role=role,
                          password_hash=generate_password_hash(password), now=now)


def existing_user(session: Session, username: str) -> User:
    user = store.user_named(session, normalise_username(username))
    if user is None:
        raise UnknownUser(f"no user {username!r}")
    return user


def set_disabled(session: Session, username: str, disabled: bool, *, now: datetime) -> User:
    """Disable (ending every session at once) or re-enable a user."""
    user = existing_user(session, username)
    user.disabled_at = now if disabled else None
    if disabled:
        store.end_sessions_of(session, user.id, now=now)
    session.flush()
    return user


def reset_password(session: Session, username: str, password: str, *, now: datetime) -> User:
    """Set a new password; every open session of the user ends."""
    user = existing_user(session, username)
    check_password_rules(password, user.username, user.display_name)
    user.password_hash = generate_password_hash(password)
    user.password_changed_at = now
    store.end_sessions_of(session, user.id, now=now)
    session.flush()
    return user


def check_credentials(session: Session, username: str, password: str) -> User | None:
    """The enabled user with this name and password, else None (the same cost either way)."""
    user = store.user_named(session, normalise_username(username)) if len(username) <= 64 else None
    ok = check_password_hash(user.password_hash if user else _DECOY, password[:MAX_PASSWORD])
    if user is None or not ok or user.disabled_at is not None:
        return None
    return user


# -- TOTP (RFC 6238, 30-second steps, 6 digits) --------------------------------------------------

def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, username: str) -> str:
    """The otpauth:// URI an authenticator app takes (typed in or as a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=TOTP_ISSUER)


def totp_step(secret: str, code: str, *, now: datetime, after: int | None) -> int | None:
    """The time step `code` is valid for (this step or the one before or after), or None. A step
    at or before `after` (the last one accepted) is refused, so a seen code cannot be replayed."""
    code = code.strip().replace(" ", "")
    if not re.fullmatch(r"\d{6}", code):
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // totp.interval
    for step in (current - 1, current, current + 1):
        if secrets.compare_digest(totp.generate_otp(step), code) and (after is None or step > after):
            return step
    return None


def offered_totp(session: Session, hashed: str) -> str:
    """The secret offered to this staff session for turning on two-step sign-in (made on first
    ask). Kept with the server-side session, not in the cookie: a cookie is readable by whoever
    holds it, and a secret read there would outlive the session."""
    secret = store.pending_totp(session, hashed)
    if secret is None:
        secret = new_totp_secret()
        store.set_pending_totp(session, hashed, secret)
    return secret


def enable_totp(session: Session, user: User, hashed: str, code: str, *, now: datetime) -> bool:
    """Turn on the second factor once the user proves their app has the secret offered to this
    session (`hashed`); the offer is then used up."""
    if user.totp_secret is not None:  # on already: replacing it is an admin's job (clear_totp)
        return False
    secret = store.pending_totp(session, hashed)
    step = totp_step(secret, code, now=now, after=None) if secret else None
    if step is None:
        return False
    user.totp_secret, user.totp_last_step = secret, step
    store.set_pending_totp(session, hashed, None)
    session.flush()
    return True


def accept_totp(session: Session, user: User, code: str, *, now: datetime) -> bool:
    """Check a sign-in code and remember its step, so it cannot be used again: the step is
    claimed with a conditional update, not read-then-written, so that of several requests posting
    the same code at once only one is accepted (on PostgreSQL each may have read the old step)."""
    if not user.totp_secret:
        return False
    step = totp_step(user.totp_secret, code, now=now, after=user.totp_last_step)
    return step is not None and store.claim_totp_step(session, user, step)


def clear_totp(session: Session, username: str) -> User:
    user = existing_user(session, username)
    user.totp_secret = user.totp_last_step = None
    session.flush()
    return user


# -- sessions -------------------------------------------------------------------------------------

def session_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def start_session(session: Session, user: User, *, now: datetime) -> str:
    """Open a server-side session; returns the raw token for the cookie (kept nowhere else)."""
    token = secrets.token_urlsafe(32)
    store.open_session(session, session_hash=session_hash(token), user_id=user.id, now=now)
    return token


def live_session(session: Session, token: str, *, now: datetime, idle: timedelta,
                 absolute: timedelta) -> tuple[SignedIn, bool] | None:
    """The signed-in user of a session token if the session is still live, and whether its
    last_seen should be written now (see TOUCH_EVERY). Ended, idle, too old, disabled: None."""
    if not isinstance(token, str) or len(token) > 100:
        return None
    found = store.session_and_user(session, session_hash(token))
    if found is None:
        return None
    staff_session, user = found
    if (staff_session.ended_at is not None or user.disabled_at is not None
            or now - staff_session.last_seen_at > idle or now - staff_session.created_at > absolute):
        return None
    return SignedIn.of(user, staff_session.id), now - staff_session.last_seen_at >= TOUCH_EVERY


def touch_session(session: Session, hashed: str, *, now: datetime) -> None:
    store.touch_session(session, hashed, now=now)


def end_session(session: Session, hashed: str, *, now: datetime) -> None:
    store.end_session(session, hashed, now=now)

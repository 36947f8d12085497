"""Staff sign-in: no user enumeration, same-site `next=` only, sessions that end for real (logout,
idle, disable, password reset), the TOTP step, rate limits, cookie flags; changing your own
password (the current one first; every other session ends, this browser stays signed in)."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update

from intake.auth import staff
from intake.core.fhir_time import utcnow
from intake.services import services
from intake.storage.db import session_scope
from intake.storage.models import AuditRecord, StaffSession, User
from intake.web.auditing import flush
from intake.web.limits import SUSPECT_AFTER
from tests.conftest import AppFactory
from tests.web.conftest import csrf, error_summary
from tests.web.flow import STAFF, add_staff, sign_in, signed_in


@pytest.fixture
def staff_app(make_app: AppFactory) -> Flask:
    return make_app()


def test_every_failed_sign_in_looks_the_same(staff_app: Flask) -> None:
    add_staff(staff_app)
    add_staff(staff_app, "gone", "clinician")
    client = staff_app.test_client()
    assert client.post("/staff/logout", data={"csrf_token": csrf(client.get("/staff/login").text)}).status_code == 302
    with session_scope(services(staff_app).sessions) as session:
        staff.set_disabled(session, "gone", True, now=utcnow())
    answers = []
    for username, password in [
        (STAFF[0], "wrong password!"),
        ("nobody", STAFF[1]),
        ("gone", STAFF[1]),
        ("x" * 65, STAFF[1]),
    ]:
        response = sign_in(client, username, password)
        body = response.text.replace(csrf(response.text), "")
        answers.append((response.status_code, body.replace(f'value="{username}"', "")))
    assert {status for status, _ in answers} == {401}
    assert len({body for _, body in answers}) == 1, "a failure must not say which part was wrong"
    assert "Incorrect user name or password." in answers[0][1]


@pytest.mark.parametrize("target", [
    "//evil.com", "/\\evil.com", "https:evil.com", "https://evil.com/", "http://evil.com", "\\\\evil.com",
    "//evil.com/%2F..", "/\\/evil.com", "javascript:alert(1)", "\t//evil.com", " //evil.com", "/%0d%0aSet-Cookie:x=y",
    "/\t/evil.com", "evil.com", "///evil.com", "HTTPS://evil.com",
])
def test_next_goes_only_to_paths_on_this_site(staff_app: Flask, target: str) -> None:
    add_staff(staff_app)
    response = sign_in(staff_app.test_client(), next_url=target)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location in ("/clinician/", "/%0d%0aSet-Cookie:x=y"), location


def test_next_returns_to_the_page_asked_for(staff_app: Flask) -> None:
    add_staff(staff_app)
    client = staff_app.test_client()
    asked = client.get("/clinician/flags")
    assert asked.status_code == 302 and asked.headers["Location"] == "/staff/login?next=/clinician/flags"
    response = sign_in(client, next_url="/clinician/flags")
    assert response.headers["Location"] == "/clinician/flags"
    assert client.get("/clinician/flags").status_code == 200


def test_a_replayed_cookie_after_logout_is_refused(staff_app: Flask) -> None:
    client = signed_in(staff_app)
    cookie = client.get_cookie("session")
    assert cookie is not None and client.get("/clinician/").status_code == 200
    page = client.get("/clinician/").text
    assert client.post("/staff/logout", data={"csrf_token": csrf(page)}).status_code == 302
    assert client.get("/clinician/").status_code == 302
    replay = staff_app.test_client()
    replay.set_cookie("session", cookie.value)  # the old cookie, copied before logout
    assert replay.get("/clinician/").status_code == 302


def _age_sessions(app: Flask, **delta: float) -> None:
    with services(app).sessions() as session, session.begin():
        session.execute(update(StaffSession).values(last_seen_at=utcnow() - timedelta(**delta)))


def test_idle_sessions_end_and_activity_keeps_them(staff_app: Flask) -> None:
    client = signed_in(staff_app)
    _age_sessions(staff_app, minutes=14)
    assert client.get("/clinician/").status_code == 200  # 14 idle minutes: still in, and now fresh
    with services(staff_app).sessions() as session:
        seen = session.scalars(select(StaffSession.last_seen_at)).one()
    assert utcnow() - seen < timedelta(minutes=1)
    _age_sessions(staff_app, minutes=16)
    response = client.get("/clinician/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/staff/login")


def test_absolute_timeout(staff_app: Flask) -> None:
    client = signed_in(staff_app)
    with services(staff_app).sessions() as session, session.begin():
        session.execute(update(StaffSession).values(created_at=utcnow() - timedelta(hours=10, minutes=1)))
    assert client.get("/clinician/").status_code == 302


def test_disabling_or_resetting_a_user_ends_their_sessions(staff_app: Flask) -> None:
    client = signed_in(staff_app)
    runner = staff_app.test_cli_runner()
    assert runner.invoke(args=["intake", "user", "disable", STAFF[0]]).exit_code == 0
    assert client.get("/clinician/").status_code == 302
    assert sign_in(client).status_code == 401  # and cannot sign in again
    assert runner.invoke(args=["intake", "user", "enable", STAFF[0]]).exit_code == 0
    client = signed_in(staff_app)
    result = runner.invoke(args=["intake", "user", "reset", STAFF[0]], input="a brand new password\n" * 2)
    assert result.exit_code == 0, result.output
    assert client.get("/clinician/").status_code == 302
    assert sign_in(client, password="a brand new password").status_code == 302


def test_totp_sign_in_and_a_code_is_not_accepted_twice(staff_app: Flask) -> None:
    client = signed_in(staff_app)
    page = client.get("/staff/two-step").text
    secret = page.split('<code class="secret">')[1].split("<")[0]
    wrong = client.post("/staff/two-step", data={"code": "000000" if pyotp.TOTP(secret).now() != "000000" else "111111",
                                                 "csrf_token": csrf(page)})
    assert wrong.status_code == 400 and "not right" in wrong.text
    turned_on_with = pyotp.TOTP(secret).now()
    ok = client.post("/staff/two-step", data={"code": turned_on_with, "csrf_token": csrf(page)})
    assert ok.status_code == 200 and "is on" in ok.text
    # Once on, the page offers no new secret: a signed-in browser cannot move the factor elsewhere.
    again = client.get("/staff/two-step")
    assert (
        again.status_code == 200
        and "ask an admin to turn it off" in again.text
        and '<code class="secret">' not in again.text
    )
    assert client.post("/staff/two-step", data={"code": turned_on_with, "csrf_token": csrf(page)}).status_code == 409
    fresh = staff_app.test_client()
    response = sign_in(fresh)
    assert response.status_code == 302 and response.headers["Location"] == "/staff/login/code"
    assert fresh.get("/clinician/").status_code == 302  # the password alone does not sign in
    code_page = fresh.get("/staff/login/code").text
    # The code that turned it on is refused as a replay (kept, not recomputed: the 30 s step may
    # have rolled over since, and a fresh code would rightly be accepted - CI saw exactly that).
    assert (
        fresh.post("/staff/login/code", data={"code": turned_on_with, "csrf_token": csrf(code_page)}).status_code == 401
    )
    with services(staff_app).sessions() as session, session.begin():
        session.execute(update(User).values(totp_last_step=User.totp_last_step - 2))  # as if 60 s had passed
    done = fresh.post("/staff/login/code", data={"code": pyotp.TOTP(secret).now(), "csrf_token": csrf(code_page)})
    assert done.status_code == 302 and done.headers["Location"] == "/clinician/"
    assert fresh.get("/clinician/").status_code == 200
    assert staff_app.test_cli_runner().invoke(args=["intake", "user", "totp", STAFF[0], "--clear"]).exit_code == 0
    assert sign_in(staff_app.test_client()).headers["Location"] == "/clinician/"


def with_totp(app: Flask, username: str = STAFF[0]) -> pyotp.TOTP:
    """Turn on two-step sign-in for `username` (made if missing); its authenticator."""
    add_staff(app, username)
    secret = pyotp.random_base32()
    with session_scope(services(app).sessions) as session:
        session.execute(update(User).where(User.username == username).values(totp_secret=secret, totp_last_step=None))
    return pyotp.TOTP(secret)


def awaiting_code(app: Flask, username: str = STAFF[0], address: str = "127.0.0.1") -> tuple[FlaskClient, str]:
    """A browser past the password step (from `address`), and the code page's form token."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    response = sign_in(client, username)
    assert response.status_code == 302 and response.headers["Location"] == "/staff/login/code", response.text
    return client, csrf(client.get("/staff/login/code").text)


def test_finding_6_a_totp_code_signs_in_once_under_concurrent_posts(make_app: AppFactory) -> None:
    """Six browsers past the password step post the same valid code at the same moment: exactly
    one signs in (the review saw five of six on PostgreSQL: read, check, then write)."""
    app = make_app(INTAKE_LOGIN_RATE_LIMIT="100 per minute", INTAKE_LOGIN_CODE_RATE_LIMIT="100 per minute")
    totp = with_totp(app)
    browsers = [awaiting_code(app) for _ in range(6)]
    code, start = totp.now(), threading.Barrier(len(browsers))
    statuses: list[int] = []

    def post(client: FlaskClient, token: str) -> None:
        start.wait()
        statuses.append(client.post("/staff/login/code", data={"code": code, "csrf_token": token}).status_code)

    threads = [threading.Thread(target=post, args=browser) for browser in browsers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [302, 401, 401, 401, 401, 401]
    assert sum(client.get("/clinician/").status_code == 200 for client, _ in browsers) == 1


def test_the_offered_totp_secret_stays_on_the_server(staff_app: Flask) -> None:
    client = signed_in(staff_app)
    secret = client.get("/staff/two-step").text.split('<code class="secret">')[1].split("<")[0]
    assert client.get("/staff/two-step").text.count(secret) >= 1  # the same offer on a reload
    cookie = client.get_cookie("session")
    assert cookie is not None
    readable = staff_app.session_interface.get_signing_serializer(staff_app).loads(cookie.value)  # type: ignore[attr-defined]
    assert secret not in json.dumps(readable) and len(secret) >= 32
    other = signed_in(staff_app)  # another session of the same account gets its own offer
    assert secret not in other.get("/staff/two-step").text


def from_address(app: Flask, address: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_failed_sign_ins_are_limited_per_address(make_app: AppFactory) -> None:
    app = make_app(INTAKE_LOGIN_RATE_LIMIT="3 per minute")
    add_staff(app)
    client = app.test_client()
    statuses = [sign_in(client, password="wrong password!").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert "Too many sign-in attempts" in sign_in(client).text  # even the right password waits
    assert sign_in(client, "someone", "wrong password!").status_code == 429  # whatever the name
    assert sign_in(from_address(app, "10.0.0.9")).status_code == 302  # other addresses are not limited


def test_failed_sign_ins_are_limited_per_address_and_user_name(make_app: AppFactory) -> None:
    app = make_app(INTAKE_LOGIN_USER_RATE_LIMIT="3 per hour")
    add_staff(app)
    client = from_address(app, "10.0.0.1")
    statuses = [sign_in(client, password="wrong password!").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert sign_in(client).status_code == 429  # this address has had its tries at this name
    assert sign_in(client, "someone", "wrong password!").status_code == 401  # other names from it go on
    assert sign_in(from_address(app, "10.0.0.9")).status_code == 302  # and the name's owner is not locked out


def test_failures_for_a_user_name_from_many_addresses_do_not_lock_its_owner_out(make_app: AppFactory) -> None:
    """ASVS 2.2.1: slowing a distributed guesser must not become a lock-out anyone can cause. Over
    the per-name limit, an address that has failed SUSPECT_AFTER times gets no more tries at the
    name (the hard limits per address, and per address and name, stay as they were); an address
    that has not been failing, with the right password and the right code, still signs in."""
    app = make_app(INTAKE_LOGIN_USER_RATE_LIMIT="5 per hour")
    totp = with_totp(app)
    attackers = [from_address(app, f"203.0.113.{n}") for n in range(1, 11)]
    for _ in range(SUSPECT_AFTER):
        assert [sign_in(a, password="wrong password!").status_code for a in attackers] == [401] * 10
    assert {sign_in(a, password="wrong password!").status_code for a in attackers} == {429}  # each one again
    refused = sign_in(attackers[0])  # even with the right password: this address has been failing
    assert refused.status_code == 429 and "Too many sign-in attempts" in refused.text
    owner = from_address(app, "198.51.100.7")
    for _ in range(SUSPECT_AFTER - 1):  # a typo or two while the name is under attack
        assert sign_in(owner, password="wrong password!").status_code == 401
    response = sign_in(owner)
    assert response.status_code == 302 and response.headers["Location"] == "/staff/login/code"
    done = owner.post(
        "/staff/login/code", data={"code": totp.now(), "csrf_token": csrf(owner.get("/staff/login/code").text)}
    )
    assert done.status_code == 302 and owner.get("/clinician/").status_code == 200
    late = from_address(app, "203.0.113.99")  # a fresh attacker: SUSPECT_AFTER guesses, then no more
    assert [sign_in(late, password="wrong password!").status_code for _ in range(SUSPECT_AFTER + 1)] == \
        [401] * SUSPECT_AFTER + [429]
    assert sign_in(from_address(app, "203.0.113.100"), "someone", "wrong password!").status_code == 401  # other names
    flush(app)
    with services(app).sessions() as session:
        reasons = [json.loads(row.detail).get("reason") for row in session.scalars(
            select(AuditRecord).where(AuditRecord.action == "login-failed", AuditRecord.source == "203.0.113.1"))]
    refusal = "too many failures for this user name, and from this address"
    assert reasons == [None] * SUSPECT_AFTER + [refusal, refusal]  # the wrong passwords, then both refusals


def wrong_code(totp: pyotp.TOTP) -> str:
    """A code valid at no step near now."""
    near = {totp.at(utcnow() + timedelta(seconds=s)) for s in (-60, -30, 0, 30, 60)}
    return next(c for c in ("000000", "111111", "222222", "333333", "444444", "555555", "666666") if c not in near)


def test_wrong_codes_are_limited_per_account_whatever_the_address(make_app: AppFactory) -> None:
    app = make_app(INTAKE_LOGIN_CODE_RATE_LIMIT="3 per 15 minutes")
    totp, other = with_totp(app), with_totp(app, "nurse")
    statuses = []
    for n in range(3):  # each from its own address, each its own pending sign-in
        client, token = awaiting_code(app, address=f"203.0.113.{n}")
        statuses.append(client.post("/staff/login/code", data={"code": wrong_code(totp), "csrf_token": token}))
    assert [r.status_code for r in statuses] == [401, 401, 429]
    assert "Too many wrong codes" in statuses[-1].text and "not even a right one" in statuses[-1].text
    client, token = awaiting_code(app, address="198.51.100.7")  # the owner: password right, code right
    refused = client.post("/staff/login/code", data={"code": totp.now(), "csrf_token": token})
    assert refused.status_code == 429 and "for 15 minutes" in refused.text
    assert client.get("/clinician/").status_code == 302 and client.get("/staff/login/code").status_code == 302
    nurse, token = awaiting_code(app, "nurse", address="203.0.113.0")
    assert nurse.post("/staff/login/code", data={"code": other.now(), "csrf_token": token}).status_code == 302
    flush(app)
    with services(app).sessions() as session:
        rows = session.scalars(select(AuditRecord).where(AuditRecord.action == "login-failed")).all()
    assert [(row.actor, row.source, json.loads(row.detail).get("reason")) for row in rows] == [
        (STAFF[0], "203.0.113.0", None), (STAFF[0], "203.0.113.1", None),
        (STAFF[0], "203.0.113.2", "too many wrong codes: the account's codes are refused for now"),
        (STAFF[0], "198.51.100.7", "codes refused: too many wrong codes for this account")]
    services(app).limiter.reset()  # as if the window had passed
    client, token = awaiting_code(app, address="198.51.100.7")
    assert client.post("/staff/login/code", data={"code": totp.now(), "csrf_token": token}).status_code == 302


def test_successful_sign_ins_do_not_count_towards_the_limit(make_app: AppFactory) -> None:
    app = make_app(INTAKE_LOGIN_RATE_LIMIT="2 per minute")
    add_staff(app)
    for _ in range(4):
        assert sign_in(app.test_client()).status_code == 302


def test_cookies_are_http_only_lax_and_host_prefixed_over_https(make_app: AppFactory) -> None:
    app = make_app(INTAKE_BASE_URL="https://intake.example.org")
    add_staff(app)
    client: FlaskClient = app.test_client()
    token = csrf(client.get("/staff/login", base_url="https://localhost").text)
    response = client.post("/staff/login", base_url="https://localhost",
                           data={"username": STAFF[0], "password": STAFF[1], "csrf_token": token})
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-intake=") and "Secure" in cookie and "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie and "Path=/" in cookie and "Domain" not in cookie


# -- changing your own password (OWASP ASVS 2.1.5, 2.1.6) ------------------------------------------

NEW_PASSWORD = "a fresh and long passphrase"


def change_password(client: FlaskClient, current: str, new: str, again: str | None = None) -> Any:
    token = csrf(client.get("/staff/password").text)
    return client.post("/staff/password", data={"current_password": current, "new_password": new,
                                                "new_password_again": new if again is None else again,
                                                "csrf_token": token})


def password_rows(app: Flask) -> list[AuditRecord]:
    flush(app)
    with services(app).sessions() as session:
        found = [row for row in session.scalars(select(AuditRecord).order_by(AuditRecord.seq))
                 if json.loads(row.detail).get("change") == "password"]
        session.expunge_all()
    return found


def audit_rows(app: Flask) -> int:
    flush(app)
    with services(app).sessions() as session:
        return session.scalar(select(func.count()).select_from(AuditRecord)) or 0


@pytest.mark.parametrize(
    "current, new, again, problems",
    [
        ("not my password!", NEW_PASSWORD, None, [("current_password", "Your current password is not right.")]),
        (
            STAFF[1],
            NEW_PASSWORD,
            NEW_PASSWORD + "!",
            [("new_password_again", "The two new passwords are not the same.")],
        ),
        (STAFF[1], "too short", None, [("new_password", "The password must be 12 to 256 characters long.")]),
        (STAFF[1], STAFF[1], None, [("new_password", "The new password must be different from the current one.")]),
        (
            STAFF[1],
            "",
            "",
            [("new_password", "Enter a new password."), ("new_password_again", "Enter the new password again.")],
        ),
        ("", "too short", None, [("current_password", "Enter your current password.")]),
        (
            "wrong password!",
            "too short",
            None,
            [
                ("new_password", "The password must be 12 to 256 characters long."),
                ("current_password", "Your current password is not right."),
            ],
        ),
    ],
)
def test_a_password_change_is_refused_with_the_reason(staff_app: Flask, current: str, new: str, again: str | None,
                                                      problems: list[tuple[str, str]]) -> None:
    client = signed_in(staff_app)
    response = change_password(client, current, new, again)
    assert response.status_code == 400 and "<title>Error: Change your password" in response.text
    assert sorted((f, m.split(": ", 1)[1]) for f, m in error_summary(response.text)) == sorted(problems)
    assert all(f'value="{typed}"' not in response.text for typed in (current, new) if typed)  # never echoed
    assert client.get("/clinician/").status_code == 200  # still signed in
    assert sign_in(staff_app.test_client()).status_code == 302  # the old password still works
    assert password_rows(staff_app) == []


def test_a_changed_password_keeps_this_browser_and_ends_every_other_session(staff_app: Flask) -> None:
    client = signed_in(staff_app)
    elsewhere = signed_in(staff_app)  # the same account in another browser
    copied = client.get_cookie("session")
    assert copied is not None
    rows_before = audit_rows(staff_app)
    response = change_password(client, STAFF[1], NEW_PASSWORD)
    assert audit_rows(staff_app) == rows_before + 1  # the change, and no sign-in row for the new session
    assert response.status_code == 302 and response.headers["Location"] == "/staff/password?changed=1"
    done = client.get(response.headers["Location"])
    assert done.status_code == 200 and "Your password is changed" in done.text
    assert client.get("/clinician/").status_code == 200  # this browser: a new session, still signed in
    assert client.get_cookie("session").value != copied.value
    assert elsewhere.get("/clinician/").status_code == 302
    replay = staff_app.test_client()
    replay.set_cookie("session", copied.value)  # the cookie as it was before the change
    assert replay.get("/clinician/").status_code == 302
    assert sign_in(staff_app.test_client()).status_code == 401  # the old password
    assert sign_in(staff_app.test_client(), password=NEW_PASSWORD).status_code == 302
    [row] = password_rows(staff_app)
    assert (row.action, row.actor_kind, row.actor, row.outcome) == ("update", "user", STAFF[0], "success")
    assert json.loads(row.entities) == [f"User/{STAFF[0]}"]


def test_a_password_change_needs_the_form_token_and_a_signed_in_user(staff_app: Flask) -> None:
    client = signed_in(staff_app)
    response = client.post("/staff/password", data={"current_password": STAFF[1], "new_password": NEW_PASSWORD,
                                                    "new_password_again": NEW_PASSWORD})
    assert response.status_code == 400 and "The form expired" in response.text
    assert sign_in(staff_app.test_client()).status_code == 302  # unchanged
    anonymous = staff_app.test_client()
    assert anonymous.get("/staff/password").headers["Location"] == "/staff/login?next=/staff/password"


def test_the_staff_header_links_to_the_password_page(staff_app: Flask) -> None:
    for role in ("admin", "clinician", "front-desk"):
        client = signed_in(staff_app, role)
        page = client.get("/staff/password")
        assert page.status_code == 200 and '<a href="/staff/password">Change password</a>' in page.text
        assert 'autocomplete="current-password"' in page.text and page.text.count('autocomplete="new-password"') == 2
        assert '<a href="/staff/two-step">Two-step sign-in</a>' in page.text


def test_wrong_current_passwords_are_rate_limited(make_app: AppFactory) -> None:
    app = make_app(INTAKE_LOGIN_RATE_LIMIT="100 per minute", INTAKE_LOGIN_USER_RATE_LIMIT="3 per hour")
    client = signed_in(app)
    statuses = [change_password(client, "not my password!", NEW_PASSWORD).status_code for _ in range(4)]
    assert statuses == [400, 400, 400, 429]
    assert "Too many attempts" in change_password(client, STAFF[1], NEW_PASSWORD).text  # even the right one waits
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "10.0.0.7"
    sign_in(elsewhere)
    assert change_password(elsewhere, STAFF[1], NEW_PASSWORD).status_code == 429  # counted per account
    other = signed_in(app, "front-desk")
    assert change_password(other, STAFF[1], NEW_PASSWORD).status_code == 302  # other accounts are not

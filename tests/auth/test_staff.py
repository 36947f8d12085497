"""intake.auth.staff: account rules, credentials without enumeration, TOTP replay, session liveness."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from intake.auth import staff
from intake.storage.db import make_engine, make_session_factory, session_scope
from intake.storage.migrate import upgrade
from intake.storage.models import User

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
PASSWORD = "correct horse battery staple"
IDLE, ABSOLUTE = timedelta(minutes=15), timedelta(hours=10)


@pytest.fixture
def db(database_url: str) -> Iterator[Session]:
    upgrade(database_url)
    engine = make_engine(database_url)
    with session_scope(make_session_factory(engine)) as session:
        yield session
    engine.dispose()


def test_new_accounts_follow_the_rules(db: Session) -> None:
    user = staff.add_user(
        db, username="  Dr.Who ", display_name="  Doctor   Who ", role="clinician", password=PASSWORD, now=NOW
    )
    assert (user.username, user.display_name) == ("dr.who", "Doctor Who")
    assert user.password_hash.startswith("scrypt:") and PASSWORD not in user.password_hash
    with pytest.raises(staff.UserExists, match="already a user"):  # 409, not a flat 400
        staff.add_user(db, username="DR.WHO", display_name="", role="clinician", password=PASSWORD, now=NOW)
    with pytest.raises(staff.UnknownUser, match="no user 'ghost'"):  # 404
        staff.existing_user(db, "ghost")
    for kwargs, message in [
        ({"username": "x"}, "user name"),
        ({"username": "a b"}, "user name"),
        ({"role": "root"}, "role"),
        ({"password": "short"}, "12 to 256"),
        ({"username": "longenoughname1", "password": "LongEnoughName1"}, "not be the user name"),
        ({"password": "password1234"}, "too easy to guess. This is a very common password"),
        ({"password": "qwertyuiop12"}, "too easy to guess"),
        ({"password": "aaaaaaaaaaaaaaaa"}, "too easy to guess"),
        ({"username": "mjohnson", "display_name": "Maria Johnson", "password": "mariajohnson1"}, "too easy to guess"),
    ]:
        with pytest.raises(staff.AccountError, match=message):
            staff.add_user(
                db,
                **{
                    "username": "other",
                    "display_name": "",
                    "role": "clinician",
                    "password": PASSWORD,
                    "now": NOW,
                    **kwargs,
                },
            )


def test_a_guessable_password_is_refused_on_reset_too(db: Session) -> None:
    staff.add_user(db, username="nurse", display_name="", role="front-desk", password=PASSWORD, now=NOW)
    with pytest.raises(staff.AccountError, match="too easy to guess"):
        staff.reset_password(db, "nurse", "iloveyou1234", now=NOW)
    assert staff.check_credentials(db, "nurse", PASSWORD) is not None  # unchanged
    long_phrase = "violet anchor drum, seven lanterns over the quiet harbour at dusk, then the 4:15 ferry home"
    staff.reset_password(db, "nurse", long_phrase, now=NOW)  # over zxcvbn's 72-character limit


def test_credentials_fail_alike_for_unknown_wrong_and_disabled(db: Session) -> None:
    staff.add_user(db, username="nurse", display_name="", role="front-desk", password=PASSWORD, now=NOW)
    assert staff.check_credentials(db, "NURSE ", PASSWORD) is not None
    assert staff.check_credentials(db, "nurse", PASSWORD + "x") is None
    assert staff.check_credentials(db, "nobody", PASSWORD) is None
    assert staff.check_credentials(db, "n" * 5000, PASSWORD) is None
    staff.set_disabled(db, "nurse", True, now=NOW)
    assert staff.check_credentials(db, "nurse", PASSWORD) is None


def test_a_totp_code_works_once_and_only_near_its_time(db: Session) -> None:
    user = staff.add_user(db, username="doc", display_name="", role="clinician", password=PASSWORD, now=NOW)
    hashed = staff.session_hash(staff.start_session(db, user, now=NOW))
    assert not staff.enable_totp(db, user, hashed, "123456", now=NOW)  # nothing offered yet
    secret = staff.offered_totp(db, hashed)
    assert staff.offered_totp(db, hashed) == secret  # the same offer until it is used
    other = staff.offered_totp(db, staff.session_hash(staff.start_session(db, user, now=NOW)))
    assert other != secret  # each session its own offer
    totp = pyotp.TOTP(secret)
    assert not staff.enable_totp(db, user, hashed, "000000" if totp.at(NOW) != "000000" else "111111", now=NOW)
    assert staff.enable_totp(db, user, hashed, totp.at(NOW), now=NOW)
    assert user.totp_secret == secret and staff.store.pending_totp(db, hashed) is None  # used up
    replacement = staff.offered_totp(db, hashed)
    assert not staff.enable_totp(db, user, hashed, pyotp.TOTP(replacement).at(NOW), now=NOW)  # on already
    assert user.totp_secret == secret
    later = NOW + timedelta(seconds=30)
    assert staff.accept_totp(db, user, totp.at(later), now=later)
    assert not staff.accept_totp(db, user, totp.at(later), now=later)  # replayed
    much_later = NOW + timedelta(minutes=10)
    assert not staff.accept_totp(db, user, totp.at(NOW + timedelta(minutes=5)), now=much_later)  # too old
    assert staff.accept_totp(db, user, totp.at(much_later - timedelta(seconds=30)), now=much_later)  # one step of drift
    assert "otpauth://totp/Intake:doc?secret=" in staff.totp_uri(secret, "doc")
    assert staff.totp_step(secret, "12 34", now=NOW, after=None) is None  # not six digits


def test_finding_6_a_step_claimed_since_the_user_was_read_is_refused(db: Session) -> None:
    """What a concurrent request does between this one's read and write: it accepts the same code
    and stores its step. The stale copy of the user must not accept the code again."""
    user = staff.add_user(db, username="doc", display_name="", role="clinician", password=PASSWORD, now=NOW)
    totp = pyotp.TOTP(staff.new_totp_secret())
    user.totp_secret = totp.secret
    db.flush()
    step = staff.totp_step(totp.secret, totp.at(NOW), now=NOW, after=None)
    assert step is not None
    db.execute(update(User).where(User.id == user.id).values(totp_last_step=step),
               execution_options={"synchronize_session": False})  # the other request's write
    assert user.totp_last_step is None  # this request still sees the step as free
    assert not staff.accept_totp(db, user, totp.at(NOW), now=NOW)
    assert staff.accept_totp(db, user, totp.at(NOW + timedelta(seconds=30)), now=NOW + timedelta(seconds=30))
    assert user.totp_last_step == step + 1


def test_sessions_end_on_logout_idle_age_disable_and_password_reset(db: Session) -> None:
    user = staff.add_user(db, username="desk", display_name="", role="front-desk", password=PASSWORD, now=NOW)

    def live(token: str, at: datetime) -> bool:
        return staff.live_session(db, token, now=at, idle=IDLE, absolute=ABSOLUTE) is not None

    token = staff.start_session(db, user, now=NOW)
    signed_in, stale = staff.live_session(db, token, now=NOW, idle=IDLE, absolute=ABSOLUTE)  # type: ignore[misc]
    assert signed_in.username == "desk" and not stale
    assert not live("not-a-token", NOW) and not live(token + "x", NOW)
    assert not live(token, NOW + IDLE + timedelta(seconds=1))  # idle
    step = NOW
    for _ in range(50):  # active every 14 minutes: alive until the absolute limit
        step += timedelta(minutes=14)
        if step - NOW > ABSOLUTE:
            assert not live(token, step)
            break
        assert live(token, step)
        staff.touch_session(db, staff.session_hash(token), now=step)
    else:
        pytest.fail("the absolute timeout never ended the session")
    for end in (lambda t: staff.end_session(db, staff.session_hash(t), now=NOW),
                lambda t: staff.set_disabled(db, "desk", True, now=NOW),
                lambda t: staff.reset_password(db, "desk", PASSWORD + "!", now=NOW)):
        staff.set_disabled(db, "desk", False, now=NOW)
        fresh = staff.start_session(db, user, now=NOW)
        assert live(fresh, NOW)
        end(fresh)
        assert not live(fresh, NOW)

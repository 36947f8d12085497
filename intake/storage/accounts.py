"""Queries for staff accounts and their server-side sessions. Functions take the caller's
`Session` and never commit (the caller owns the transaction)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from intake.storage.models import StaffSession, User


def get_user(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def user_named(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).one_or_none()


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def add_user(session: Session, *, username: str, display_name: str, role: str, password_hash: str,
             now: datetime) -> User:
    user = User(username=username, display_name=display_name, role=role, password_hash=password_hash,
                created_at=now, password_changed_at=now)
    session.add(user)
    session.flush()
    return user


def end_sessions_of(session: Session, user_id: int, *, now: datetime) -> int:
    """End every open session of a user (disable, password reset): their cookies stop working."""
    result = session.execute(
        update(StaffSession)
        .where(StaffSession.user_id == user_id, StaffSession.ended_at.is_(None))
        .values(ended_at=now),
        execution_options={"synchronize_session": False},
    )
    return int(getattr(result, "rowcount", 0))


def open_session(session: Session, *, session_hash: str, user_id: int, now: datetime) -> None:
    session.add(StaffSession(id=session_hash, user_id=user_id, created_at=now, last_seen_at=now))
    session.flush()


def session_and_user(session: Session, session_hash: str) -> tuple[StaffSession, User] | None:
    row = session.execute(select(StaffSession, User).join(User, User.id == StaffSession.user_id)
                          .where(StaffSession.id == session_hash)).first()
    return (row[0], row[1]) if row else None


def touch_session(session: Session, session_hash: str, *, now: datetime) -> None:
    session.execute(update(StaffSession).where(StaffSession.id == session_hash, StaffSession.ended_at.is_(None))
                    .values(last_seen_at=now), execution_options={"synchronize_session": False})


def end_session(session: Session, session_hash: str, *, now: datetime) -> None:
    session.execute(update(StaffSession).where(StaffSession.id == session_hash, StaffSession.ended_at.is_(None))
                    .values(ended_at=now), execution_options={"synchronize_session": False})


def pending_totp(session: Session, session_hash: str) -> str | None:
    return session.scalar(select(StaffSession.totp_pending).where(StaffSession.id == session_hash))


def set_pending_totp(session: Session, session_hash: str, secret: str | None) -> None:
    session.execute(update(StaffSession).where(StaffSession.id == session_hash).values(totp_pending=secret),
                    execution_options={"synchronize_session": False})


def claim_totp_step(session: Session, user: User, step: int) -> bool:
    """Record `step` as the user's last accepted TOTP step if it is later than the one stored,
    in one conditional UPDATE: of concurrent claims of the same step exactly one changes the row
    (PostgreSQL re-checks the condition once the first claim commits; SQLite has one writer)."""
    later = or_(User.totp_last_step.is_(None), User.totp_last_step < step)
    result = session.execute(update(User).where(User.id == user.id, later).values(totp_last_step=step),
                             execution_options={"synchronize_session": False})
    if getattr(result, "rowcount", 0) != 1:
        return False
    set_committed_value(user, "totp_last_step", step)  # the row holds it already: no second write
    return True

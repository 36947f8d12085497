"""Flag notifications: a small state machine on each flag (pending, sending, sent or failed).

A worker claims a flag with a conditional UPDATE, so two workers never send one flag twice.
Functions take the caller's `Session` and never commit (see `intake.storage.intakes`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from intake.storage.models import FlagRecord


def pending_notifications(session: Session, *, intake_id: str | None = None) -> list[int]:
    query = select(FlagRecord.id).where(FlagRecord.notify_state == "pending").order_by(FlagRecord.id)
    if intake_id is not None:
        query = query.where(FlagRecord.intake_id == intake_id)
    return list(session.scalars(query))


def claim_notification(session: Session, flag_id: int, *, states: tuple[str, ...] = ("pending",)) -> FlagRecord | None:
    """Move one flag from one of `states` to sending; None if it is in none of them (another
    worker claimed it first, or it was sent)."""
    result = cast(CursorResult[Any], session.execute(
        update(FlagRecord).where(FlagRecord.id == flag_id, FlagRecord.notify_state.in_(states))
        .values(notify_state="sending"),
        execution_options={"synchronize_session": False},
    ))
    if result.rowcount != 1:
        return None
    return session.get(FlagRecord, flag_id, populate_existing=True)


def finish_notification(session: Session, flag_id: int, *, ok: bool, now: datetime, error: str | None = None) -> None:
    session.execute(
        update(FlagRecord).where(FlagRecord.id == flag_id)
        .values(notify_state="sent" if ok else "failed", notified_at=now if ok else None,
                notify_error=None if ok else (error or "failed")[:255]),
        execution_options={"synchronize_session": False},
    )


def retry_failed_notifications(session: Session) -> int:
    result = cast(CursorResult[Any], session.execute(
        update(FlagRecord).where(FlagRecord.notify_state == "failed").values(notify_state="pending"),
        execution_options={"synchronize_session": False},
    ))
    return result.rowcount

"""The outbox table's queries: enqueue in the caller's transaction, claim due rows for hand-over,
and settle a row (done, due again, dead). The state machine is described in `OutboxRecord`.

Every transition is a conditional UPDATE on the state it expects, so a row handed over twice
(a lapsed hand-over, a broker redelivery) is settled once and never moves back from done.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from intake.storage.models import OutboxRecord

SETTLED = ("done", "dead")


@dataclass(frozen=True)
class Work:
    """A row as the runner needs it."""

    id: int
    kind: str
    subject: str
    attempts: int


def enqueue(session: Session, kind: str, subject: str, *, now: datetime, after: int | None = None,
            due: datetime | None = None) -> int:
    """Add a pending row in the caller's transaction, due now or at `due` (a reminder); its id
    (for `after` of a later row)."""
    row = OutboxRecord(kind=kind, subject=subject, state="pending", attempts=0, due_at=due or now, after_id=after,
                       created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    return row.id


def subjects_queued(session: Session, kind: str, subjects: Sequence[str]) -> set[str]:
    """Which of `subjects` already have a row of `kind` (in any state): work written once."""
    if not subjects:
        return set()
    query = select(OutboxRecord.subject).where(OutboxRecord.kind == kind, OutboxRecord.subject.in_(list(subjects)))
    return set(session.scalars(query))


def claim_due(session: Session, *, now: datetime, lease: timedelta, limit: int) -> list[Work]:
    """Mark up to `limit` due rows as handed over until now + lease, and return them, oldest first.

    Due: pending with due_at passed and the row it waits for settled; or queued with the hand-over
    lapsed. PostgreSQL skips rows another dispatcher has locked; SQLite's writer lock serialises.
    """
    before = aliased(OutboxRecord)
    waiting = select(before.id).where(before.id == OutboxRecord.after_id, before.state.not_in(SETTLED)).exists()
    query = (
        select(OutboxRecord)
        .where(OutboxRecord.state.in_(("pending", "queued")), OutboxRecord.due_at <= now,
               or_(OutboxRecord.after_id.is_(None), ~waiting))
        .order_by(OutboxRecord.due_at, OutboxRecord.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=OutboxRecord)
    )
    rows = list(session.scalars(query))
    for row in rows:
        row.state, row.due_at, row.updated_at = "queued", now + lease, now
    session.flush()
    return [Work(r.id, r.kind, r.subject, r.attempts) for r in rows]


def start(session: Session, row_id: int, *, now: datetime, lease: timedelta) -> Work | None:
    """Count an attempt on a handed-over row and extend its lease; None when it is already settled
    (a duplicate delivery) or not handed over (re-driven meanwhile: it will be handed over again)."""
    row = session.get(OutboxRecord, row_id, with_for_update=True)
    if row is None or row.state != "queued":
        return None
    row.attempts += 1
    row.due_at, row.updated_at = now + lease, now
    session.flush()
    return Work(row.id, row.kind, row.subject, row.attempts)


def _settle(session: Session, row_id: int, **values: Any) -> bool:
    result = cast(CursorResult[Any], session.execute(
        update(OutboxRecord).where(OutboxRecord.id == row_id, OutboxRecord.state == "queued").values(**values),
        execution_options={"synchronize_session": False},
    ))
    return result.rowcount == 1


def mark_done(session: Session, row_id: int, *, now: datetime) -> bool:
    return _settle(session, row_id, state="done", done_at=now, updated_at=now, last_error=None)


def mark_retry(session: Session, row_id: int, *, now: datetime, delay: timedelta, error: str) -> bool:
    return _settle(session, row_id, state="pending", due_at=now + delay, updated_at=now, last_error=error[:255])


def mark_dead(session: Session, row_id: int, *, now: datetime, error: str) -> bool:
    return _settle(session, row_id, state="dead", updated_at=now, last_error=error[:255])


def mark_held(session: Session, row_id: int, *, now: datetime, error: str) -> bool:
    """Held for a person (an EHR push whose patient is not matched): never due until released."""
    return _settle(session, row_id, state="held", updated_at=now, last_error=error[:255])


def release_held(session: Session, row_id: int, *, now: datetime) -> OutboxRecord | None:
    """A held row back to pending, due now, attempts from zero; the row, or None when it is not held."""
    row = session.get(OutboxRecord, row_id, with_for_update=True)
    if row is None or row.state != "held":
        return None
    row.state, row.attempts, row.due_at, row.updated_at, row.last_error = "pending", 0, now, now, None
    session.flush()
    return row


def redrive(session: Session, row_ids: Iterable[int] | None, *, now: datetime) -> int:
    """Dead rows (all, or those of `row_ids`) back to pending, due now, attempts from zero."""
    query = update(OutboxRecord).where(OutboxRecord.state == "dead")
    if row_ids is not None:
        query = query.where(OutboxRecord.id.in_(list(row_ids)))
    result = cast(CursorResult[Any], session.execute(
        query.values(state="pending", attempts=0, due_at=now, updated_at=now),
        execution_options={"synchronize_session": False},
    ))
    return result.rowcount


def rows(
    session: Session, *, states: Sequence[str] = (), subject: str | None = None, limit: int = 500
) -> list[OutboxRecord]:
    """Rows newest first, optionally of some states or one subject (admin page, CLI, tests)."""
    query = select(OutboxRecord).order_by(OutboxRecord.id.desc()).limit(limit)
    if states:
        query = query.where(OutboxRecord.state.in_(list(states)))
    if subject is not None:
        query = query.where(OutboxRecord.subject == subject)
    return list(session.scalars(query))


def counts(session: Session) -> dict[str, int]:
    """How many rows are in each state."""
    found = {state: count for state, count in session.execute(
        select(OutboxRecord.state, func.count()).group_by(OutboxRecord.state))}
    return {state: int(found.get(state, 0)) for state in ("pending", "queued", "done", "dead", "held")}


def next_due(session: Session) -> datetime | None:
    """When the earliest unsettled row becomes due (the in-process poller sleeps until then)."""
    return session.scalar(select(func.min(OutboxRecord.due_at)).where(OutboxRecord.state.in_(("pending", "queued"))))

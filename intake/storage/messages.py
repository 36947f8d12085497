"""Patient messages (invitations, reminders): schedule, settle, cancel, list.

Functions take the caller's `Session` and never commit (see `intake.storage.intakes`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from intake.storage.models import InviteToken, PatientMessage


def schedule(session: Session, *, intake_id: str, link_id: int, purpose: str, channel: str, language: str,
             due_at: datetime, now: datetime) -> PatientMessage:
    """Add a scheduled message; the caller queues its outbox row (due at `due_at`)."""
    message = PatientMessage(intake_id=intake_id, link_id=link_id, purpose=purpose, channel=channel,
                             language=language, state="scheduled", due_at=due_at, created_at=now)
    session.add(message)
    session.flush()
    return message


def get(session: Session, message_id: int, *, lock: bool = False) -> PatientMessage | None:
    return session.get(PatientMessage, message_id, with_for_update=lock)


OPEN = ("scheduled", "failed")  # failed: a dead letter an admin may re-drive (the message is tried again)


def settle(session: Session, message_id: int, state: str, *, now: datetime, reason: str | None = None) -> bool:
    """Scheduled (or failed) -> `state` (sent, cancelled, failed); False when it was settled already."""
    result = session.execute(
        update(PatientMessage).where(PatientMessage.id == message_id, PatientMessage.state.in_(OPEN),
                                     PatientMessage.state != state)
        .values(state=state, settled_at=now, reason=reason),
        execution_options={"synchronize_session": False},
    )
    return bool(getattr(result, "rowcount", 0))


def cancel_for_intake(session: Session, intake_id: str, *, now: datetime, reason: str) -> int:
    """Cancel every open message of the intake and drop the sealed links; how many."""
    result = session.execute(
        update(PatientMessage).where(PatientMessage.intake_id == intake_id, PatientMessage.state.in_(OPEN))
        .values(state="cancelled", settled_at=now, reason=reason),
        execution_options={"synchronize_session": False},
    )
    session.execute(update(InviteToken).where(InviteToken.intake_id == intake_id, InviteToken.sealed.is_not(None))
                    .values(sealed=None), execution_options={"synchronize_session": False})
    return int(getattr(result, "rowcount", 0))


def drop_sealed_when_done(session: Session, link_id: int) -> bool:
    """Forget the link's sealed copy when no scheduled (or failed, re-drivable) message needs it;
    whether it was dropped."""
    waiting = session.scalar(select(PatientMessage.id).where(PatientMessage.link_id == link_id,
                                                             PatientMessage.state.in_(OPEN)).limit(1))
    if waiting is not None:
        return False
    session.execute(update(InviteToken).where(InviteToken.id == link_id).values(sealed=None),
                    execution_options={"synchronize_session": False})
    return True


def of_intakes(session: Session, intake_ids: list[str]) -> list[PatientMessage]:
    """The messages of these intakes, by due time (front desk status)."""
    if not intake_ids:
        return []
    return list(session.scalars(select(PatientMessage).where(PatientMessage.intake_id.in_(intake_ids))
                                .order_by(PatientMessage.due_at, PatientMessage.id)))

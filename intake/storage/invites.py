"""Patient links: the hashed invite tokens (one live per intake) and new links held until shown once.

Functions take the caller's `Session` and never commit (see `intake.storage.intakes`); issuing a
link locks the intake row, as saving answers does, so the two take turns.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from intake.core.fhir_time import require_aware, utcnow
from intake.storage.intakes import IntakeNotFound, lock_intake
from intake.storage.models import Intake, InviteToken, ShownLink

_TOKEN_HASH = re.compile(r"[0-9a-f]{64}")


def issue_invite(
    session: Session, *, intake_id: str, token_hash: str, expires_at: datetime
) -> InviteToken:
    """Store a new patient link for the intake and revoke all its earlier links.

    Only one link per intake works at a time, so re-sending a link disables a forwarded or
    mistyped one. `token_hash` must be a lowercase SHA-256 hex digest: this refuses raw tokens.
    """
    if not _TOKEN_HASH.fullmatch(token_hash):
        raise ValueError("token_hash must be a lowercase SHA-256 hex digest")
    require_aware(expires_at, "expires_at")
    lock_intake(session, intake_id)
    now = utcnow()
    session.execute(
        update(InviteToken)
        .where(InviteToken.intake_id == intake_id, InviteToken.revoked_at.is_(None))
        .values(revoked_at=now, sealed=None),  # a revoked link's sealed copy is of no more use
        execution_options={"synchronize_session": "fetch"},
    )
    token = InviteToken(
        intake_id=intake_id, token_hash=token_hash, created_at=now, expires_at=expires_at
    )
    session.add(token)
    session.flush()
    return token


def find_live_link(session: Session, token_hash: str, *, now: datetime) -> tuple[Intake, int] | None:
    """The intake a patient link opens and the link's id (the session it opens records it):
    None when the link is unknown, expired or revoked."""
    require_aware(now, "now")
    row = session.execute(
        select(Intake, InviteToken.id)
        .join(InviteToken, InviteToken.intake_id == Intake.id)
        .where(
            InviteToken.token_hash == token_hash,
            InviteToken.revoked_at.is_(None),
            InviteToken.expires_at > now,
        )
    ).one_or_none()
    return (row[0], row[1]) if row is not None else None


def find_intake_by_token_hash(session: Session, token_hash: str, *, now: datetime) -> Intake | None:
    """The intake a patient link opens: None when the link is unknown, expired or revoked."""
    found = find_live_link(session, token_hash, now=now)
    return found[0] if found is not None else None


def link_in_force(session: Session, link_id: int, intake_id: str, *, now: datetime, lock: bool = False) -> bool:
    """Whether the link that opened a patient's session still works: it is this intake's, not
    revoked (a newer link revokes it) and not expired.

    With `lock`, the intake row is locked first, as `issue_invite` locks it before revoking, so a
    write in the caller's transaction and a new link take turns: the write either commits before
    the revocation or sees it.
    """
    require_aware(now, "now")
    if lock:
        try:
            lock_intake(session, intake_id)
        except IntakeNotFound:
            return False
    return session.scalar(
        select(InviteToken.id).where(
            InviteToken.id == link_id,
            InviteToken.intake_id == intake_id,
            InviteToken.revoked_at.is_(None),
            InviteToken.expires_at > now,
        )
    ) is not None


def hold_shown_link(session: Session, *, intake_id: str, sealed: str, expires_at: datetime, now: datetime) -> str:
    """Keep a new link, sealed, until it is shown once (`take_shown_link`); returns the id to ask
    for it by. Links held past their time, never shown, are deleted here."""
    require_aware(expires_at, "expires_at")
    require_aware(now, "now")
    session.execute(delete(ShownLink).where(ShownLink.expires_at <= now))
    held = ShownLink(intake_id=intake_id, sealed=sealed, expires_at=expires_at)
    session.add(held)
    session.flush()
    return held.id


def take_shown_link(session: Session, shown_id: str, *, intake_id: str, now: datetime) -> str | None:
    """The sealed link held under `shown_id` for this intake, deleted as it is read, so a reload
    (or a copy of the cookie) finds nothing: None when it was taken, has expired or is another
    intake's."""
    require_aware(now, "now")
    row = session.execute(
        delete(ShownLink).where(ShownLink.id == shown_id)
        .returning(ShownLink.intake_id, ShownLink.sealed, ShownLink.expires_at)
    ).one_or_none()
    if row is None or row.intake_id != intake_id or row.expires_at <= now:
        return None
    return str(row.sealed)


def mark_opened(session: Session, link_id: int, *, now: datetime) -> None:
    """Record when the patient first opened the link (later opens keep the first time)."""
    session.execute(update(InviteToken).where(InviteToken.id == link_id, InviteToken.opened_at.is_(None))
                    .values(opened_at=now), execution_options={"synchronize_session": False})


def links_of_intakes(session: Session, intake_ids: list[str]) -> list[InviteToken]:
    """The links of these intakes, oldest first (front desk status)."""
    if not intake_ids:
        return []
    return list(session.scalars(select(InviteToken).where(InviteToken.intake_id.in_(intake_ids))
                                .order_by(InviteToken.created_at, InviteToken.id)))


def link_by_hash(session: Session, token_hash: str) -> InviteToken | None:
    """The link row of a token hash (just issued: its messages are scheduled against it)."""
    return session.scalars(select(InviteToken).where(InviteToken.token_hash == token_hash)).one_or_none()

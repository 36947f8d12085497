"""Where an intake stands, for the front desk: sent, opened, in progress, sent back or expired,
with times, and the next reminder (the search results and the day list show the same words)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from intake.core.fhir_time import utcnow
from intake.storage import invites, messages
from intake.storage.models import Intake, InviteToken, PatientMessage


def at(zone: ZoneInfo, moment: datetime | None) -> str:
    """A moment as the front desk reads it: local date and time, minutes."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else ""


@dataclass(frozen=True)
class Stage:
    """One step of an intake's progress, with when it happened ("" when it did not)."""

    label: str
    at: str


def progress(intake: Intake, links: list[InviteToken], sent: list[PatientMessage], now: datetime, *,
             zone: ZoneInfo) -> list[Stage]:
    """Sent (by us, or the link made for staff to hand over), opened, in progress, sent back or
    expired, and the next reminder: what the front desk needs to know whom to chase."""
    stages: list[Stage] = []
    first_sent = min((m.settled_at for m in sent if m.state == "sent" and m.settled_at), default=None)
    first_link = links[0].created_at if links else None
    if first_sent is not None:
        stages.append(Stage("sent", at(zone, first_sent)))
    elif first_link is not None:
        stages.append(Stage("link made", at(zone, first_link)))
    opened = min((link.opened_at for link in links if link.opened_at), default=None)
    if opened is not None:
        stages.append(Stage("opened", at(zone, opened)))
    if intake.status == "completed":
        stages.append(Stage("sent back", at(zone, intake.completed_at)))
        return stages
    if intake.status == "in-progress":
        stages.append(Stage("in progress", at(zone, intake.updated_at)))
    live = [link for link in links if link.revoked_at is None]
    if not live or all(link.expires_at <= now for link in live):
        ended = max((link.expires_at for link in live), default=None)
        stages.append(Stage("expired", at(zone, ended) if ended else ""))
        return stages
    waiting = [m.due_at for m in sent if m.state == "scheduled" and m.purpose == "reminder"]
    if waiting:
        stages.append(Stage("next reminder", at(zone, min(waiting))))
    return stages


def progress_of(session: Session, found: list[Intake], *, zone: ZoneInfo) -> dict[str, list[Stage]]:
    """intake id -> its stages, for a list of intakes (two queries for the whole list)."""
    ids = [intake.id for intake in found]
    links: dict[str, list[InviteToken]] = {}
    for link in invites.links_of_intakes(session, ids):
        links.setdefault(link.intake_id, []).append(link)
    sent: dict[str, list[PatientMessage]] = {}
    for message in messages.of_intakes(session, ids):
        sent.setdefault(message.intake_id, []).append(message)
    now = utcnow()
    return {i.id: progress(i, links.get(i.id, []), sent.get(i.id, []), now, zone=zone) for i in found}

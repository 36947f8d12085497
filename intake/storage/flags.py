"""Red flags: raised once per intake and rule, marked cleared (never deleted) when answers change.

Functions take the caller's `Session` and never commit (see `intake.storage.intakes`). Sending
the notifications of flags is `intake.storage.notifications`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from intake.core.fhir_time import require_aware
from intake.storage.models import FLAG_TIERS, FlagRecord, Patient

NOTIFIED_TIERS = ("emergency", "urgent")


@dataclass(frozen=True)
class FlagChanges:
    """What one evaluation of an intake's answers did to its flags."""

    added: list[FlagRecord]  # raised for the first time in this intake: notified once
    reraised: list[FlagRecord]  # raised before, cleared by a changed answer, raised again now


def record_flags(
    session: Session,
    *,
    intake_id: str,
    patient_id: str,
    flags: list[dict[str, Any]],
    versions: dict[str, str],
    now: datetime,
    source: str,
    tiers: tuple[str, ...] = FLAG_TIERS,
    questionnaires: Collection[str] | None = None,
) -> FlagChanges:
    """Add the flags (of `tiers`) the answers raise for the first time, and mark each stored flag
    of those tiers as raised by the current answers or cleared since `now`. With
    `questionnaires` (urls), only the flags of those were evaluated: the others are left as
    they are.

    Rows are never deleted or re-notified: a flag raised from a draft and then answered away (or
    switched off by enablement) stays listed for staff, with the time it was cleared.
    """
    require_aware(now, "now")
    raised = {flag["id"]: flag for flag in flags if flag["tier"] in tiers}
    # Plain rows (this runs on every saved page); ORM objects only for the rows that change.
    known = {row.rule_id: row for row in session.execute(_KNOWN_FLAGS, {"intake_id": intake_id})}
    reraised, cleared = [], []
    for rule_id, row in known.items():
        if row.tier not in tiers:
            continue
        if questionnaires is not None and row.questionnaire.split("|")[0] not in questionnaires:
            continue
        if rule_id in raised and row.cleared_at is not None:
            reraised.append(row.id)
        elif rule_id not in raised and row.cleared_at is None:
            cleared.append(row.id)
    if cleared:
        session.execute(update(FlagRecord).where(FlagRecord.id.in_(cleared)).values(cleared_at=now),
                        execution_options={"synchronize_session": False})
    if reraised:
        session.execute(update(FlagRecord).where(FlagRecord.id.in_(reraised)).values(cleared_at=None),
                        execution_options={"synchronize_session": False})
    added = []
    for rule_id, flag in raised.items():
        if rule_id in known:
            continue
        record = FlagRecord(
            intake_id=intake_id, patient_id=patient_id, rule_id=rule_id, tier=flag["tier"],
            message=flag["message"], because=list(flag.get("because") or []), questionnaire=flag["questionnaire"],
            scoring_version=versions.get(flag["questionnaire"], ""), raised_at=now, source=source,
            notify_state="pending" if flag["tier"] in NOTIFIED_TIERS else "not-required",
        )
        session.add(record)
        added.append(record)
    session.flush()
    again = [session.get(FlagRecord, flag_id, populate_existing=True) for flag_id in reraised]
    for flag_id in cleared:  # loaded earlier in this session: read the new time on next access
        stale = session.identity_map.get(session.identity_key(FlagRecord, (flag_id,)))
        if stale is not None:
            session.expire(stale)
    return FlagChanges(added=added, reraised=[record for record in again if record is not None])


_KNOWN_FLAGS = select(FlagRecord.id, FlagRecord.rule_id, FlagRecord.tier, FlagRecord.questionnaire,
                      FlagRecord.cleared_at).where(FlagRecord.intake_id == bindparam("intake_id"))


def flags_of_intake(session: Session, intake_id: str) -> list[FlagRecord]:
    """The flags raised for one intake, in the order they were raised."""
    return list(session.scalars(select(FlagRecord).where(FlagRecord.intake_id == intake_id).order_by(FlagRecord.id)))


def list_flags(session: Session, *, tiers: tuple[str, ...] = NOTIFIED_TIERS, limit: int = 200) -> list[tuple[FlagRecord, str]]:
    """Raised flags of the given tiers with the patient's name, newest first."""
    rows = session.execute(
        select(FlagRecord, Patient.name)
        .join(Patient, Patient.id == FlagRecord.patient_id)
        .where(FlagRecord.tier.in_(tiers))
        .order_by(FlagRecord.raised_at.desc(), FlagRecord.id.desc())
        .limit(limit)
    ).all()
    return [(row[0], row[1]) for row in rows]

"""Staff worklists: recent intakes, and the intakes of a day, each with its raised flags' tiers.

Functions take the caller's `Session` and never commit (see `intake.storage.intakes`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from intake.core.fhir_time import require_aware
from intake.storage.models import FlagRecord, Intake, Patient


def list_intakes(session: Session, *, limit: int = 200) -> list[tuple[Intake, str, list[str]]]:
    """Recent intakes with the patient's name and the tiers of their raised flags."""
    rows = session.execute(
        select(Intake, Patient.name).join(Patient, Patient.id == Intake.patient_id)
        .order_by(Intake.updated_at.desc()).limit(limit)
    ).all()
    tiers = _flag_tiers(session, [row[0].id for row in rows])
    return [(row[0], row[1], tiers.get(row[0].id, [])) for row in rows]


def _flag_tiers(session: Session, intake_ids: list[str]) -> dict[str, list[str]]:
    """intake id -> the tiers of its raised flags (one query for the whole list)."""
    tiers: dict[str, list[str]] = {}
    if intake_ids:
        query = select(FlagRecord.intake_id, FlagRecord.tier).where(FlagRecord.intake_id.in_(intake_ids))
        for intake_id, tier in session.execute(query):
            tiers.setdefault(intake_id, []).append(tier)
    return tiers


def intakes_between(session: Session, start: datetime, end: datetime) -> list[tuple[Intake, Patient, list[str]]]:
    """Intakes with an appointment in [start, end) — or, without one, created then — with their
    patient and the tiers of their raised flags, in appointment order."""
    require_aware(start, "start")
    require_aware(end, "end")
    when = case((Intake.appointment_at.is_(None), Intake.created_at), else_=Intake.appointment_at)
    rows = session.execute(
        select(Intake, Patient).join(Patient, Patient.id == Intake.patient_id)
        .where(when >= start, when < end).order_by(when, Patient.name)
    ).all()
    tiers = _flag_tiers(session, [row[0].id for row in rows])
    return [(row[0], row[1], tiers.get(row[0].id, [])) for row in rows]

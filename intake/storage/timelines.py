"""A patient's intakes over time: every intake with its scoring result, and who has been seen before.

Functions take the caller's `Session` and never commit (see `intake.storage.intakes`).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.storage.models import Intake, ScoringResult


def patient_intakes(session: Session, patient_id: str) -> list[tuple[Intake, dict[str, Any] | None]]:
    """Every intake of the patient, with its stored result (None before it is scored), oldest first:
    by completion, or by creation for those not completed."""
    query = (
        select(Intake, ScoringResult.result_json)
        .outerjoin(ScoringResult, ScoringResult.intake_id == Intake.id)
        .where(Intake.patient_id == patient_id)
        .order_by(func.coalesce(Intake.completed_at, Intake.created_at), Intake.id)
    )
    return [(intake, json.loads(result) if result is not None else None)
            for intake, result in session.execute(query).all()]


def completed_by_patient(session: Session, patient_ids: Collection[str]) -> dict[str, list[tuple[datetime, str]]]:
    """patient id -> (completed_at, intake id) of each of their completed intakes, oldest first
    (one query for a whole list)."""
    out: dict[str, list[tuple[datetime, str]]] = {}
    if not patient_ids:
        return out
    query = (
        select(Intake.patient_id, Intake.completed_at, Intake.id)
        .where(Intake.patient_id.in_(sorted(set(patient_ids))), Intake.completed_at.is_not(None),
               Intake.status == "completed")
        .order_by(Intake.completed_at, Intake.id)
    )
    for patient_id, completed_at, intake_id in session.execute(query):
        if completed_at is not None:  # the query's filter; typed as optional
            out.setdefault(patient_id, []).append((completed_at, intake_id))
    return out

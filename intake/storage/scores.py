"""Scoring results: an intake's computed results (stored once per change) and a patient's history.

Functions take the caller's `Session` and never commit (see `intake.storage.intakes`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.core.canonical import canonical_json
from intake.core.fhir_time import require_aware
from intake.storage.flags import record_flags
from intake.storage.models import FlagRecord, Intake, ScoringResult


def store_scoring(
    session: Session,
    *,
    intake_id: str,
    patient_id: str,
    result: dict[str, Any],
    versions: dict[str, str],
    now: datetime,
) -> list[FlagRecord]:
    """Store (or replace) an intake's computed results and add the flags not raised before.

    A flag is unique per intake and rule, so re-scoring never raises or notifies one twice; a
    flag a corrected rule (or a changed answer) no longer raises stays listed, marked cleared (it
    was raised, and maybe notified). Emergency and urgent flags start as notification "pending",
    review flags as "not-required". Returns the flags added.
    """
    require_aware(now, "now")
    existing = session.get(ScoringResult, intake_id)
    if existing is None:
        session.add(ScoringResult(intake_id=intake_id, patient_id=patient_id, scoring_versions=versions,
                                  result_json=canonical_json(result), computed_at=now))
    elif existing.result_json != canonical_json(result) or existing.scoring_versions != dict(versions):
        # An unchanged result keeps its time: it is when these results were first computed, and
        # what the PDF and the Provenance show (so a no-op re-score changes no bytes).
        existing.scoring_versions = dict(versions)
        existing.result_json = canonical_json(result)
        existing.computed_at = now
    return record_flags(session, intake_id=intake_id, patient_id=patient_id, flags=result.get("flags") or [],
                        versions=versions, now=now, source="submitted").added


def get_scoring(session: Session, intake_id: str) -> ScoringResult | None:
    return session.get(ScoringResult, intake_id)


def patient_history(session: Session, patient_id: str, *, before: datetime | None) -> list[tuple[datetime, dict[str, Any]]]:
    """(completed_at, result) of the patient's scored intakes completed before `before`, oldest first."""
    query = (
        select(Intake.completed_at, ScoringResult.result_json)
        .join(ScoringResult, ScoringResult.intake_id == Intake.id)
        .where(Intake.patient_id == patient_id, Intake.completed_at.is_not(None))
        .order_by(Intake.completed_at)
    )
    if before is not None:
        query = query.where(Intake.completed_at < before)
    return [(row.completed_at, json.loads(row.result_json)) for row in session.execute(query)]

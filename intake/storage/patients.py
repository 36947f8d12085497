"""Patients: add one, read one, find the one a health-record number names (a follow-up visit).

Functions take the caller's `Session` and never commit (see `intake.storage.intakes`).
"""

from __future__ import annotations

import contextlib
from datetime import date

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from intake.core.fhir_time import utcnow
from intake.storage.models import Intake, Patient, new_id


def create_patient(session: Session, *, name: str, birth_date: date, mrn: str | None = None,
                   mrn_system: str | None = None, ehr_reference: str | None = None) -> Patient:
    """Add a patient (`mrn`: the health record's number for them, when known, in `mrn_system`;
    `ehr_reference`: the EHR's own Patient, `Patient/123`, when staff named it)."""
    patient = Patient(id=new_id(), name=name, birth_date=birth_date, mrn=mrn, mrn_system=mrn_system if mrn else None,
                      ehr_reference=ehr_reference, created_at=utcnow())
    session.add(patient)
    session.flush()
    return patient


def get_patient(session: Session, patient_id: str) -> Patient | None:
    """The patient, or None."""
    return session.get(Patient, patient_id)


def patient_by_mrn(session: Session, mrn: str, system: str) -> Patient | None:
    """The patient already recorded with this record number (a follow-up visit), or None."""
    return session.scalars(select(Patient).where(Patient.mrn == mrn, Patient.mrn_system == system)
                           .order_by(Patient.created_at).limit(1)).one_or_none()


def patient_by_ehr_reference(session: Session, reference: str) -> Patient | None:
    """The patient already linked to this EHR Patient (a follow-up visit), or None."""
    return session.scalars(select(Patient).where(Patient.ehr_reference == reference)
                           .order_by(Patient.created_at).limit(1)).one_or_none()


def link_to_ehr(session: Session, patient_id: str, reference: str) -> Patient | None:
    """Record that the patient is the EHR's `reference` (`Patient/123`); None when no such patient."""
    patient = session.get(Patient, patient_id)
    if patient is not None:
        patient.ehr_reference = reference
        session.flush()
    return patient


SEARCH_LIMIT = 50


def search(session: Session, text: str, *, limit: int = SEARCH_LIMIT) -> list[Patient]:
    """Patients whose name contains `text` (any case), born on it (`YYYY-MM-DD`), or whose record
    number it is; most recently invited first. The words of a name query must appear in that order."""
    text = " ".join(text.split())
    if not text:
        return []
    conditions = [Patient.mrn == text]
    with contextlib.suppress(ValueError):  # not a date: a name or a record number
        conditions.append(Patient.birth_date == date.fromisoformat(text))
    words = [w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for w in text.casefold().split()]
    conditions.append(func.lower(Patient.name).like("%" + "%".join(words) + "%", escape="\\"))
    last_seen = (select(func.max(Intake.created_at)).where(Intake.patient_id == Patient.id)
                 .correlate(Patient).scalar_subquery())
    query = (select(Patient).where(or_(*conditions)).order_by(last_seen.desc().nulls_last(), Patient.name)
             .limit(limit))
    return list(session.scalars(query))


def intakes_of(session: Session, patient_ids: list[str]) -> list[Intake]:
    """Every intake of these patients, newest first."""
    if not patient_ids:
        return []
    return list(session.scalars(select(Intake).where(Intake.patient_id.in_(patient_ids))
                                .order_by(Intake.created_at.desc())))

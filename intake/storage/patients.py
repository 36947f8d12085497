"""Patients: add one, read one, find the one a health-record number names (a follow-up visit).

Functions take the caller's `Session` and never commit (see `intake.storage.intakes`).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.core.fhir_time import utcnow
from intake.storage.models import Patient, new_id


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

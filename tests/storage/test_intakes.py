"""Intakes and patients on whichever database the run uses (see tests/conftest.py)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy.orm import Session, sessionmaker

from intake.storage import intakes, patients
from intake.storage.db import session_scope
from tests.storage.factories import (
    GUT,
    NERVE,
    new_intake,
    save_if_unchanged,
    view,
)


def test_patients_and_intakes_round_trip_with_utc_datetimes(
    session_factory: sessionmaker[Session],
) -> None:
    appointment = datetime(2025, 3, 15, 8, 0, tzinfo=timezone(timedelta(hours=2)))
    with session_scope(session_factory) as session:
        patient = patients.create_patient(session, name="Zoë Ñandú", birth_date=date(1990, 2, 28))
        intake = intakes.create_intake(
            session, patient_id=patient.id, questionnaires=[NERVE, GUT], appointment_at=appointment
        )
    with session_scope(session_factory) as session:
        stored_patient = patients.get_patient(session, patient.id)
        stored = intakes.get_intake(session, intake.id)
        assert intakes.get_intake(session, "missing") is None
    assert stored_patient is not None and stored is not None
    assert stored_patient.name == "Zoë Ñandú"
    assert stored_patient.birth_date == date(1990, 2, 28)
    assert stored_patient.created_at.tzinfo == timezone.utc
    assert stored.questionnaires == [NERVE, GUT]
    assert stored.status == "not-started" and stored.last_page is None
    assert stored.appointment_at == appointment
    assert stored.appointment_at is not None and stored.appointment_at.tzinfo == timezone.utc


@pytest.mark.parametrize(
    "questionnaires", [["no-version"], ["http://x/q|"], [GUT, GUT.replace("1.0.0", "2")]]
)
def test_create_intake_refuses_bad_canonicals(session: Session, questionnaires: list[str]) -> None:
    patient = patients.create_patient(session, name="A", birth_date=date(2000, 1, 1))
    with pytest.raises(ValueError):
        intakes.create_intake(session, patient_id=patient.id, questionnaires=questionnaires)


def test_intake_view_reads_intake_and_responses_in_one(session_factory: sessionmaker[Session]) -> None:
    intake = new_intake(session_factory)
    empty = view(session_factory, intake.id)
    assert (empty.status, empty.responses_json, empty.stored) == ("not-started", (), {})
    assert empty.questionnaires == [GUT, NERVE]
    save_if_unchanged(session_factory, intake, GUT, "first", None)
    seen = view(session_factory, intake.id)
    stored = seen.stored_version(GUT)
    assert stored is not None and stored.version_id == 1
    assert seen.stored_version(NERVE) is None
    assert json.loads(seen.responses_json[0])["id"] == stored.record_id
    assert (seen.status, seen.last_page) == ("in-progress", "gut/p1")
    with session_scope(session_factory) as session:
        assert intakes.intake_view(session, "no-such-intake") is None

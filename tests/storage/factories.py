"""Builders shared by the storage tests: an intake with a patient, a response, a link's hash."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session, sessionmaker

from intake.storage import intakes, patients, responses
from intake.storage.db import session_scope
from intake.storage.models import Intake, ResponseRecord

GUT = "http://intake.example/fhir/Questionnaire/gut|1.0.0"
NERVE = "http://intake.example/fhir/Questionnaire/nerve|2.1"
NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def make_intake(session: Session, questionnaires: tuple[str, ...] = (GUT, NERVE)) -> Intake:
    patient = patients.create_patient(session, name="Ada Example", birth_date=date(1971, 5, 2))
    return intakes.create_intake(session, patient_id=patient.id, questionnaires=list(questionnaires))


def qr(intake: Intake, questionnaire: str, answer: Any = "yes", **fields: Any) -> dict[str, Any]:
    """A QuestionnaireResponse with one string answer, as the answers module builds them."""
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": questionnaire,
        "status": "in-progress",
        "subject": {"reference": f"Patient/{intake.patient_id}"},
        "authored": "2025-03-14T09:00:00+01:00",
        "item": [{"linkId": "q1", "text": "Question", "answer": [{"valueString": answer}]}],
        **fields,
    }


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_intake(session_factory: sessionmaker[Session]) -> Intake:
    with session_scope(session_factory) as session:
        return make_intake(session)


def records(session_factory: sessionmaker[Session], intake_id: str) -> list[ResponseRecord]:
    with session_scope(session_factory) as session:
        return responses.list_responses(session, intake_id)


def view(session_factory: sessionmaker[Session], intake_id: str) -> intakes.IntakeView:
    with session_scope(session_factory) as session:
        found = intakes.intake_view(session, intake_id)
    assert found is not None
    return found


def save_if_unchanged(session_factory: sessionmaker[Session], intake: Intake | intakes.IntakeView,
                      questionnaire: str, answer: str, base: intakes.StoredVersion | None,
                      page: str = "gut/p1") -> None:
    with session_scope(session_factory) as session:
        responses.save_draft_if_unchanged(
            session, intake_id=intake.id, questionnaire=questionnaire,
            resource=qr(intake, questionnaire, answer), page=page, now=NOW, base=base,
        )


def insert_patient_and_intake(connection: Connection, *, status: str, now: datetime) -> None:
    """Patient 'p1' and its intake 'i1' in plain SQL, for migration tests: the schema under test is
    an older one than the ORM models describe."""
    connection.execute(text("INSERT INTO patients (id, name, birth_date, created_at) "
                            "VALUES ('p1', 'Ana', :born, :now)"), {"born": date(1970, 1, 2), "now": now})
    connection.execute(text("INSERT INTO intakes (id, patient_id, questionnaires, status, created_at, "
                            "updated_at) VALUES ('i1', 'p1', '[]', :status, :now, :now)"),
                       {"status": status, "now": now})

"""A patient's intakes with their results, oldest first; completed intakes by patient."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from intake.storage import intakes, patients, scores, timelines
from intake.storage.db import session_scope

T0 = datetime(2026, 9, 14, 9, 0, tzinfo=UTC)


def test_patient_intakes_and_completed_by_patient(session_factory: sessionmaker[Session]) -> None:
    with session_scope(session_factory) as session:
        ada = patients.create_patient(session, name="Ada", birth_date=date(1970, 1, 1))
        bob = patients.create_patient(session, name="Bob", birth_date=date(1980, 1, 1))
        made = []
        for n, status in enumerate(("completed", "in-progress", "completed")):
            intake = intakes.create_intake(session, patient_id=ada.id, questionnaires=["q|1"])
            intake.created_at = T0 + timedelta(weeks=4 * n)
            intake.status = status
            if status == "completed":
                intake.completed_at = intake.created_at + timedelta(hours=1)
                scores.store_scoring(session, intake_id=intake.id, patient_id=ada.id, now=intake.completed_at,
                                     result={"scores": [{"id": "mnsi", "total": n}], "flags": []}, versions={})
            made.append(intake.id)
        other = intakes.create_intake(session, patient_id=bob.id, questionnaires=["q|1"])
        session.flush()
        ada_id, bob_id, other_id = ada.id, bob.id, other.id
    with session_scope(session_factory) as session:
        found = timelines.patient_intakes(session, ada_id)
        assert [(i.id, i.status) for i, _ in found] == list(zip(made, ("completed", "in-progress", "completed"),
                                                               strict=True))
        assert [r["scores"][0]["total"] if r else None for _, r in found] == [0, None, 2]
        assert [i.id for i, _ in timelines.patient_intakes(session, bob_id)] == [other_id]
        assert timelines.patient_intakes(session, "nobody") == []
        done = timelines.completed_by_patient(session, [ada_id, bob_id])
        assert done == {ada_id: [(T0 + timedelta(hours=1), made[0]), (T0 + timedelta(weeks=8, hours=1), made[2])]}
        assert timelines.completed_by_patient(session, []) == {}

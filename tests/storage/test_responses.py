"""Stored responses (drafts, conditional saves, completion) on whichever database the run uses."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from intake.core.canonical import canonical_json
from intake.storage import intakes
from intake.storage import responses as response_store
from intake.storage.db import session_scope
from intake.storage.models import ResponseRecord
from tests.storage.factories import (
    GUT,
    NERVE,
    NOW,
    make_intake,
    new_intake,
    qr,
    records,
    save_if_unchanged,
    view,
)


def test_naive_datetimes_are_refused(session: Session) -> None:
    intake = make_intake(session)
    with pytest.raises(ValueError, match="tz-aware"):
        response_store.save_draft(
            session, intake_id=intake.id, questionnaire=GUT, resource=qr(intake, GUT),
            page="p1", now=datetime(2025, 1, 1),
        )


def test_save_draft_upserts_and_tracks_progress(session_factory: sessionmaker[Session]) -> None:
    intake = new_intake(session_factory)
    with session_scope(session_factory) as session:
        first = response_store.save_draft(
            session, intake_id=intake.id, questionnaire=GUT, resource=qr(intake, GUT, "a"),
            page="gut-1", now=NOW,
        )
    later = NOW + timedelta(minutes=5)
    resource = qr(intake, GUT, "b")
    with session_scope(session_factory) as session:
        second = response_store.save_draft(
            session, intake_id=intake.id, questionnaire=GUT, resource=resource,
            page="gut-2", now=later,
        )
        stored_intake = intakes.get_intake(session, intake.id)
    assert "id" not in resource and "meta" not in resource  # the caller's dict is untouched
    assert second.id == first.id
    assert (first.version_id, second.version_id) == (1, 2)
    assert stored_intake is not None
    assert stored_intake.status == "in-progress" and stored_intake.last_page == "gut-2"

    [record] = records(session_factory, intake.id)
    body = record.resource
    assert body["id"] == record.id
    assert body["meta"] == {"versionId": "2", "lastUpdated": "2025-03-14T09:35:00.000000Z"}
    assert body["item"][0]["answer"] == [{"valueString": "b"}]
    assert record.status == "in-progress" and record.version_id == 2
    assert record.subject_patient_id == intake.patient_id
    assert record.authored == datetime(2025, 3, 14, 8, 0, tzinfo=timezone.utc)
    assert record.updated_at == later
    assert record.questionnaire == GUT
    assert record.resource_json == canonical_json(body)


def test_save_draft_without_page_keeps_the_resume_point(session: Session) -> None:
    intake = make_intake(session)
    resource = qr(intake, GUT)
    for page in ("gut-3", None):
        response_store.save_draft(
            session, intake_id=intake.id, questionnaire=GUT, resource=resource, page=page, now=NOW
        )
    assert intake.last_page == "gut-3"


def test_save_draft_fills_missing_fields_and_refuses_contradictions(session: Session) -> None:
    intake = make_intake(session)
    bare = {"resourceType": "QuestionnaireResponse", "item": []}
    record = response_store.save_draft(
        session, intake_id=intake.id, questionnaire=GUT, resource=bare, page=None, now=NOW
    )
    body = record.resource
    assert body["id"] == record.id
    assert body["questionnaire"] == GUT
    assert body["status"] == "in-progress"
    assert body["subject"] == {"reference": f"Patient/{intake.patient_id}"}
    assert body["authored"] == "2025-03-14T09:30:00.000000Z"

    bad: list[dict[str, Any]] = [
        qr(intake, GUT, id="someone-else"),
        qr(intake, NERVE),  # questionnaire differs from the one named
        qr(intake, GUT, subject={"reference": "Patient/other"}),
        qr(intake, GUT, status="amended"),
        qr(intake, GUT, authored="2025-03"),
        qr(intake, GUT, resourceType="Observation"),
    ]
    for resource in bad:
        with pytest.raises(ValueError):
            response_store.save_draft(
                session, intake_id=intake.id, questionnaire=GUT, resource=resource, page=None,
                now=NOW,
            )
    assert response_store.list_responses(session, intake.id)[0].version_id == 1


def test_save_draft_on_a_completed_intake_changes_nothing(
    session_factory: sessionmaker[Session],
) -> None:
    intake = new_intake(session_factory)
    with session_scope(session_factory) as session:
        response_store.save_draft(
            session, intake_id=intake.id, questionnaire=GUT, resource=qr(intake, GUT, "draft"),
            page="gut-1", now=NOW,
        )
        assert response_store.complete_intake(
            session, intake_id=intake.id, responses={GUT: qr(intake, GUT, "final")}, now=NOW
        )
    before = [(r.id, r.version_id, r.resource_json) for r in records(session_factory, intake.id)]

    for questionnaire in (GUT, NERVE):
        with pytest.raises(intakes.IntakeClosed):
            with session_scope(session_factory) as session:
                response_store.save_draft(
                    session, intake_id=intake.id, questionnaire=questionnaire,
                    resource=qr(intake, questionnaire, "late"), page="nerve-1",
                    now=NOW + timedelta(hours=1),
                )

    after = [(r.id, r.version_id, r.resource_json) for r in records(session_factory, intake.id)]
    assert after == before
    with session_scope(session_factory) as session:
        stored = intakes.get_intake(session, intake.id)
    assert stored is not None
    assert (stored.status, stored.last_page, stored.updated_at) == ("completed", "gut-1", NOW)


def test_unknown_intakes_raise_not_found(session: Session) -> None:
    intake = make_intake(session)
    with pytest.raises(intakes.IntakeNotFound):
        response_store.save_draft(
            session, intake_id="nope", questionnaire=GUT, resource=qr(intake, GUT), page=None,
            now=NOW,
        )
    with pytest.raises(intakes.IntakeNotFound):
        response_store.complete_intake(session, intake_id="nope", responses={}, now=NOW)


def test_list_responses_follows_the_intake_order(session: Session) -> None:
    intake = make_intake(session, questionnaires=(NERVE, GUT))
    for questionnaire in (GUT, NERVE):
        response_store.save_draft(
            session, intake_id=intake.id, questionnaire=questionnaire,
            resource=qr(intake, questionnaire), page=None, now=NOW,
        )
    assert [r.questionnaire for r in response_store.list_responses(session, intake.id)] == [NERVE, GUT]


def test_large_and_unicode_text_round_trips(session_factory: sessionmaker[Session]) -> None:
    intake = new_intake(session_factory)
    big = "x" * 100_000
    text = "Zoë 🦠 ß 中文 עברית ﷽ e\u0301 \u200d\U0001f469\u200d\U0001f52c \t\r\n \\ \" '"
    resource = qr(intake, GUT, big)
    resource["item"].append({"linkId": "q2", "answer": [{"valueString": text}]})
    with session_scope(session_factory) as session:
        response_store.save_draft(
            session, intake_id=intake.id, questionnaire=GUT, resource=resource, page=None, now=NOW
        )
    [record] = records(session_factory, intake.id)
    answers = [item["answer"][0]["valueString"] for item in record.resource["item"]]
    assert answers == [big, text]
    assert "Zoë 🦠 ß 中文 עברית" in record.resource_json  # stored as UTF-8, not \u escapes


def test_nul_characters_are_stored_escaped(session_factory: sessionmaker[Session]) -> None:
    """PostgreSQL text cannot hold NUL; the JSON text escapes it, so the answer survives."""
    intake = new_intake(session_factory)
    with session_scope(session_factory) as session:
        response_store.save_draft(
            session, intake_id=intake.id, questionnaire=GUT, resource=qr(intake, GUT, "a\x00b"),
            page=None, now=NOW,
        )
    [record] = records(session_factory, intake.id)
    assert "\x00" not in record.resource_json
    assert record.resource["item"][0]["answer"] == [{"valueString": "a\x00b"}]


def test_complete_intake_twice_stores_one_completed_set(
    session_factory: sessionmaker[Session],
) -> None:
    intake = new_intake(session_factory)
    with session_scope(session_factory) as session:
        response_store.save_draft(
            session, intake_id=intake.id, questionnaire=GUT, resource=qr(intake, GUT, "draft"),
            page="gut-1", now=NOW,
        )
    results = []
    for attempt, moment in (("first", NOW), ("second", NOW + timedelta(seconds=2))):
        responses = {q: qr(intake, q, attempt) for q in (GUT, NERVE)}
        with session_scope(session_factory) as session:
            results.append(
                response_store.complete_intake(session, intake_id=intake.id, responses=responses, now=moment)
            )
    assert results == [True, False]

    stored = records(session_factory, intake.id)
    assert [r.questionnaire for r in stored] == [GUT, NERVE]
    assert [r.status for r in stored] == ["completed", "completed"]
    assert [r.version_id for r in stored] == [2, 1]
    for record in stored:
        body = record.resource
        assert body["status"] == "completed"
        assert body["item"][0]["answer"] == [{"valueString": "first"}]
        assert body["meta"]["versionId"] == str(record.version_id)
    with session_scope(session_factory) as session:
        done = intakes.get_intake(session, intake.id)
    assert done is not None and done.status == "completed" and done.completed_at == NOW


def test_concurrent_submits_complete_exactly_once(session_factory: sessionmaker[Session]) -> None:
    intake = new_intake(session_factory)
    workers = 4
    barrier = threading.Barrier(workers)

    def submit(n: int) -> bool:
        responses = {q: qr(intake, q, f"worker-{n}") for q in (GUT, NERVE)}
        barrier.wait(timeout=10)
        with session_scope(session_factory) as session:
            return response_store.complete_intake(session, intake_id=intake.id, responses=responses, now=NOW)

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(submit, range(workers)))

    assert results.count(True) == 1
    winner = f"worker-{results.index(True)}"
    stored = records(session_factory, intake.id)
    assert len(stored) == 2
    for record in stored:
        assert record.status == "completed" and record.version_id == 1
        assert record.resource["item"][0]["answer"] == [{"valueString": winner}]


def test_concurrent_drafts_of_one_intake_are_serialised(
    session_factory: sessionmaker[Session],
) -> None:
    """Without the intake row lock, two first saves would both INSERT and one would fail."""
    intake = new_intake(session_factory)
    workers = 4
    barrier = threading.Barrier(workers)

    def save(n: int) -> int:
        barrier.wait(timeout=10)
        with session_scope(session_factory) as session:
            record = response_store.save_draft(
                session, intake_id=intake.id, questionnaire=GUT,
                resource=qr(intake, GUT, f"worker-{n}"), page=f"page-{n}", now=NOW,
            )
            return record.version_id

    with ThreadPoolExecutor(workers) as pool:
        versions = list(pool.map(save, range(workers)))

    assert sorted(versions) == [1, 2, 3, 4]
    with session_scope(session_factory) as session:
        count = session.scalar(select(func.count()).select_from(ResponseRecord))
        [record] = response_store.list_responses(session, intake.id)
    assert count == 1 and record.version_id == 4
    assert json.loads(record.resource_json)["meta"]["versionId"] == "4"


def test_conditional_save_updates_only_the_version_it_read(session_factory: sessionmaker[Session]) -> None:
    intake = new_intake(session_factory)
    save_if_unchanged(session_factory, intake, GUT, "first", None)
    base = view(session_factory, intake.id).stored_version(GUT)
    save_if_unchanged(session_factory, intake, GUT, "second", base, page="gut/p2")
    after = view(session_factory, intake.id)
    resource = json.loads(after.responses_json[0])
    assert after.stored_version(GUT) == intakes.StoredVersion(base.record_id, 2)
    assert resource["meta"]["versionId"] == "2" and resource["item"][0]["answer"][0]["valueString"] == "second"
    assert after.last_page == "gut/p2"
    # The same stale base again: refused, nothing written.
    with pytest.raises(response_store.StaleResponse):
        save_if_unchanged(session_factory, intake, GUT, "stale", base)
    again = view(session_factory, intake.id)
    assert again.responses_json == after.responses_json and again.last_page == "gut/p2"


def test_conditional_insert_loses_to_an_earlier_insert(session_factory: sessionmaker[Session]) -> None:
    intake = new_intake(session_factory)
    save_if_unchanged(session_factory, intake, GUT, "first", None)
    before = view(session_factory, intake.id)
    with pytest.raises(response_store.StaleResponse):
        save_if_unchanged(session_factory, intake, GUT, "also first", None)
    assert view(session_factory, intake.id).responses_json == before.responses_json


def test_conditional_save_refuses_closed_and_unknown_intakes(session_factory: sessionmaker[Session]) -> None:
    intake = new_intake(session_factory)
    save_if_unchanged(session_factory, intake, GUT, "first", None)
    base = view(session_factory, intake.id).stored_version(GUT)
    with session_scope(session_factory) as session:
        assert response_store.complete_intake(session, intake_id=intake.id, responses={GUT: qr(intake, GUT, "final")}, now=NOW)
    done = view(session_factory, intake.id)
    with pytest.raises(intakes.IntakeClosed):
        save_if_unchanged(session_factory, intake, GUT, "late", done.stored_version(GUT))
    assert view(session_factory, intake.id).responses_json == done.responses_json
    assert base is not None
    with session_scope(session_factory) as session, pytest.raises(intakes.IntakeNotFound):
        response_store.save_draft_if_unchanged(session, intake_id="nope", questionnaire=GUT, resource=qr(intake, GUT),
                                     page="p", now=NOW, base=None)


def test_concurrent_conditional_saves_from_one_base_store_exactly_one(session_factory: sessionmaker[Session]) -> None:
    intake = new_intake(session_factory)
    save_if_unchanged(session_factory, intake, GUT, "first", None)
    base = view(session_factory, intake.id).stored_version(GUT)
    start = threading.Barrier(4)

    def attempt(n: int) -> bool:
        start.wait()
        try:
            save_if_unchanged(session_factory, intake, GUT, f"writer {n}", base)
        except response_store.StaleResponse:
            return False
        return True

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(attempt, range(4)))
    assert outcomes.count(True) == 1
    assert view(session_factory, intake.id).stored_version(GUT).version_id == 2

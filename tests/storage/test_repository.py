"""Repository behaviour on whichever database the run uses (see tests/conftest.py)."""

from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from intake.storage import repository as repo
from intake.storage.db import session_scope
from intake.storage.models import Intake, InviteToken, ResponseRecord, ShownLink

GUT = "http://intake.example/fhir/Questionnaire/gut|1.0.0"
NERVE = "http://intake.example/fhir/Questionnaire/nerve|2.1"
NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


# --- factories ------------------------------------------------------------------------------


def make_intake(session: Session, questionnaires: tuple[str, ...] = (GUT, NERVE)) -> Intake:
    patient = repo.create_patient(session, name="Ada Example", birth_date=date(1971, 5, 2))
    return repo.create_intake(session, patient_id=patient.id, questionnaires=list(questionnaires))


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
        return repo.list_responses(session, intake_id)


# --- basics ---------------------------------------------------------------------------------


def test_canonical_json_is_sorted_compact_and_keeps_unicode() -> None:
    assert repo.canonical_json({"b": 1, "a": {"d": "é", "c": [1, 2]}}) == (
        '{"a":{"c":[1,2],"d":"é"},"b":1}'
    )


def test_patients_and_intakes_round_trip_with_utc_datetimes(
    session_factory: sessionmaker[Session],
) -> None:
    appointment = datetime(2025, 3, 15, 8, 0, tzinfo=timezone(timedelta(hours=2)))
    with session_scope(session_factory) as session:
        patient = repo.create_patient(session, name="Zoë Ñandú", birth_date=date(1990, 2, 28))
        intake = repo.create_intake(
            session, patient_id=patient.id, questionnaires=[NERVE, GUT], appointment_at=appointment
        )
    with session_scope(session_factory) as session:
        stored_patient = repo.get_patient(session, patient.id)
        stored = repo.get_intake(session, intake.id)
        assert repo.get_intake(session, "missing") is None
    assert stored_patient is not None and stored is not None
    assert stored_patient.name == "Zoë Ñandú"
    assert stored_patient.birth_date == date(1990, 2, 28)
    assert stored_patient.created_at.tzinfo == UTC
    assert stored.questionnaires == [NERVE, GUT]
    assert stored.status == "not-started" and stored.last_page is None
    assert stored.appointment_at == appointment
    assert stored.appointment_at is not None and stored.appointment_at.tzinfo == UTC


@pytest.mark.parametrize(
    "questionnaires", [["no-version"], ["http://x/q|"], [GUT, GUT.replace("1.0.0", "2")]]
)
def test_create_intake_refuses_bad_canonicals(session: Session, questionnaires: list[str]) -> None:
    patient = repo.create_patient(session, name="A", birth_date=date(2000, 1, 1))
    with pytest.raises(ValueError):
        repo.create_intake(session, patient_id=patient.id, questionnaires=questionnaires)


def test_naive_datetimes_are_refused(session: Session) -> None:
    intake = make_intake(session)
    with pytest.raises(ValueError, match="tz-aware"):
        repo.save_draft(
            session, intake_id=intake.id, questionnaire=GUT, resource=qr(intake, GUT),
            page="p1", now=datetime(2025, 1, 1),
        )


# --- invite tokens --------------------------------------------------------------------------


def test_token_lookup_finds_only_live_tokens(session: Session) -> None:
    intake = make_intake(session)
    tomorrow = NOW + timedelta(days=1)
    live = token_hash("live")
    repo.issue_invite(session, intake_id=intake.id, token_hash=live, expires_at=tomorrow)
    found = repo.find_intake_by_token_hash(session, live, now=NOW)
    assert found is not None and found.id == intake.id
    assert repo.find_intake_by_token_hash(session, token_hash("unknown"), now=NOW) is None
    expired = repo.find_intake_by_token_hash(session, live, now=tomorrow)
    assert expired is None  # a link stops working at its expiry instant

    other = make_intake(session)
    for token in ("old", "new"):
        repo.issue_invite(
            session, intake_id=other.id, token_hash=token_hash(token), expires_at=tomorrow
        )
    assert repo.find_intake_by_token_hash(session, token_hash("old"), now=NOW) is None  # revoked
    found = repo.find_intake_by_token_hash(session, token_hash("new"), now=NOW)
    assert found is not None and found.id == other.id


def test_issuing_an_invite_revokes_the_earlier_ones(session_factory: sessionmaker[Session]) -> None:
    intake = new_intake(session_factory)
    for token in ("first", "second", "third"):
        with session_scope(session_factory) as session:
            repo.issue_invite(
                session, intake_id=intake.id, token_hash=token_hash(token),
                expires_at=NOW + timedelta(days=7),
            )
    with session_scope(session_factory) as session:
        rows = session.scalars(select(InviteToken).order_by(InviteToken.id)).all()
    assert [r.token_hash for r in rows] == [token_hash(t) for t in ("first", "second", "third")]
    assert [r.revoked_at is None for r in rows] == [False, False, True]
    assert all(r.revoked_at is None or r.revoked_at.tzinfo == UTC for r in rows)


def test_raw_tokens_are_refused(session: Session) -> None:
    intake = make_intake(session)
    with pytest.raises(ValueError, match="SHA-256"):
        repo.issue_invite(
            session, intake_id=intake.id, token_hash="raw-secret-token", expires_at=NOW
        )


def test_finding_1_a_link_is_in_force_until_replaced_revoked_or_expired(session: Session) -> None:
    intake, other = make_intake(session), make_intake(session)
    tomorrow = NOW + timedelta(days=1)
    repo.issue_invite(session, intake_id=intake.id, token_hash=token_hash("first"), expires_at=tomorrow)
    found = repo.find_live_link(session, token_hash("first"), now=NOW)
    assert found is not None and found[0].id == intake.id
    first = found[1]
    for lock in (False, True):
        assert repo.link_in_force(session, first, intake.id, now=NOW, lock=lock)
        assert not repo.link_in_force(session, first, intake.id, now=tomorrow, lock=lock)  # expired
        assert not repo.link_in_force(session, first, other.id, now=NOW, lock=lock)  # another intake's
        assert not repo.link_in_force(session, first, "no-such-intake", now=NOW, lock=lock)
    repo.issue_invite(session, intake_id=intake.id, token_hash=token_hash("second"), expires_at=tomorrow)
    second = repo.find_live_link(session, token_hash("second"), now=NOW)
    assert second is not None
    assert not repo.link_in_force(session, first, intake.id, now=NOW)  # replaced
    assert repo.link_in_force(session, second[1], intake.id, now=NOW)
    assert repo.find_live_link(session, token_hash("first"), now=NOW) is None


def test_finding_9_a_held_link_is_taken_once_and_not_after_it_expires(session: Session) -> None:
    intake, other = make_intake(session), make_intake(session)
    soon = NOW + timedelta(minutes=5)
    held = repo.hold_shown_link(session, intake_id=intake.id, sealed="sealed-1", expires_at=soon, now=NOW)
    assert repo.take_shown_link(session, held, intake_id=intake.id, now=NOW) == "sealed-1"
    assert repo.take_shown_link(session, held, intake_id=intake.id, now=NOW) is None  # once
    held = repo.hold_shown_link(session, intake_id=intake.id, sealed="sealed-2", expires_at=soon, now=NOW)
    assert repo.take_shown_link(session, held, intake_id=other.id, now=NOW) is None  # another intake's page
    assert repo.take_shown_link(session, held, intake_id=intake.id, now=NOW) is None  # and it is gone
    held = repo.hold_shown_link(session, intake_id=intake.id, sealed="sealed-3", expires_at=soon, now=NOW)
    assert repo.take_shown_link(session, held, intake_id=intake.id, now=soon) is None  # expired
    repo.hold_shown_link(session, intake_id=intake.id, sealed="stale", expires_at=soon, now=NOW)
    repo.hold_shown_link(session, intake_id=other.id, sealed="fresh", expires_at=soon + timedelta(minutes=5), now=soon)
    assert session.scalars(select(ShownLink.sealed)).all() == ["fresh"]  # held past their time: dropped


# --- drafts ---------------------------------------------------------------------------------


def test_save_draft_upserts_and_tracks_progress(session_factory: sessionmaker[Session]) -> None:
    intake = new_intake(session_factory)
    with session_scope(session_factory) as session:
        first = repo.save_draft(
            session, intake_id=intake.id, questionnaire=GUT, resource=qr(intake, GUT, "a"),
            page="gut-1", now=NOW,
        )
    later = NOW + timedelta(minutes=5)
    resource = qr(intake, GUT, "b")
    with session_scope(session_factory) as session:
        second = repo.save_draft(
            session, intake_id=intake.id, questionnaire=GUT, resource=resource,
            page="gut-2", now=later,
        )
        stored_intake = repo.get_intake(session, intake.id)
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
    assert record.authored == datetime(2025, 3, 14, 8, 0, tzinfo=UTC)
    assert record.updated_at == later
    assert record.questionnaire == GUT
    assert record.resource_json == repo.canonical_json(body)


def test_save_draft_without_page_keeps_the_resume_point(session: Session) -> None:
    intake = make_intake(session)
    resource = qr(intake, GUT)
    for page in ("gut-3", None):
        repo.save_draft(
            session, intake_id=intake.id, questionnaire=GUT, resource=resource, page=page, now=NOW
        )
    assert intake.last_page == "gut-3"


def test_save_draft_fills_missing_fields_and_refuses_contradictions(session: Session) -> None:
    intake = make_intake(session)
    bare = {"resourceType": "QuestionnaireResponse", "item": []}
    record = repo.save_draft(
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
            repo.save_draft(
                session, intake_id=intake.id, questionnaire=GUT, resource=resource, page=None,
                now=NOW,
            )
    assert repo.list_responses(session, intake.id)[0].version_id == 1


def test_save_draft_on_a_completed_intake_changes_nothing(
    session_factory: sessionmaker[Session],
) -> None:
    intake = new_intake(session_factory)
    with session_scope(session_factory) as session:
        repo.save_draft(
            session, intake_id=intake.id, questionnaire=GUT, resource=qr(intake, GUT, "draft"),
            page="gut-1", now=NOW,
        )
        assert repo.complete_intake(
            session, intake_id=intake.id, responses={GUT: qr(intake, GUT, "final")}, now=NOW
        )
    before = [(r.id, r.version_id, r.resource_json) for r in records(session_factory, intake.id)]

    for questionnaire in (GUT, NERVE):
        with pytest.raises(repo.IntakeClosed), session_scope(session_factory) as session:
            repo.save_draft(
                session, intake_id=intake.id, questionnaire=questionnaire,
                resource=qr(intake, questionnaire, "late"), page="nerve-1",
                now=NOW + timedelta(hours=1),
            )

    after = [(r.id, r.version_id, r.resource_json) for r in records(session_factory, intake.id)]
    assert after == before
    with session_scope(session_factory) as session:
        stored = repo.get_intake(session, intake.id)
    assert stored is not None
    assert (stored.status, stored.last_page, stored.updated_at) == ("completed", "gut-1", NOW)


def test_unknown_intakes_raise_not_found(session: Session) -> None:
    intake = make_intake(session)
    with pytest.raises(repo.IntakeNotFound):
        repo.save_draft(
            session, intake_id="nope", questionnaire=GUT, resource=qr(intake, GUT), page=None,
            now=NOW,
        )
    with pytest.raises(repo.IntakeNotFound):
        repo.complete_intake(session, intake_id="nope", responses={}, now=NOW)


def test_list_responses_follows_the_intake_order(session: Session) -> None:
    intake = make_intake(session, questionnaires=(NERVE, GUT))
    for questionnaire in (GUT, NERVE):
        repo.save_draft(
            session, intake_id=intake.id, questionnaire=questionnaire,
            resource=qr(intake, questionnaire), page=None, now=NOW,
        )
    assert [r.questionnaire for r in repo.list_responses(session, intake.id)] == [NERVE, GUT]


def test_large_and_unicode_text_round_trips(session_factory: sessionmaker[Session]) -> None:
    intake = new_intake(session_factory)
    big = "x" * 100_000
    text = "Zoë 🦠 ß 中文 עברית ﷽ e\u0301 \u200d\U0001f469\u200d\U0001f52c \t\r\n \\ \" '"
    resource = qr(intake, GUT, big)
    resource["item"].append({"linkId": "q2", "answer": [{"valueString": text}]})
    with session_scope(session_factory) as session:
        repo.save_draft(
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
        repo.save_draft(
            session, intake_id=intake.id, questionnaire=GUT, resource=qr(intake, GUT, "a\x00b"),
            page=None, now=NOW,
        )
    [record] = records(session_factory, intake.id)
    assert "\x00" not in record.resource_json
    assert record.resource["item"][0]["answer"] == [{"valueString": "a\x00b"}]


# --- completion -----------------------------------------------------------------------------


def test_complete_intake_twice_stores_one_completed_set(
    session_factory: sessionmaker[Session],
) -> None:
    intake = new_intake(session_factory)
    with session_scope(session_factory) as session:
        repo.save_draft(
            session, intake_id=intake.id, questionnaire=GUT, resource=qr(intake, GUT, "draft"),
            page="gut-1", now=NOW,
        )
    results = []
    for attempt, moment in (("first", NOW), ("second", NOW + timedelta(seconds=2))):
        responses = {q: qr(intake, q, attempt) for q in (GUT, NERVE)}
        with session_scope(session_factory) as session:
            results.append(
                repo.complete_intake(session, intake_id=intake.id, responses=responses, now=moment)
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
        done = repo.get_intake(session, intake.id)
    assert done is not None and done.status == "completed" and done.completed_at == NOW


def test_concurrent_submits_complete_exactly_once(session_factory: sessionmaker[Session]) -> None:
    intake = new_intake(session_factory)
    workers = 4
    barrier = threading.Barrier(workers)

    def submit(n: int) -> bool:
        responses = {q: qr(intake, q, f"worker-{n}") for q in (GUT, NERVE)}
        barrier.wait(timeout=10)
        with session_scope(session_factory) as session:
            return repo.complete_intake(session, intake_id=intake.id, responses=responses, now=NOW)

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
            record = repo.save_draft(
                session, intake_id=intake.id, questionnaire=GUT,
                resource=qr(intake, GUT, f"worker-{n}"), page=f"page-{n}", now=NOW,
            )
            return record.version_id

    with ThreadPoolExecutor(workers) as pool:
        versions = list(pool.map(save, range(workers)))

    assert sorted(versions) == [1, 2, 3, 4]
    with session_scope(session_factory) as session:
        count = session.scalar(select(func.count()).select_from(ResponseRecord))
        [record] = repo.list_responses(session, intake.id)
    assert count == 1 and record.version_id == 4
    assert json.loads(record.resource_json)["meta"]["versionId"] == "4"


# --- intake_view and the conditional save used by the patient pages --------------------------


def view(session_factory: sessionmaker[Session], intake_id: str) -> repo.IntakeView:
    with session_scope(session_factory) as session:
        found = repo.intake_view(session, intake_id)
    assert found is not None
    return found


def save_if_unchanged(session_factory: sessionmaker[Session], intake: Intake | repo.IntakeView,
                      questionnaire: str, answer: str, base: repo.StoredVersion | None,
                      page: str = "gut/p1") -> None:
    with session_scope(session_factory) as session:
        repo.save_draft_if_unchanged(
            session, intake_id=intake.id, questionnaire=questionnaire,
            resource=qr(intake, questionnaire, answer), page=page, now=NOW, base=base,
        )


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
        assert repo.intake_view(session, "no-such-intake") is None


def test_conditional_save_updates_only_the_version_it_read(session_factory: sessionmaker[Session]) -> None:
    intake = new_intake(session_factory)
    save_if_unchanged(session_factory, intake, GUT, "first", None)
    base = view(session_factory, intake.id).stored_version(GUT)
    save_if_unchanged(session_factory, intake, GUT, "second", base, page="gut/p2")
    after = view(session_factory, intake.id)
    resource = json.loads(after.responses_json[0])
    assert after.stored_version(GUT) == repo.StoredVersion(base.record_id, 2)
    assert resource["meta"]["versionId"] == "2" and resource["item"][0]["answer"][0]["valueString"] == "second"
    assert after.last_page == "gut/p2"
    # The same stale base again: refused, nothing written.
    with pytest.raises(repo.StaleResponse):
        save_if_unchanged(session_factory, intake, GUT, "stale", base)
    again = view(session_factory, intake.id)
    assert again.responses_json == after.responses_json and again.last_page == "gut/p2"


def test_conditional_insert_loses_to_an_earlier_insert(session_factory: sessionmaker[Session]) -> None:
    intake = new_intake(session_factory)
    save_if_unchanged(session_factory, intake, GUT, "first", None)
    before = view(session_factory, intake.id)
    with pytest.raises(repo.StaleResponse):
        save_if_unchanged(session_factory, intake, GUT, "also first", None)
    assert view(session_factory, intake.id).responses_json == before.responses_json


def test_conditional_save_refuses_closed_and_unknown_intakes(session_factory: sessionmaker[Session]) -> None:
    intake = new_intake(session_factory)
    save_if_unchanged(session_factory, intake, GUT, "first", None)
    base = view(session_factory, intake.id).stored_version(GUT)
    with session_scope(session_factory) as session:
        assert repo.complete_intake(session, intake_id=intake.id, responses={GUT: qr(intake, GUT, "final")}, now=NOW)
    done = view(session_factory, intake.id)
    with pytest.raises(repo.IntakeClosed):
        save_if_unchanged(session_factory, intake, GUT, "late", done.stored_version(GUT))
    assert view(session_factory, intake.id).responses_json == done.responses_json
    assert base is not None
    with session_scope(session_factory) as session, pytest.raises(repo.IntakeNotFound):
        repo.save_draft_if_unchanged(session, intake_id="nope", questionnaire=GUT, resource=qr(intake, GUT),
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
        except repo.StaleResponse:
            return False
        return True

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(attempt, range(4)))
    assert outcomes.count(True) == 1
    assert view(session_factory, intake.id).stored_version(GUT).version_id == 2

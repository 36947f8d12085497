"""The use cases of intake/workflow.py, called directly: each step writes its audit row and its
follow-up outbox rows in the caller's transaction, once, whoever calls it (a view or a command).

The stress questionnaire is used throughout: PHQ-4 answered high switches PHQ-9 on, and PHQ-9
item 9 above "Not at all" raises the emergency flag `phq9-item9`.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from intake import audit, workflow
from intake.auth.links import token_hash
from intake.core.enablement import Answers
from intake.core.items import Form
from intake.jobs import outbox
from intake.services import services
from intake.storage import flags as flag_store
from intake.storage import intakes, invites, responses
from intake.storage.db import session_scope
from intake.storage.models import AuditRecord, InviteToken, OutboxRecord
from tests.conftest import AppFactory
from tests.support.clock import ManualClock

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
BY = workflow.Caller(audit.Actor("user", "frontdesk1"), "192.0.2.7")
EMERGENCY = "phq9-item9"


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    """Notifications configured (rows are queued; nothing is dispatched here) and an EHR to push to."""
    return make_app(INTAKE_NOTIFY_WEBHOOK="http://127.0.0.1:9/hook", INTAKE_EHR_FHIR_BASE="http://127.0.0.1:9/fhir",
                    INTAKE_LINK_TTL_HOURS=5)


def sessions(app: Flask) -> Any:
    return session_scope(services(app).sessions)


def stress(app: Flask) -> Form:
    form: Form = services(app).catalog.by_key["stress"]
    return form


def answer(form: Form, link_id: str, option: int) -> list[dict[str, Any]]:
    coding = form.by_link[link_id].options[option]["valueCoding"]
    return [{"valueCoding": {key: coding[key] for key in ("system", "code", "display")}}]


def stress_answers(form: Form, *, item9: int) -> Answers:
    """Every question of the pages shown: PHQ-4 high (PHQ-9 and GAD-7 on), PHQ-9 item 9 = `item9`."""
    answers: Answers = {}
    for n in range(1, 11):
        answers[f"pss10-{n}"] = answer(form, f"pss10-{n}", 0)
    for n in range(1, 5):
        answers[f"phq4-{n}"] = answer(form, f"phq4-{n}", 2)
    for n in range(1, 10):
        answers[f"phq9-{n}"] = answer(form, f"phq9-{n}", item9 if n == 9 else 0)
    for n in range(1, 8):
        answers[f"gad7-{n}"] = answer(form, f"gad7-{n}", 0)
    return answers


def new_intake(app: Flask) -> str:
    with sessions(app) as session:
        intake, _token = workflow.invite_patient(app, session, services(app).catalog, by=BY,
                                                 name="Pat Example", birth_date=date(1970, 1, 1),
                                                 questionnaires=["stress"], appointment_at=None, now=NOW)
        return intake.id


def save(app: Flask, intake_id: str, answers: Answers, *, page: str = "stress-phq9",
         language: str | None = "en") -> workflow.Saved:
    form = stress(app)
    with sessions(app) as session:
        view = intakes.intake_view(session, intake_id)
        assert view is not None
        step = next(s for s in workflow.steps([form], {form.canonical: answers}) if s.page.key == page)
        return workflow.save_answers(app, session, view, [form], workflow.stored_answers(view), step, answers,
                                     by=BY, language=language, now=NOW)


def submit(app: Flask, intake_id: str) -> tuple[bool, list[Any]]:
    with sessions(app) as session:
        view = intakes.intake_view(session, intake_id)
        assert view is not None
        return workflow.submit_intake(app, session, services(app).catalog, view, by=BY, now=NOW)


def rows(app: Flask, subject: str | None = None) -> list[tuple[str, str, int | None]]:
    """(kind, subject, after_id) of every outbox row, in order; of one subject when given."""
    with services(app).sessions() as session:
        query = select(OutboxRecord).order_by(OutboxRecord.id)
        if subject is not None:
            query = query.where(OutboxRecord.subject == subject)
        return [(r.kind, r.subject, r.after_id) for r in session.scalars(query)]


def audit_rows(app: Flask, entity: str) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    """(actor kind, actor, action, source, detail) of the audit rows naming `entity`, in order."""
    with services(app).sessions() as session:
        found = session.scalars(select(AuditRecord).order_by(AuditRecord.seq)).all()
        return [(r.actor_kind, r.actor, r.action, r.source, json.loads(r.detail) if r.detail else {})
                for r in found if entity in json.loads(r.entities)]


def flag_ids(session: Session, intake_id: str) -> list[int]:
    return [flag.id for flag in flag_store.flags_of_intake(session, intake_id) if flag.rule_id == EMERGENCY]


# --- invite and links -------------------------------------------------------------------------------


def test_without_now_the_use_cases_read_the_apps_clock(make_app: AppFactory) -> None:
    clock = ManualClock(NOW)
    app = make_app(clock=clock, INTAKE_LINK_TTL_HOURS=5)
    with sessions(app) as session:
        intake, token = workflow.invite_patient(app, session, services(app).catalog, by=BY, name="Pat Example",
                                                birth_date=date(1970, 1, 1), questionnaires=["stress"],
                                                appointment_at=None)
    clock.advance(60)
    with sessions(app) as session:
        replaced = workflow.replace_link(app, session, intake.id, by=BY)
    with services(app).sessions() as session:
        links = {link.token_hash: link for link in session.scalars(select(InviteToken))}
    old, new = links[token_hash(token)], links[token_hash(replaced)]
    assert old.expires_at == NOW + timedelta(hours=5) and old.revoked_at is not None  # revoked when replaced
    assert new.expires_at == NOW + timedelta(hours=5, seconds=60) and new.revoked_at is None


def test_invite_patient_uses_the_link_lifetime_and_audits_patient_and_intake(app: Flask) -> None:
    with sessions(app) as session:
        intake, token = workflow.invite_patient(app, session, services(app).catalog, by=BY,
                                                name="  Pat   Example ", birth_date=date(1970, 1, 1),
                                                questionnaires=["stress"], appointment_at=None, now=NOW)
        intake_id, patient_id = intake.id, intake.patient_id
    with services(app).sessions() as session:
        link = session.scalars(select(InviteToken).where(InviteToken.token_hash == token_hash(token))).one()
        assert link.intake_id == intake_id and link.expires_at == NOW + timedelta(hours=5)
    assert audit_rows(app, f"Intake/{intake_id}") == [("user", "frontdesk1", "create", "192.0.2.7", {})]
    assert [row[2] for row in audit_rows(app, f"Patient/{patient_id}")] == ["create"]


def test_a_refused_invite_writes_nothing(app: Flask) -> None:
    with pytest.raises(workflow.WorkflowError), sessions(app) as session:
        workflow.invite_patient(app, session, services(app).catalog, by=BY, name="Pat",
                                birth_date=date(1970, 1, 1), questionnaires=["no-such-form"], appointment_at=None)
    with services(app).sessions() as session:
        assert session.scalars(select(AuditRecord)).first() is None


def test_replace_link_ends_the_old_link_and_audits_it(app: Flask) -> None:
    with sessions(app) as session:
        intake, old = workflow.invite_patient(app, session, services(app).catalog, by=BY, name="Pat",
                                              birth_date=date(1970, 1, 1), questionnaires=["stress"],
                                              appointment_at=None, now=NOW)
        intake_id = intake.id
    later = NOW + timedelta(minutes=1)
    cli = workflow.Caller.cli()
    with sessions(app) as session:
        new = workflow.replace_link(app, session, intake_id, by=cli, now=later)
    with services(app).sessions() as session:
        assert invites.find_live_link(session, token_hash(old), now=later) is None
        assert invites.find_live_link(session, token_hash(new), now=later) is not None
    replaced = audit_rows(app, f"Intake/{intake_id}")[-1]
    assert replaced == ("cli", cli.actor.name, "update", "cli", {"link": "replaced"})
    with pytest.raises(workflow.NotFoundError, match="no such intake"), sessions(app) as session:  # a 404
        workflow.replace_link(app, session, "no-such-intake", by=cli)


# --- saving a page -----------------------------------------------------------------------------------


def test_save_answers_stores_audits_and_queues_an_emergency_once(app: Flask) -> None:
    intake_id = new_intake(app)
    answers = stress_answers(stress(app), item9=1)
    saved = save(app, intake_id, answers, language="es")
    assert saved.queued == 1 and saved.emergencies == [EMERGENCY]
    with services(app).sessions() as session:
        view = intakes.intake_view(session, intake_id)
        assert view is not None and view.language == "es" and view.last_page == "stress/stress-phq9"
        flags = flag_ids(session, intake_id)
    assert rows(app) == [(outbox.NOTIFY, str(flags[0]), None)]
    assert audit_rows(app, f"Intake/{intake_id}")[-1] == ("user", "frontdesk1", "update", "192.0.2.7",
                                                          {"page": "stress/stress-phq9"})
    again = save(app, intake_id, answers, language="es")
    assert again.queued == 0  # the flag is queued already: staff are told once
    assert rows(app) == [(outbox.NOTIFY, str(flags[0]), None)]


def test_save_answers_without_a_channel_queues_nothing_but_still_interrupts(make_app: AppFactory) -> None:
    app = make_app()
    intake_id = new_intake(app)
    saved = save(app, intake_id, stress_answers(stress(app), item9=1))
    assert saved == workflow.Saved(queued=0, emergencies=[EMERGENCY])
    assert rows(app) == []


def test_a_stale_save_writes_no_flag_row_and_no_audit_row(app: Flask) -> None:
    intake_id = new_intake(app)
    form = stress(app)
    with services(app).sessions() as session:
        stale = intakes.intake_view(session, intake_id)
    save(app, intake_id, stress_answers(form, item9=0))  # someone else saved first
    before = audit_rows(app, f"Intake/{intake_id}")
    assert stale is not None
    step = next(s for s in workflow.steps([form], {}) if s.page.key == "stress-pss10")
    with pytest.raises(responses.StaleResponse), sessions(app) as session:
        workflow.save_answers(app, session, stale, [form], {}, step, stress_answers(form, item9=1), by=BY,
                              language="en", now=NOW)
    assert rows(app) == [] and audit_rows(app, f"Intake/{intake_id}") == before


# --- submit and re-score -----------------------------------------------------------------------------


def test_submit_intake_audits_and_queues_notification_pdf_then_push(app: Flask) -> None:
    intake_id = new_intake(app)
    save(app, intake_id, stress_answers(stress(app), item9=0))
    assert submit(app, intake_id) == (True, [])
    queued = rows(app)
    assert [(kind, subject) for kind, subject, _ in queued] == [
        (outbox.RENDER_PDF, intake_id),
        (outbox.EHR_PUSH, intake_id),
    ]
    with services(app).sessions() as session:
        render_id = session.scalars(select(OutboxRecord.id).where(OutboxRecord.kind == outbox.RENDER_PDF)).one()
    assert queued[1][2] == render_id  # the push waits for the PDF, so the Bundle carries it
    submitted = [row for row in audit_rows(app, f"Intake/{intake_id}") if row[2] == "create" and row[4]]
    assert submitted == [("user", "frontdesk1", "create", "192.0.2.7", {"submitted": True})]
    assert submit(app, intake_id) == (False, [])  # a double submit: nothing new
    assert rows(app) == queued
    assert [row for row in audit_rows(app, f"Intake/{intake_id}") if row[4] == {"submitted": True}] == submitted


def test_submit_intake_notifies_a_flag_raised_at_submit_and_not_one_queued_from_a_draft(app: Flask) -> None:
    drafted, fresh = new_intake(app), new_intake(app)
    form = stress(app)
    save(app, drafted, stress_answers(form, item9=1))  # queued when the page was saved
    with sessions(app) as session:  # answers stored without the save use case: no flag yet
        view = intakes.intake_view(session, fresh)
        assert view is not None
        page = next(p for p in form.pages if p.key == "stress-phq9")
        workflow.save_page(session, view, form, page, stress_answers(form, item9=1), now=NOW)
    assert submit(app, drafted) == (True, []) and submit(app, fresh) == (True, [])
    assert [kind for kind, _, _ in rows(app, drafted)] == [outbox.RENDER_PDF, outbox.EHR_PUSH]
    with services(app).sessions() as session:
        notified = sorted(subject for kind, subject, _ in rows(app) if kind == outbox.NOTIFY)
        assert notified == sorted([str(flag_ids(session, drafted)[0]), str(flag_ids(session, fresh)[0])])  # once each


def test_an_invalid_submit_writes_no_audit_row_and_no_follow_up(app: Flask) -> None:
    intake_id = new_intake(app)
    partial = {k: v for k, v in stress_answers(stress(app), item9=0).items() if not k.startswith("gad7")}
    save(app, intake_id, partial)
    done, problems = submit(app, intake_id)
    assert not done and problems and {form.key for form, _ in problems} == {"stress"}
    assert rows(app) == []
    assert not [row for row in audit_rows(app, f"Intake/{intake_id}") if row[4] == {"submitted": True}]


def test_submit_follow_ups_roll_back_with_the_callers_transaction(app: Flask) -> None:
    intake_id = new_intake(app)
    save(app, intake_id, stress_answers(stress(app), item9=0))
    before = audit_rows(app, f"Intake/{intake_id}")

    class Refused(Exception):
        pass

    with pytest.raises(Refused), sessions(app) as session:
        view = intakes.intake_view(session, intake_id)
        assert view is not None
        assert workflow.submit_intake(app, session, services(app).catalog, view, by=BY, now=NOW)[0]
        raise Refused  # e.g. the patient's link was replaced meanwhile
    assert rows(app) == [] and audit_rows(app, f"Intake/{intake_id}") == before
    with services(app).sessions() as session:
        view = intakes.intake_view(session, intake_id)
        assert view is not None and view.status != "completed"


def test_rescore_intake_audits_and_renders_again_without_notifying_twice(app: Flask) -> None:
    intake_id = new_intake(app)
    save(app, intake_id, stress_answers(stress(app), item9=1))
    assert submit(app, intake_id) == (True, [])
    before = rows(app)
    cli = workflow.Caller.cli()
    with sessions(app) as session:
        result = workflow.rescore_intake(app, session, services(app).catalog, intake_id, by=cli,
                                         now=NOW + timedelta(hours=1))
    assert EMERGENCY in {flag.id for flag in result.flags}
    added = rows(app)[len(before):]
    assert [(kind, subject) for kind, subject, _ in added] == [
        (outbox.RENDER_PDF, intake_id),
        (outbox.EHR_PUSH, intake_id),
    ]
    assert audit_rows(app, f"Intake/{intake_id}")[-1] == ("cli", cli.actor.name, "update", "cli", {"rescored": True})


def test_rescore_intake_refuses_an_unsent_intake_and_writes_nothing(app: Flask) -> None:
    intake_id = new_intake(app)
    before = audit_rows(app, f"Intake/{intake_id}")
    with pytest.raises(workflow.ConflictError, match="not a completed intake"), sessions(app) as session:  # a 409
        workflow.rescore_intake(app, session, services(app).catalog, intake_id, by=BY)
    assert rows(app) == [] and audit_rows(app, f"Intake/{intake_id}") == before
    with pytest.raises(workflow.NotFoundError), sessions(app) as session:
        workflow.rescore_intake(app, session, services(app).catalog, "no-such-intake", by=BY)


def test_without_an_ehr_the_submit_queues_no_push(make_app: AppFactory) -> None:
    app = make_app()
    intake_id = new_intake(app)
    save(app, intake_id, stress_answers(stress(app), item9=0))
    assert submit(app, intake_id) == (True, [])
    assert rows(app) == [(outbox.RENDER_PDF, intake_id, None)]

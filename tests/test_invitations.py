"""Invitations and reminders end to end: a real SMTP server on 127.0.0.1 (aiosmtpd), a stand-in
SMS provider, the outbox on a manual clock (no sleeps)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from intake.jobs import outbox
from intake.services import services
from intake.storage.models import AuditRecord, Intake, InviteToken, OutboxRecord, PatientMessage
from tests.conftest import AppFactory
from tests.support.clock import ManualClock
from tests.support.sms_provider import SmsProvider
from tests.test_notify import Inbox, inbox  # noqa: F401  (fixture)
from tests.web.conftest import csrf
from tests.web.flow import fill_all, first_page

# Tomorrow 10:00 UTC: links made on this clock work now too (they expire a week after it).
START = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), time(10), UTC)
APPOINTMENT = START + timedelta(days=3, hours=5)  # 15:00, three days on


@pytest.fixture
def sms() -> Iterator[SmsProvider]:
    with SmsProvider() as provider:
        yield provider


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def app(make_app: AppFactory, inbox: tuple[Inbox, int], sms: SmsProvider, clock: ManualClock) -> Flask:  # noqa: F811
    return make_app(clock=clock, INTAKE_SMTP_PORT=inbox[1], INTAKE_SMTP_FROM="clinic@example.org",
                    INTAKE_CLINIC_PHONE="+1 555 010 0000", **sms.settings())


def invite(app: Flask, *extra: str, appointment: datetime = APPOINTMENT) -> str:
    result = app.test_cli_runner().invoke(args=[
        "intake", "invite", "--name", "Zebediah Quaxmoor", "--birth-date", "1970-05-01", "--questionnaires", "stress",
        "--appointment", appointment.isoformat(), *extra])
    assert result.exit_code == 0, result.output
    return result.output.split(" ")[1]


def link_in(text: str) -> str:
    """The patient link a message carries, as a path."""
    return "/i/" + text.split("/i/", 1)[1].split()[0]


def rows(app: Flask, model: Any) -> list[Any]:
    with services(app).sessions() as session:
        found = list(session.scalars(select(model).order_by(*model.__table__.primary_key.columns)))
        session.expunge_all()
        return found


def sent_audits(app: Flask) -> list[dict[str, Any]]:
    return [json.loads(r.detail) for r in rows(app, AuditRecord) if r.actor_kind == "system"]


def submit(app: Flask, path: str) -> None:
    client = app.test_client()
    assert client.get(path).status_code == 302
    fill_all(client, app, first_page(client))
    review = client.get("/intake/review")
    assert client.post("/intake/submit", data={"csrf_token": csrf(review.text)}).status_code == 302


def test_an_invitation_reaches_the_patient_by_email_and_sms_in_spanish_with_a_working_link(
        app: Flask, inbox: tuple[Inbox, int], sms: SmsProvider) -> None:  # noqa: F811
    handler, _port = inbox
    invite(app, "--email", " Zeb@Example.ORG ", "--phone", "+1 (555) 123-4567", "--language", "es")
    assert len(handler.messages) == 1 and len(sms.received) == 1  # queued by the command, sent by the outbox
    mail = handler.messages[0]
    assert mail["To"] == "Zeb@example.org" and mail["From"] == "clinic@example.org"
    assert mail["Subject"] == "Su cuestionario antes de su cita"
    body = mail.get_payload()
    assert "responda unas preguntas" in body and "+1 555 010 0000" in body and "Zebediah" not in body
    text = sms.received[0]
    assert (text["To"], text["From"]) == ("+15551234567", "+15550001111")
    assert link_in(text["Body"]) == link_in(body)  # one link, by both channels
    client = app.test_client()
    assert client.get(link_in(body)).headers["Location"].endswith("/intake")
    start = client.get("/intake")
    assert start.status_code == 200 and 'lang="es"' in start.text
    assert [a.get("invitation") for a in sent_audits(app)] == ["sent", "sent"]
    link = rows(app, InviteToken)[0]
    assert link.opened_at is not None  # the front desk's "opened"
    token = link_in(body).rsplit("/", 1)[1]
    assert link.sealed and token not in link.sealed  # kept, encrypted, for the reminders still to come


def test_reminders_go_on_schedule_and_stop_when_the_intake_is_sent(
        app: Flask, clock: ManualClock, inbox: tuple[Inbox, int]) -> None:  # noqa: F811
    handler, _port = inbox
    invite(app, "--email", "zeb@example.org")
    messages = sorted(rows(app, PatientMessage), key=lambda m: m.due_at)
    assert [(m.purpose, m.due_at) for m in messages] == [
        ("invitation", START), ("reminder", APPOINTMENT - timedelta(hours=48)),
        ("reminder", APPOINTMENT - timedelta(hours=4))]
    assert rows(app, InviteToken)[0].sealed is not None  # kept for the reminders
    clock.advance((APPOINTMENT - timedelta(hours=48) - START).total_seconds() - 60)
    outbox.dispatch(app)
    assert len(handler.messages) == 1  # a minute early: only the invitation
    clock.advance(60)
    outbox.dispatch(app)
    assert [m["Subject"] for m in handler.messages] == [
        "Your questionnaire before your appointment", "Reminder: your questionnaire before your appointment"]
    assert link_in(handler.messages[1].get_payload()) == link_in(handler.messages[0].get_payload())
    submit(app, link_in(handler.messages[1].get_payload()))
    clock.advance(timedelta(days=2).total_seconds())
    outbox.dispatch(app)
    assert len(handler.messages) == 2  # sent back: no more reminders
    states = sorted((m.purpose, m.state, m.reason) for m in rows(app, PatientMessage))
    assert states == [("invitation", "sent", None), ("reminder", "cancelled", "intake sent"),
                      ("reminder", "sent", None)]
    assert rows(app, InviteToken)[0].sealed is None
    assert [a.get("reminder") for a in sent_audits(app) if "reminder" in a] == ["sent"]


def test_a_new_link_cancels_the_reminders_of_the_old_one(app: Flask, clock: ManualClock,
                                                          inbox: tuple[Inbox, int]) -> None:  # noqa: F811
    handler, _port = inbox
    invite(app, "--email", "zeb@example.org")
    intake_id = rows(app, Intake)[0].id
    assert app.test_cli_runner().invoke(args=["intake", "invite", "--intake", intake_id]).exit_code == 0
    clock.advance(timedelta(days=4).total_seconds())
    outbox.dispatch(app)
    assert len(handler.messages) == 1
    assert {m.reason for m in rows(app, PatientMessage) if m.purpose == "reminder"} == {"link replaced"}


def test_nothing_is_sent_in_quiet_hours_the_invitation_waits_for_morning(
        make_app: AppFactory, inbox: tuple[Inbox, int]) -> None:  # noqa: F811
    handler, port = inbox
    clock = ManualClock(START.replace(hour=23))
    app = make_app(clock=clock, INTAKE_SMTP_PORT=port)
    invite(app, "--email", "zeb@example.org", appointment=START.replace(hour=23) + timedelta(days=1, hours=10))
    assert handler.messages == []
    due = sorted(m.due_at for m in rows(app, PatientMessage))
    morning = START.replace(hour=8) + timedelta(days=1)
    # The invitation at 08:00 (not at 23:00); the 48 h reminder would come before it and is dropped;
    # the 4 h one (05:00 on the day, quiet) moves to the end of quiet hours, 08:00.
    assert due == [morning, morning + timedelta(days=1)]
    clock.advance((morning - clock()).total_seconds() - 60)
    outbox.dispatch(app)
    assert handler.messages == []
    clock.advance(60)
    outbox.dispatch(app)
    assert len(handler.messages) == 1


def test_an_sms_outage_is_retried_and_a_refusal_is_a_dead_letter_that_can_be_re_driven(
        app: Flask, clock: ManualClock, sms: SmsProvider) -> None:
    sms.fail_next(503)
    invite(app, "--phone", "+15551234567", appointment=START + timedelta(hours=3))
    assert sms.received == []
    row = min((r for r in rows(app, OutboxRecord) if r.kind == "patient_message"), key=lambda r: r.id)
    assert (row.state, row.last_error) == ("pending", "SMS provider answered 503")
    clock.advance(60)
    outbox.dispatch(app)
    assert len(sms.received) == 1
    sms.fail_next(400)
    invite(app, "--phone", "+15557654321", appointment=START + timedelta(hours=3))
    dead = [r for r in rows(app, OutboxRecord) if r.state == "dead"]
    assert len(dead) == 1 and "refused" in (dead[0].last_error or "")
    assert [m.state for m in rows(app, PatientMessage)] == ["sent", "failed"]
    assert len(sms.received) == 1
    assert outbox.redrive(app, [dead[0].id]) == 1  # the provider takes it now: re-driven, it is sent
    assert [m.state for m in rows(app, PatientMessage)] == ["sent", "sent"] and len(sms.received) == 2
    assert outbox.redrive(app, None) == 0


def test_asking_for_sms_needs_a_number_and_a_provider(make_app: AppFactory) -> None:
    app = make_app()
    result = app.test_cli_runner().invoke(args=["intake", "invite", "--name", "A", "--birth-date", "1970-01-01",
                                                "--phone", "+15551234567"])
    assert result.exit_code == 1 and "SMS is not set up here" in result.output
    assert rows(app, Intake) == []  # nothing half-made


def test_a_message_that_comes_due_in_quiet_hours_waits_for_their_end(
        make_app: AppFactory, inbox: tuple[Inbox, int]) -> None:  # noqa: F811
    handler, port = inbox
    clock = ManualClock(START.replace(hour=20, minute=50))
    app = make_app(clock=clock, INTAKE_SMTP_PORT=port)
    no_smtp = make_app(clock=clock, INTAKE_SMTP_PORT=1)  # the same database, an SMTP server that is not there
    invite(no_smtp, "--email", "zeb@example.org")  # the first try fails: retried later
    assert handler.messages == []
    clock.advance(20 * 60)  # 21:10: quiet
    outbox.dispatch(app)
    assert handler.messages == []
    row = min((r for r in rows(app, OutboxRecord) if r.kind == "patient_message"), key=lambda r: r.id)  # the invitation
    assert row.last_error == "quiet hours" and row.due_at == START.replace(hour=8) + timedelta(days=1)
    clock.advance((row.due_at - clock()).total_seconds())
    outbox.dispatch(app)
    assert len(handler.messages) == 1

"""Front desk by patient: search, progress of each intake, invite again with sending, contact
details masked and audited in full, and the confirmation before a new link."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from intake.services import services
from intake.storage.models import AuditRecord, Intake, InviteToken, Patient, PatientMessage
from tests.conftest import AppFactory
from tests.support.sms_provider import SmsProvider
from tests.test_notify import Inbox, inbox  # noqa: F401  (fixture)
from tests.web.conftest import csrf, error_summary
from tests.web.flow import fill_page, first_page, signed_in

TOMORROW = date.today() + timedelta(days=1)
DOT = "\u2022"


@pytest.fixture
def sms() -> Iterator[SmsProvider]:
    with SmsProvider() as provider:
        yield provider


@pytest.fixture
def desk_app(make_app: AppFactory, inbox: tuple[Inbox, int], sms: SmsProvider) -> Flask:  # noqa: F811
    return make_app(INTAKE_BASE_URL="https://intake.example.org", INTAKE_SMTP_PORT=inbox[1],
                    INTAKE_QUIET_HOURS="", **sms.settings())


def post_form(desk: FlaskClient, path: str, data: dict[str, object]) -> object:
    page = desk.get(path).text
    return desk.post(path, data={"csrf_token": csrf(page), "appointment_day": TOMORROW.isoformat(),
                                 "appointment_time": "10:15", "questionnaires": ["stress"], **data})


def new_patient(desk: FlaskClient, name: str, **data: object) -> str:
    response = post_form(desk, "/front-desk/new", {"name": name, "birth_date": "1964-02-29", **data})
    assert response.status_code == 302, response.text  # type: ignore[attr-defined]
    return str(response.headers["Location"])  # type: ignore[attr-defined]


def audit_details(app: Flask) -> list[dict[str, object]]:
    with services(app).sessions() as session:
        return [json.loads(r.detail) for r in session.scalars(select(AuditRecord).order_by(AuditRecord.seq))]


def test_a_new_intake_is_sent_by_email_and_sms_in_the_chosen_language(
        desk_app: Flask, inbox: tuple[Inbox, int], sms: SmsProvider) -> None:  # noqa: F811
    desk = signed_in(desk_app, "front-desk")
    location = new_patient(desk, "Rosa Quaxmoor", email="rosa@example.org", phone="+34 612 34 56 78",
                           language="es", send=["email", "sms"])
    page = desk.get(location).text
    assert "being sent to the patient by e-mail and text message, in Spanish" in page
    assert len(inbox[0].messages) == 1 and len(sms.received) == 1
    assert inbox[0].messages[0]["Subject"] == "Su cuestionario antes de su cita"
    link = re.search(r'value="https://intake.example.org(/i/[^"]+)"', page)
    assert link and link.group(1) in inbox[0].messages[0].get_payload()  # the link shown is the link sent
    with services(desk_app).sessions() as session:
        assert session.scalars(select(Intake.language)).one() == "es"


def test_sending_needs_the_address_and_bad_details_are_listed(desk_app: Flask) -> None:
    desk = signed_in(desk_app, "front-desk")
    response = post_form(desk, "/front-desk/new", {"name": "No Mail", "birth_date": "1964-02-29", "send": ["email"]})
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert "give the patient&#39;s e-mail address" in response.text  # type: ignore[attr-defined]
    response = post_form(desk, "/front-desk/new", {"name": "Bad Mail", "birth_date": "1964-02-29",
                                                   "email": "rosa at example", "phone": "612", "send": ["fax"]})
    summary = dict(error_summary(response.text))  # type: ignore[attr-defined]
    assert "must look like name@example.org" in summary["email"] and "must start with +" in summary["phone"]
    assert "not a valid choice" in summary["send"]
    with services(desk_app).sessions() as session:
        assert session.scalars(select(Patient)).all() == []


def test_find_by_name_birth_date_or_record_number_with_masked_contacts(desk_app: Flask) -> None:
    desk = signed_in(desk_app, "front-desk")
    new_patient(desk, "Rosa <i>Quaxmoor</i>", email="rosa@example.org", phone="+15551234567", mrn="MRN-77")
    new_patient(desk, "Otto Brandt")
    for query in ("quaxmoor", "ROSA", "1964-02-29", "MRN-77"):
        page = desk.get("/front-desk/patients", query_string={"q": query}).text
        assert "Rosa &lt;i&gt;Quaxmoor&lt;/i&gt;" in page, query
        assert f"r{DOT * 3}@example.org" in page and f"{DOT * 4} 4567" in page
        assert "rosa@example.org" not in page and "5551234567" not in page
    assert "Otto Brandt" in desk.get("/front-desk/patients?q=1964-02-29").text
    assert "Otto" not in desk.get("/front-desk/patients?q=rosa").text
    assert "No patient matches" in desk.get("/front-desk/patients?q=%25").text  # a wildcard is a character
    too_long = desk.get("/front-desk/patients", query_string={"q": "x" * 101})
    assert too_long.status_code == 400 and "at most 100 characters" in too_long.text
    assert signed_in(desk_app, "clinician").get("/front-desk/patients?q=rosa").status_code == 403


def test_contact_details_in_full_are_audited(desk_app: Flask) -> None:
    desk = signed_in(desk_app, "front-desk")
    new_patient(desk, "Rosa Quaxmoor", email="rosa@example.org")
    with services(desk_app).sessions() as session:
        patient_id = session.scalars(select(Patient.id)).one()
    page = desk.get(f"/front-desk/patients/{patient_id}/contact").text
    assert "rosa@example.org" in page and "recorded in the audit log" in page
    assert {"contact": "shown", "method": "GET", "path": f"/front-desk/patients/{patient_id}/contact"} in [
        {k: v for k, v in d.items() if k in ("contact", "method", "path")} for d in audit_details(desk_app)]
    assert desk.get("/front-desk/patients/nobody/contact").status_code == 404


def test_each_intake_shows_its_progress_with_times(desk_app: Flask) -> None:
    desk = signed_in(desk_app, "front-desk")
    location = new_patient(desk, "Rosa Quaxmoor", email="rosa@example.org", send=["email"])
    link = re.search(r'value="https://intake.example.org(/i/[^"]+)"', desk.get(location).text)
    assert link
    stages = re.compile(r'<span class="stage">([^<]+)</span> (\d{4}-\d\d-\d\d \d\d:\d\d)')
    page = desk.get("/front-desk/patients?q=rosa").text
    assert [s for s, _ in stages.findall(page)] == ["sent", "next reminder"]
    patient = desk_app.test_client()
    patient.get(link.group(1))
    fill_page(patient, desk_app, first_page(patient), {})
    page = desk.get("/front-desk/patients?q=rosa").text
    assert [s for s, _ in stages.findall(page)] == ["sent", "opened", "in progress", "next reminder"]
    day = desk.get(f"/front-desk/?day={TOMORROW.isoformat()}").text  # the day list says the same
    assert [s for s, _ in stages.findall(day)] == ["sent", "opened", "in progress", "next reminder"]
    with services(desk_app).sessions() as session:
        token = session.scalars(select(InviteToken)).one()
        token.expires_at = token.created_at
        session.commit()
    page = desk.get("/front-desk/patients?q=rosa").text
    assert [s for s, _ in stages.findall(page)][-1] == "expired"


def test_invite_again_from_a_result_makes_a_follow_up_for_the_same_patient(
        desk_app: Flask, inbox: tuple[Inbox, int]) -> None:  # noqa: F811
    desk = signed_in(desk_app, "front-desk")
    new_patient(desk, "Rosa Quaxmoor", email="rosa@example.org")
    assert inbox[0].messages == []  # recorded, not sent: nobody ticked a channel
    page = desk.get("/front-desk/patients?q=rosa").text
    again = re.search(r'href="(/front-desk/patients/[^"]+/invite)"', page)
    assert again
    form = desk.get(again.group(1)).text
    assert f"Recorded: r{DOT * 3}@example.org" in form
    assert re.search(r'<input checked id="send-0"[^>]*value="email"', form)  # ticked: an address is recorded
    response = post_form(desk, again.group(1), {"language": "en", "send": ["email"]})
    assert response.status_code == 302  # type: ignore[attr-defined]
    assert len(inbox[0].messages) == 1
    with services(desk_app).sessions() as session:
        assert len(set(session.scalars(select(Intake.patient_id)))) == 1
        assert len(session.scalars(select(Intake)).all()) == 2
    assert desk.get("/front-desk/patients/nobody/invite").status_code == 404


def test_a_new_link_for_an_intake_in_progress_is_confirmed_first_and_can_be_sent(
        desk_app: Flask, inbox: tuple[Inbox, int]) -> None:  # noqa: F811
    desk = signed_in(desk_app, "front-desk")
    location = new_patient(desk, "Rosa Quaxmoor", email="rosa@example.org")
    intake_id = location.split("/")[3]
    old = re.search(r'value="https://intake.example.org(/i/[^"]+)"', desk.get(location).text)
    assert old
    patient = desk_app.test_client()
    patient.get(old.group(1))
    fill_page(patient, desk_app, first_page(patient), {})
    day = desk.get(f"/front-desk/?day={TOMORROW.isoformat()}").text
    assert f'href="/front-desk/intakes/{intake_id}/new-link"' in day  # a link to the question, not a button that acts
    confirm = desk.get(f"/front-desk/intakes/{intake_id}/new-link").text
    assert "The patient has started answering" in confirm and "the answers they saved are kept" in confirm
    assert patient.get("/intake").status_code == 200  # asking changed nothing
    response = desk.post(f"/front-desk/intakes/{intake_id}/link", data={"csrf_token": csrf(confirm), "send": "email"})
    assert response.status_code == 302
    assert patient.get("/intake").status_code == 403  # the old link's session has ended
    assert len(inbox[0].messages) == 1
    new = inbox[0].messages[0].get_payload()
    assert old.group(1) not in new and "/i/" in new
    with services(desk_app).sessions() as session:
        reasons = {m.reason for m in session.scalars(select(PatientMessage))}
    assert None in reasons  # the new link's invitation and reminders
    assert desk.get("/front-desk/intakes/nothing/new-link").status_code == 404


def test_sms_is_offered_only_where_a_provider_is_set_up(make_app: AppFactory, desk_app: Flask) -> None:
    assert 'value="sms"' in signed_in(desk_app, "front-desk").get("/front-desk/new").text
    plain = signed_in(make_app(), "front-desk")
    form = plain.get("/front-desk/new").text
    assert 'value="sms"' not in form and 'value="email"' in form and 'id="phone"' in form

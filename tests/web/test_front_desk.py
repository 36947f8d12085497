"""Front desk: a new intake for an appointment, its link shown once, a new link revoking the old,
and the day list with each intake's status (not started, in progress, completed, flagged)."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from intake.core.fhir_time import utcnow
from intake.services import services
from intake.storage.db import session_scope
from intake.storage.models import AuditRecord, Intake, Patient, ShownLink
from tests.conftest import AppFactory
from tests.web.conftest import csrf, error_summary
from tests.web.flow import EMERGENCY, fill_all, fill_page, first_page, signed_in

TOMORROW = date.today() + timedelta(days=1)


@pytest.fixture
def desk_app(make_app: AppFactory) -> Flask:
    return make_app(INTAKE_BASE_URL="https://intake.example.org")


def new_intake(
    desk: FlaskClient,
    name: str,
    *,
    born: str = "1971-03-04",
    mrn: str = "",
    ehr_patient: str = "",
    at: str = "09:30",
    questionnaires: tuple[str, ...] = ("digestive", "neuropathy", "autoimmune", "diet", "stress"),
) -> tuple[int, str]:
    page = desk.get("/front-desk/new").text
    response = desk.post("/front-desk/new", data={
        "name": name, "birth_date": born, "mrn": mrn, "ehr_patient": ehr_patient,
        "appointment_day": TOMORROW.isoformat(), "appointment_time": at, "questionnaires": list(questionnaires),
        "csrf_token": csrf(page)})
    return response.status_code, response.headers.get("Location", "") or response.text


def shown_link(desk: FlaskClient, location: str) -> str:
    page = desk.get(location).text
    match = re.search(r'id="patient-link" type="text" readonly value="https://intake.example.org(/i/[^"]+)"', page)
    assert match, page
    return match.group(1)


def test_a_new_intake_gives_a_link_shown_once_that_opens_the_intake(desk_app: Flask) -> None:
    desk = signed_in(desk_app, "front-desk")
    status, location = new_intake(desk, "Maria <b>Lopez</b>", questionnaires=("digestive", "stress"))
    assert status == 302 and location.startswith("/front-desk/intakes/")
    link = shown_link(desk, location)
    again = desk.get(location).text
    assert "/i/" not in again and "cannot be shown again" in again  # shown once
    patient = desk_app.test_client()
    assert patient.get(link).status_code == 302
    assert "Questions before your appointment" in patient.get("/intake").text
    with services(desk_app).sessions() as session:
        intake = session.scalars(select(Intake)).one()
        assert len(intake.questionnaires) == 2 and intake.appointment_at is not None
    day = desk.get(f"/front-desk/?day={TOMORROW.isoformat()}").text
    assert "Maria &lt;b&gt;Lopez&lt;/b&gt;" in day and "<b>Lopez" not in day  # escaped
    assert "09:30" in day and "not started" in day


def test_a_new_link_revokes_the_old_one(desk_app: Flask) -> None:
    desk = signed_in(desk_app, "front-desk")
    _status, location = new_intake(desk, "Sam Lee")
    old = shown_link(desk, location)
    intake_id = location.split("/")[3]
    page = desk.get(location).text
    response = desk.post(f"/front-desk/intakes/{intake_id}/link", data={"csrf_token": csrf(page)})
    assert response.status_code == 302
    new = shown_link(desk, response.headers["Location"])
    assert new != old
    assert desk_app.test_client().get(old).status_code == 404
    assert desk_app.test_client().get(new).status_code == 302
    # Without the form's CSRF token nothing changes.
    assert desk.post(f"/front-desk/intakes/{intake_id}/link").status_code == 400
    assert desk_app.test_client().get(new).status_code == 302
    token = csrf(desk.get(location).text)
    assert desk.post("/front-desk/intakes/no-such-intake/link", data={"csrf_token": token}).status_code == 404


def test_form_errors_are_listed_and_nothing_is_created(desk_app: Flask) -> None:
    desk = signed_in(desk_app, "front-desk")
    page = desk.get("/front-desk/new").text
    response = desk.post("/front-desk/new", data={"name": "", "birth_date": "31/02/1970", "csrf_token": csrf(page),
                                                  "questionnaires": ["nope"]})
    assert response.status_code == 400
    fields = {field for field, _ in error_summary(response.text)}
    assert {"name", "birth_date", "appointment_day", "appointment_time", "questionnaires"} <= fields
    assert "<title>Error: New intake" in response.text
    status, body = new_intake(desk, "Future Person", born=(date.today() + timedelta(days=2)).isoformat())
    assert status == 400 and "birth date is in the future" in body
    with services(desk_app).sessions() as session:
        assert session.scalars(select(Intake)).first() is None


def test_a_known_record_number_joins_the_same_patient(desk_app: Flask) -> None:
    desk = signed_in(desk_app, "front-desk")
    assert new_intake(desk, "Ana Ruiz", mrn="MRN-7")[0] == 302
    assert new_intake(desk, "ana  ruiz", mrn="MRN-7", at="11:00")[0] == 302
    status, body = new_intake(desk, "Someone Else", mrn="MRN-7")
    assert status == 409 and "another name or birth date" in body  # a conflict, not bad input
    with services(desk_app).sessions() as session:
        assert len(list(session.scalars(select(Patient)))) == 1
        assert len(list(session.scalars(select(Intake)))) == 2


def test_an_intake_for_the_ehrs_patient_by_reference_or_record_number(desk_app: Flask) -> None:
    desk = signed_in(desk_app, "front-desk")
    assert new_intake(desk, "Eva Gil", ehr_patient=" Patient/ehr-5 ")[0] == 302
    assert new_intake(desk, "Eva Gil", ehr_patient="Patient/ehr-5", at="10:00")[0] == 302  # the same patient
    assert new_intake(desk, "Leo Paz", mrn="urn:oid:1.2.3|LP+1&2")[0] == 302
    with services(desk_app).sessions() as session:
        found = [(p.name, p.ehr_reference, p.mrn_system, p.mrn)
                 for p in session.scalars(select(Patient).order_by(Patient.created_at))]
    assert found == [("Eva Gil", "Patient/ehr-5", None, None), ("Leo Paz", None, "urn:oid:1.2.3", "LP+1&2")]


@pytest.mark.parametrize(("mrn", "ehr_patient", "fields"), [
    ("", "123", {"ehr_patient"}),
    ("", "https://ehr.example/Patient/1", {"ehr_patient"}),
    ("urn:oid:1|", "", {"mrn"}),
    ("|42", "Patient/1 2", {"mrn", "ehr_patient"}),
])
def test_a_bad_ehr_patient_or_record_number_is_listed_in_the_error_summary(
        desk_app: Flask, mrn: str, ehr_patient: str, fields: set[str]) -> None:
    desk = signed_in(desk_app, "front-desk")
    status, body = new_intake(desk, "Bad Input", mrn=mrn, ehr_patient=ehr_patient)
    assert status == 400 and "There is a problem" in body
    assert {field for field, _ in error_summary(body)} == fields
    if "ehr_patient" in fields:
        assert "like Patient/123" in body
    with services(desk_app).sessions() as session:
        assert session.scalars(select(Intake)).first() is None


def test_the_day_list_shows_each_status_for_front_desk_and_clinician(desk_app: Flask, app: Flask) -> None:
    desk = signed_in(desk_app, "front-desk")
    links = {}
    for name, at in [
        ("Not Started", "08:00"),
        ("In Progress", "09:00"),
        ("Done Fine", "10:00"),
        ("Done Flagged", "11:00"),
    ]:
        _status, location = new_intake(desk, name, at=at, questionnaires=("neuropathy",))
        links[name] = shown_link(desk, location)
    for name, overrides, submit in [
        ("In Progress", {}, False),
        ("Done Fine", {}, True),
        ("Done Flagged", EMERGENCY, True),
    ]:
        patient = desk_app.test_client()
        patient.get(links[name])
        if name == "Done Flagged":
            patient.get("/language/es?next=/intake")  # staff see which language to call in
        first = first_page(patient)
        if submit:
            fill_all(patient, desk_app, first, overrides)
            review = patient.get("/intake/review").text
            assert patient.post("/intake/submit", data={"csrf_token": csrf(review)}).status_code == 302
        else:
            fill_page(patient, desk_app, first, {})
    day = desk.get(f"/front-desk/?day={TOMORROW.isoformat()}").text
    rows = re.findall(r"<tr>\s*<td>(\d\d:\d\d)</td>\s*<td>([^<]+)<.*?<td class=\"status\">([^<]+)", day, re.DOTALL)
    assert [(t, n.strip(), s.strip()) for t, n, s in rows] == [
        ("08:00", "Not Started", "not started"), ("09:00", "In Progress", "in progress"),
        ("10:00", "Done Fine", "completed"), ("11:00", "Done Flagged", "flagged")]
    assert "New link" in day and "Summary" not in day
    languages = re.findall(r'<td class="status">.*?</td>\s*<td>([^<]*)</td>', day, re.DOTALL)
    assert languages == ["English", "English", "English", "Spanish"]  # chosen at invite (English unless asked)
    clinician_view = signed_in(desk_app, "clinician").get(f"/front-desk/?day={TOMORROW.isoformat()}").text
    assert clinician_view.count(">Summary<") == 2 and "New link" not in clinician_view
    assert "No intakes on this day." in desk.get(f"/front-desk/?day={(TOMORROW + timedelta(days=1)).isoformat()}").text


def test_the_link_page_offers_a_copy_button_with_no_inline_script(desk_app: Flask) -> None:
    desk = signed_in(desk_app, "front-desk")
    _status, location = new_intake(desk, "Copy Person")
    response = desk.get(location)
    page = response.text
    # Progressive enhancement: rendered hidden (the read-only box works without JavaScript),
    # shown by static/staff.js where the Clipboard API is there; "Copied" goes to a live region.
    button = re.search(r"<button[^>]*>Copy link</button>", page)
    assert button and re.search(r"\shidden[\s>]", button.group(0)) and 'type="button"' in button.group(0)
    assert 'data-copy="patient-link"' in button.group(0) and 'data-status="copy-status"' in button.group(0)
    assert re.search(r'<p class="copy-status" id="copy-status" role="status"></p>', page)
    assert re.search(r'id="patient-link" type="text" readonly value="https://', page)
    # CSP (script-src 'self', style-src 'self'): scripts are files, nothing inline.
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page, re.DOTALL)
    assert scripts == [(' src="/static/staff.js" defer', "")]
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=|javascript:", page, re.IGNORECASE)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    script = desk.get("/static/staff.js")
    assert script.status_code == 200 and "javascript" in script.content_type
    assert "navigator.clipboard.writeText" in script.text and '"Copied"' in script.text
    script.close()
    assert "Copy link" not in desk.get(location).text  # the link is shown once, and its button with it


# --- finding 9: the new link never rides in the session cookie, and is shown once -------------


def _cookie(app: Flask, client: FlaskClient) -> str:
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    assert cookie is not None
    return cookie.value


def _session_text(app: Flask, cookie: str) -> str:
    """The session cookie as anyone holding it can read it (signed, not encrypted)."""
    return json.dumps(app.session_interface.get_signing_serializer(app).loads(cookie))  # type: ignore[attr-defined]


def _held(app: Flask) -> list[str]:
    with services(app).sessions() as session:
        return list(session.scalars(select(ShownLink.sealed)))


@pytest.mark.parametrize("made_by", ["new intake", "new link"])
def test_finding_9_the_link_stays_server_side_and_is_shown_once(desk_app: Flask, made_by: str) -> None:
    desk = signed_in(desk_app, "front-desk")
    status, location = new_intake(desk, "Kim Park")
    assert status == 302
    if made_by == "new link":
        page = desk.get(location).text
        response = desk.post(location, data={"csrf_token": csrf(page)})
        assert response.status_code == 302 and response.headers["Location"] == location
    cookie = _cookie(desk_app, desk)  # what the browser holds between the POST and the page that shows the link
    held = _held(desk_app)
    link = shown_link(desk, location)
    token = link.rsplit("/i/", 1)[1]
    assert token not in _session_text(desk_app, cookie) and "/i/" not in _session_text(desk_app, cookie)
    assert len(held) == 1 and token not in held[0]  # held sealed: the database alone does not hold it either
    assert _held(desk_app) == []  # deleted when shown
    assert "/i/" not in desk.get(location).text  # a reload does not show it
    desk.set_cookie(desk_app.config["SESSION_COOKIE_NAME"], cookie)  # nor does replaying the cookie that pointed at it
    again = desk.get(location).text
    assert "/i/" not in again and "cannot be shown again" in again
    assert desk_app.test_client().get(link).status_code == 302  # the link itself works


def test_finding_9_a_link_not_shown_in_time_is_never_shown(desk_app: Flask) -> None:
    desk = signed_in(desk_app, "front-desk")
    _status, location = new_intake(desk, "Late Viewer")
    with session_scope(services(desk_app).sessions) as session:
        session.execute(update(ShownLink).values(expires_at=utcnow() - timedelta(seconds=1)))
    page = desk.get(location).text
    assert "/i/" not in page and "cannot be shown again" in page
    assert _held(desk_app) == []
    _status, location = new_intake(desk, "Next Patient")  # expired rows nobody asked for are dropped too
    with session_scope(services(desk_app).sessions) as session:
        session.execute(update(ShownLink).values(expires_at=utcnow() - timedelta(seconds=1)))
    new_intake(desk, "Third Patient")
    assert len(_held(desk_app)) == 1


# --- finding 8: the page that shows a link names the patient, so it is audited ----------------


def test_finding_8_the_link_page_is_audited(desk_app: Flask) -> None:
    desk = signed_in(desk_app, "front-desk")
    _status, location = new_intake(desk, "Audited Person")
    intake_id = location.split("/")[3]
    shown_link(desk, location)
    desk.get(location)
    with services(desk_app).sessions() as session:
        intake = session.get(Intake, intake_id)
        assert intake is not None
        rows = session.scalars(select(AuditRecord).where(AuditRecord.action == "read").order_by(AuditRecord.seq)).all()
    reads = [r for r in rows if f"Patient/{intake.patient_id}" in json.loads(r.entities)]
    assert [(r.actor_kind, r.actor, r.outcome) for r in reads] == [("user", "frontdesk", "success")] * 2
    assert all(f"Intake/{intake_id}" in json.loads(r.entities) for r in reads)
    assert [json.loads(r.detail)["link"] for r in reads] == ["shown", "not shown"]


# --- finding 7: days the list cannot show are a 400 with a message, not a 500 ------------------


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "1899-12-31", "\uff12\uff10\uff12\uff16-01-01",
                                 "2026-01-01\x00", "\x00", "2026-02-30", "not-a-day", "2026-1-1", "20260101",
                                 "2026-01-01T00:00", "\u0662\u0660\u0662\u0666-01-01", "9" * 5000])
def test_finding_7_a_day_the_list_cannot_show_is_a_400_with_a_message(desk_app: Flask, day: str) -> None:
    desk = signed_in(desk_app, "front-desk")
    response = desk.get("/front-desk/", query_string={"day": day})
    assert response.status_code == 400
    if "\x00" in day and "control characters" in response.text:
        return  # refused before the view, with its own message (intake.web.input_guard)
    assert "There is a problem" in response.text and "YYYY-MM-DD" in response.text
    assert "Showing today instead" in response.text and "<title>Error: Intakes on" in response.text


def test_finding_7_the_first_and_last_days_the_list_can_show(desk_app: Flask) -> None:
    desk = signed_in(desk_app, "front-desk")
    for day in ("1900-01-01", "9998-12-31"):
        response = desk.get(f"/front-desk/?day={day}")
        assert response.status_code == 200 and "No intakes on this day." in response.text
        assert "There is a problem" not in response.text

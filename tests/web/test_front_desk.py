"""Front desk: a new intake for an appointment, its link shown once, a new link revoking the old,
and the day list with each intake's status (not started, in progress, completed, flagged)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from intake import close_app, create_app
from intake.storage.models import Intake, Patient
from tests.web.conftest import csrf, error_summary
from tests.web.flow import EMERGENCY, fill_all, fill_page, first_page, signed_in

TOMORROW = date.today() + timedelta(days=1)


@pytest.fixture
def desk_app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app({"DATABASE_URL": database_url, "INSTANCE_PATH": str(tmp_path / "i"), "SECRET_KEY": "t",
                      "TESTING": True, "INTAKE_JOBS": "eager", "INTAKE_BASE_URL": "https://intake.example.org"})
    yield app
    close_app(app)


def new_intake(desk: FlaskClient, name: str, *, born: str = "1971-03-04", mrn: str = "", at: str = "09:30",
               questionnaires: tuple[str, ...] = ("digestive", "neuropathy", "autoimmune", "diet", "stress")) -> tuple[int, str]:
    page = desk.get("/front-desk/new").text
    response = desk.post("/front-desk/new", data={
        "name": name, "birth_date": born, "mrn": mrn, "appointment_day": TOMORROW.isoformat(),
        "appointment_time": at, "questionnaires": list(questionnaires), "csrf_token": csrf(page)})
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
    with desk_app.extensions["intake.sessions"]() as session:
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
    with desk_app.extensions["intake.sessions"]() as session:
        assert session.scalars(select(Intake)).first() is None


def test_a_known_record_number_joins_the_same_patient(desk_app: Flask) -> None:
    desk = signed_in(desk_app, "front-desk")
    assert new_intake(desk, "Ana Ruiz", mrn="MRN-7")[0] == 302
    assert new_intake(desk, "ana  ruiz", mrn="MRN-7", at="11:00")[0] == 302
    status, body = new_intake(desk, "Someone Else", mrn="MRN-7")
    assert status == 400 and "another name or birth date" in body
    with desk_app.extensions["intake.sessions"]() as session:
        assert len(list(session.scalars(select(Patient)))) == 1
        assert len(list(session.scalars(select(Intake)))) == 2


def test_the_day_list_shows_each_status_for_front_desk_and_clinician(desk_app: Flask, app: Flask) -> None:
    desk = signed_in(desk_app, "front-desk")
    links = {}
    for name, at in [("Not Started", "08:00"), ("In Progress", "09:00"), ("Done Fine", "10:00"), ("Done Flagged", "11:00")]:
        _status, location = new_intake(desk, name, at=at, questionnaires=("neuropathy",))
        links[name] = shown_link(desk, location)
    for name, overrides, submit in [("In Progress", {}, False), ("Done Fine", {}, True), ("Done Flagged", EMERGENCY, True)]:
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
    assert languages == ["", "English", "English", "Spanish"]
    clinician_view = signed_in(desk_app, "clinician").get(f"/front-desk/?day={TOMORROW.isoformat()}").text
    assert clinician_view.count(">Summary<") == 2 and "New link" not in clinician_view
    assert "No intakes on this day." in desk.get(f"/front-desk/?day={(TOMORROW + timedelta(days=1)).isoformat()}").text
    assert desk.get("/front-desk/?day=not-a-day").status_code == 200  # falls back to today


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

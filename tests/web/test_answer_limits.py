"""Impossible answers are refused on the page, beside the question, in the patient's language:
date limits given by `today()` and `%birthDate`, and `questionnaire-constraint` rules; strict
validation through `$validate` refuses them too. A fixture Questionnaire, not forms/."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict

from intake.core.items import build_form
from intake.core.validation import validate
from intake.web import forms as webforms
from tests.conftest import AppFactory
from tests.web.conftest import csrf, error_summary, invite_link
from tests.web.test_fhir_api import Api, new_token

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "answer-limits.json"
QUESTIONNAIRE = json.loads(FIXTURE.read_text(encoding="utf-8"))
DATES, BOWEL = "/intake/limits/dates", "/intake/limits/bowel"
FUTURE = date.today() + timedelta(days=3)  # after today wherever the patient is
BORN = "1970-05-01"


@pytest.fixture
def limits_app(make_app: AppFactory) -> Flask:
    return make_app(forms={"limits": QUESTIONNAIRE})


@pytest.fixture
def patient(limits_app: Flask) -> FlaskClient:
    client = limits_app.test_client()
    client.get(invite_link(limits_app, birth_date=BORN))
    return client


def post(client: FlaskClient, page: str, **fields: str) -> Any:
    token = csrf(client.get(page).text)
    return client.post(page, data={"csrf_token": token, **{f"q-{k}": v for k, v in fields.items()}})


def message_beside(html: str, field: str) -> str | None:
    """The inline message of a question (the `<p class="error-message">` the template puts there)."""
    match = re.search(rf'<p class="error-message" id="q-{field}-error">.*?</span>\s*([^<]+)</p>', html, re.DOTALL)
    return match.group(1).strip() if match else None


# --- date limits through the page ------------------------------------------------------------------


def test_a_date_in_the_future_is_refused_beside_the_question(patient: FlaskClient) -> None:
    response = post(patient, DATES, onset=FUTURE.isoformat())
    assert response.status_code == 400
    assert message_beside(response.text, "onset") == "The date must be today or in the past"
    assert error_summary(response.text) == [
        ("q-onset", "The date must be today or in the past – When did the symptoms start?")
    ]


@pytest.mark.parametrize("value", [str(FUTURE.year + 1), f"{FUTURE.year + 1}-01"])
def test_a_partial_date_in_a_later_year_is_refused(patient: FlaskClient, value: str) -> None:
    response = post(patient, DATES, onset=value)
    assert response.status_code == 400
    assert message_beside(response.text, "onset") == "The date must be today or in the past"


def test_this_year_and_today_are_accepted(patient: FlaskClient) -> None:
    assert post(patient, DATES, onset=str(date.today().year)).status_code == 302
    assert post(patient, DATES, onset=date.today().isoformat()).status_code == 302


def test_a_date_time_in_the_future_is_refused(patient: FlaskClient) -> None:
    response = post(patient, DATES, seen=f"{FUTURE.isoformat()}T10:30")
    assert response.status_code == 400
    assert message_beside(response.text, "seen") == "The date must be today or in the past"


def test_an_expression_limit_wins_over_the_fixed_value_and_fixed_limits_keep_working(patient: FlaskClient) -> None:
    # maxValue 2020-06-30 carries `today()`: the expression gives the limit.
    assert post(patient, DATES, diagnosed="2021-03").status_code == 302
    response = post(patient, DATES, diagnosed="1899-12")
    assert response.status_code == 400
    assert message_beside(response.text, "diagnosed") == "Enter a date on or after 1900"


def test_a_date_before_the_patients_birth_is_refused(patient: FlaskClient) -> None:
    response = post(patient, DATES, onset="1970-04")
    assert response.status_code == 400
    assert message_beside(response.text, "onset") == "The date cannot be before your date of birth"


def test_the_year_of_birth_is_accepted(patient: FlaskClient) -> None:
    assert post(patient, DATES, onset="1970").status_code == 302


def test_the_page_speaks_spanish(patient: FlaskClient) -> None:
    patient.get("/language/es", query_string={"next": DATES})
    response = post(patient, DATES, onset=FUTURE.isoformat())
    assert response.status_code == 400
    assert message_beside(response.text, "onset") == "La fecha debe ser hoy o una fecha pasada"


# --- the page form API (what patient.py passes) -------------------------------------------------------


def page_form(limits_app: Flask, page_key: str, data: dict[str, str], **kwargs: Any) -> webforms.PageForm:
    qform = build_form(QUESTIONNAIRE, "fixture")
    page = next(p for p in qform.pages if p.key == page_key)
    form = webforms.page_form_class(qform, page)(MultiDict(data), **kwargs)
    form.enabled = {i.link_id for i in qform.walk()}
    return form


@pytest.mark.parametrize(
    ("birth_date", "value", "message"),
    [
        (date(1970, 5, 1), "1969", "The date cannot be before your date of birth"),
        (date(1970, 5, 1), "1970", None),
        (date(1970, 5, 1), "1970-04", "The date cannot be before your date of birth"),
        (date(1970, 5, 1), "1970-05", None),
        ("1970-05-01", "1970-04-30", "The date cannot be before your date of birth"),
        ("1970-05-01", "1970-05-01", None),
        (None, "1800-01-01", None),  # unknown birth date: no lower limit
    ],
)
def test_birth_date_limit_at_the_answers_precision(
    limits_app: Flask, birth_date: Any, value: str, message: str | None
) -> None:
    with limits_app.test_request_context():
        form = page_form(limits_app, "dates", {"q-onset": value}, birth_date=birth_date, today=date(2024, 6, 1))
        assert form.validate() is (message is None)
        assert form["q-onset"].errors == ([message] if message else [])


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2024", True),
        ("2025", False),
        ("2024-06", True),
        ("2024-07", False),
        ("2024-06-01", True),
        ("2024-06-02", False),
    ],
)
def test_today_limit_at_the_answers_precision(limits_app: Flask, value: str, ok: bool) -> None:
    with limits_app.test_request_context():
        form = page_form(limits_app, "dates", {"q-onset": value}, today=date(2024, 6, 1))
        assert form.validate() is ok


def test_birth_date_may_also_be_set_before_validate(limits_app: Flask) -> None:
    with limits_app.test_request_context():
        form = page_form(limits_app, "dates", {"q-onset": "1960"})
        form.birth_date = date(1970, 5, 1)
        assert not form.validate()


def test_today_is_read_when_validating_not_when_the_class_is_built(
    limits_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    with limits_app.test_request_context():
        form = page_form(limits_app, "dates", {"q-onset": "2031-01-01"})
        monkeypatch.setattr(webforms, "current_date", lambda: date(2030, 12, 31))
        assert not form.validate()
        monkeypatch.setattr(webforms, "current_date", lambda: date(2031, 1, 1))
        assert form.validate()


# --- questionnaire-constraint through the page ----------------------------------------------------------


def test_impossible_percentages_are_refused_beside_the_named_question(patient: FlaskClient) -> None:
    response = post(patient, BOWEL, hard="60", loose="50")
    assert response.status_code == 400
    assert message_beside(response.text, "loose") == "Hard and loose together cannot be more than 100%"
    assert message_beside(response.text, "hard") is None
    assert error_summary(response.text) == [
        ("q-loose", "Hard and loose together cannot be more than 100% – Percent of stools that were loose")]


@pytest.mark.parametrize(("hard", "loose"), [("60", "40"), ("100", ""), ("", "100"), ("", "")])
def test_possible_percentages_are_saved(patient: FlaskClient, hard: str, loose: str) -> None:
    # (100 % hard breaks only a `warning` constraint, which does not stop the page.)
    assert post(patient, BOWEL, hard=hard, loose=loose).status_code == 302


def test_a_constraint_without_location_shows_at_its_groups_first_question(patient: FlaskClient) -> None:
    response = post(patient, BOWEL, days="3", **{"bad-days": "5"})
    assert response.status_code == 400
    assert message_beside(response.text, "days") == "Bad days cannot be more than the days you counted"
    assert error_summary(response.text)[0][0] == "q-days"


def test_a_questionnaire_level_constraint_located_on_the_page(patient: FlaskClient) -> None:
    response = post(patient, DATES, onset="2020-06", seen="2020-05-01T09:00")
    assert response.status_code == 400
    assert message_beside(response.text, "seen") == "The visit cannot be before the symptoms started"
    assert post(patient, DATES, onset="2020-06", seen="2020-07-01T09:00").status_code == 302


def test_the_constraint_message_is_in_spanish(patient: FlaskClient) -> None:
    patient.get("/language/es", query_string={"next": BOWEL})
    response = post(patient, BOWEL, hard="70", loose="31")
    assert response.status_code == 400
    assert message_beside(response.text, "loose") == "Duras y blandas juntas no pueden sumar más del 100 %"


def test_a_field_with_its_own_error_keeps_it(patient: FlaskClient) -> None:
    response = post(patient, BOWEL, hard="60", loose="101")
    assert response.status_code == 400
    assert message_beside(response.text, "loose") == "Enter a number of 100 or less"


# --- strict validation through $validate ----------------------------------------------------------------


def qr(*groups: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "https://intake.example.org/fhir/Questionnaire/limits|1.0.0",
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "authored": "2024-05-01T10:00:00Z",
        "item": list(groups),
    }


def group(link_id: str, text: str, **answers: dict[str, Any]) -> dict[str, Any]:
    texts = {i["linkId"]: i["text"] for g in QUESTIONNAIRE["item"] for i in g["item"]}
    return {"linkId": link_id, "text": text,
            "item": [{"linkId": k, "text": texts[k], "answer": [v]} for k, v in answers.items()]}


@pytest.fixture
def api(limits_app: Flask) -> Any:

    return Api(limits_app.test_client(), new_token(limits_app))


def outcome(api: Any, resource: dict[str, Any]) -> list[dict[str, Any]]:
    response = api.post("/fhir/QuestionnaireResponse/$validate", resource)
    assert response.status_code == 200, response.text
    return json.loads(response.data)["issue"]


def test_validate_refuses_a_future_date_and_impossible_percentages(api: Any) -> None:
    issues = outcome(api, qr(group("dates", "Dates", onset={"valueDate": FUTURE.isoformat()}),
                             group("bowel", "Bowel habits", hard={"valueInteger": 60}, loose={"valueInteger": 50})))
    errors = [(i["code"], i["expression"][0], i["diagnostics"]) for i in issues if i["severity"] == "error"]
    assert [(code, expression) for code, expression, _ in errors] == [
        ("value", "QuestionnaireResponse.repeat(item).where(linkId='onset')"),
        ("invariant", "QuestionnaireResponse.repeat(item).where(linkId='loose')"),
    ]
    assert "is in the future" in errors[0][2]
    assert "Hard and loose together cannot be more than 100% (constraint 'bowel-percent-total')" in errors[1][2]


def test_validate_accepts_possible_answers(api: Any) -> None:
    issues = outcome(api, qr(group("dates", "Dates", onset={"valueDate": "1970"}),
                             group("bowel", "Bowel habits", hard={"valueInteger": 60}, loose={"valueInteger": 40})))
    assert [i["severity"] for i in issues] == ["information"]


def test_validate_reports_a_warning_constraint_without_refusing(api: Any) -> None:
    issues = outcome(api, qr(group("bowel", "Bowel habits", hard={"valueInteger": 100})))
    assert [(i["severity"], i["code"]) for i in issues] == [("warning", "invariant")]


# --- strict validation at submit, in the patient's words ----------------------------------------------


def test_submit_problems_can_be_worded_for_the_patient(limits_app: Flask) -> None:

    qform = build_form(QUESTIONNAIRE, "fixture")
    found = validate(qform, qr(group("dates", "Dates", onset={"valueDate": "1960"}),
                               group("bowel", "Bowel habits", hard={"valueInteger": 60}, loose={"valueInteger": 50})),
                     birth_date=BORN)
    assert [(i.link_id, i.rule) for i in found] == [
        ("onset", "limit:birthDate"),
        ("loose", "constraint:bowel-percent-total"),
    ]
    with limits_app.test_request_context(headers={"Accept-Language": "es"}):
        assert [webforms.patient_message(qform, i) for i in found] == [
            "La fecha no puede ser anterior a su fecha de nacimiento",
            "Duras y blandas juntas no pueden sumar más del 100 %"]
    with limits_app.test_request_context():
        assert webforms.patient_message(qform, found[1], "en") == "Hard and loose together cannot be more than 100%"
        assert webforms.patient_message(qform, validate(qform, {"resourceType": "x"})[0]) is None

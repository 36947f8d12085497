"""Every supported item type through the real pages: rendered, posted, stored as FHIR."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from intake.core.fhir_models import QuestionnaireResponse
from intake.services import services
from intake.storage.models import Intake, ResponseRecord, ScoringResult
from tests.conftest import AppFactory
from tests.web.conftest import csrf, error_links, error_summary, invite_link

URL = "https://intake.example.org/fhir/Questionnaire/sink"
UCUM = "http://unitsofmeasure.org"
CONTROL = "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl"


def control(code: str) -> dict[str, Any]:
    return {
        "url": CONTROL,
        "valueCodeableConcept": {
            "coding": [{"system": "http://hl7.org/fhir/questionnaire-item-control", "code": code}]
        },
    }


def coding(code: str, display: str) -> dict[str, Any]:
    return {"valueCoding": {"system": "urn:test", "code": code, "display": display}}


SINK = {
    "resourceType": "Questionnaire",
    "id": "sink",
    "url": URL,
    "version": "1",
    "status": "active",
    "title": "Every item type",
    "item": [
        {
            "linkId": "page",
            "type": "group",
            "text": "All the types",
            "item": [
                {"linkId": "note", "type": "display", "text": "Some words before the questions."},
                {"linkId": "yn", "type": "boolean", "text": "Yes or no?", "required": True},
                {
                    "linkId": "count",
                    "type": "integer",
                    "text": "How many?",
                    "extension": [
                        {"url": "http://hl7.org/fhir/StructureDefinition/minValue", "valueInteger": 0},
                        {"url": "http://hl7.org/fhir/StructureDefinition/maxValue", "valueInteger": 10},
                    ],
                },
                {"linkId": "amount", "type": "decimal", "text": "How much?"},
                {"linkId": "day", "type": "date", "text": "Which day?"},
                {"linkId": "moment", "type": "dateTime", "text": "When exactly?"},
                {
                    "linkId": "name",
                    "type": "string",
                    "text": "Your nickname",
                    "maxLength": 12,
                    "extension": [
                        {"url": "http://hl7.org/fhir/StructureDefinition/regex", "valueString": "[A-Za-z ]+"}
                    ],
                },
                {"linkId": "story", "type": "text", "text": "Tell us more"},
                {
                    "linkId": "colour",
                    "type": "choice",
                    "text": "Colour?",
                    "extension": [control("drop-down")],
                    "answerOption": [coding("r", "Red"), coding("g", "Green")],
                },
                {
                    "linkId": "pets",
                    "type": "choice",
                    "text": "Pets?",
                    "repeats": True,
                    "extension": [control("check-box")],
                    "answerOption": [coding("cat", "Cat"), coding("dog", "Dog"), coding("fish", "Fish")],
                },
                {
                    "linkId": "food",
                    "type": "open-choice",
                    "text": "Food?",
                    "answerOption": [coding("soup", "Soup"), coding("rice", "Rice")],
                },
                {
                    "linkId": "weight",
                    "type": "quantity",
                    "text": "Weight?",
                    "extension": [
                        {
                            "url": "http://hl7.org/fhir/StructureDefinition/questionnaire-unitOption",
                            "valueCoding": {"system": UCUM, "code": "kg", "display": "kg"},
                        },
                        {
                            "url": "http://hl7.org/fhir/StructureDefinition/questionnaire-unitOption",
                            "valueCoding": {"system": UCUM, "code": "[lb_av]", "display": "lb"},
                        },
                    ],
                },
                {"linkId": "start", "type": "integer", "text": "Start with", "initial": [{"valueInteger": 3}]},
                {"linkId": "fixed", "type": "string", "text": "Read only", "readOnly": True},
            ],
        }
    ],
}


@pytest.fixture
def sink_app(make_app: AppFactory) -> Flask:
    return make_app(forms={"sink": SINK})


@pytest.fixture
def sink(sink_app: Flask) -> FlaskClient:
    client = sink_app.test_client()
    client.get(invite_link(sink_app))
    return client


PAGE = "/intake/sink/page"


def test_every_type_renders_its_control(sink: FlaskClient) -> None:
    html = sink.get(PAGE).text
    assert "Some words before the questions." in html
    assert 'type="radio" id="q-yn-1" name="q-yn" value="true"' in html
    assert 'id="q-count" name="q-count"' in html and 'inputmode="numeric"' in html
    assert 'id="q-amount"' in html and 'inputmode="decimal"' in html
    assert all(f'id="q-day-{part}" name="q-day-{part}" type="text" inputmode="numeric"' in html
               for part in ("day", "month", "year"))  # a full date: Day, Month and Year boxes
    assert 'type="datetime-local"' in html
    assert 'maxlength="12"' in html
    assert '<textarea class="textarea" id="q-story"' in html
    assert '<select class="select" id="q-colour"' in html
    assert html.count('type="checkbox" id="q-pets-') == 3
    assert 'name="q-food-other"' in html
    assert '<select class="select" id="q-weight-unit"' in html
    assert 'name="q-start"' in html and 'value="3"' in html  # `initial` on a first visit
    assert 'name="q-fixed"' not in html  # read-only: shown, never posted


def test_every_type_is_stored_as_the_right_fhir_answer(sink_app: Flask, sink: FlaskClient) -> None:
    token = csrf(sink.get(PAGE).text)
    data = {
        "csrf_token": token, "q-yn": "true", "q-count": "4", "q-amount": "2,5", "q-day": "2024-05-06",
        "q-moment": "2024-05-06T10:30", "q-name": "Bo Bo", "q-story": "A <b>long</b> story", "q-colour": "g",
        "q-pets": ["cat", "fish"], "q-food": "", "q-food-other": "Noodles", "q-weight": "70.5",
        "q-weight-unit": "[lb_av]", "q-start": "3",
    }
    response = sink.post(PAGE, data=data)
    assert response.status_code == 302, error_summary(response.text)
    with services(sink_app).sessions() as session:
        resource = session.scalars(select(ResponseRecord)).one().resource
    QuestionnaireResponse.model_validate(resource)
    answers = {i["linkId"]: i["answer"] for i in resource["item"][0]["item"]}
    assert answers["yn"] == [{"valueBoolean": True}]
    assert answers["count"] == [{"valueInteger": 4}]
    assert answers["amount"] == [{"valueDecimal": 2.5}]
    assert answers["day"] == [{"valueDate": "2024-05-06"}]
    assert answers["moment"] == [{"valueDateTime": "2024-05-06T10:30:00Z"}]
    assert answers["name"] == [{"valueString": "Bo Bo"}]
    assert answers["story"] == [{"valueString": "A <b>long</b> story"}]
    assert answers["colour"] == [{"valueCoding": {"system": "urn:test", "code": "g", "display": "Green"}}]
    assert [a["valueCoding"]["code"] for a in answers["pets"]] == ["cat", "fish"]
    assert answers["food"] == [{"valueString": "Noodles"}]
    assert answers["weight"] == [{"valueQuantity": {"value": 70.5, "system": UCUM, "code": "[lb_av]", "unit": "lb"}}]
    assert answers["start"] == [{"valueInteger": 3}]
    # Shown again with the stored answers, the patient's markup escaped.
    again = sink.get(PAGE).text
    assert "A &lt;b&gt;long&lt;/b&gt; story" in again
    assert 'value="fish" checked' in again and 'value="Noodles"' in again


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("q-count", "11", "Enter a number of 10 or less"),
        ("q-count", "-1", "Enter a number of 0 or more"),
        ("q-name", "Bobby Tables 1", "Answer must be 12 characters or fewer"),
        ("q-name", "R2D2", "Enter your answer in the format shown"),
        ("q-day", "2024-02-30", "Enter a real date"),
        ("q-moment", "tomorrow", "Enter a date and time"),
        ("q-moment", "2024-02-30T10:30", "Enter a date and time"),  # not a real day
        ("q-colour", "blue", "Select one of the options shown"),
        ("q-weight-unit", "stone", "Select one of the options shown"),
    ],
)
def test_constraints_give_messages(sink: FlaskClient, field: str, value: str, message: str) -> None:
    token = csrf(sink.get(PAGE).text)
    data = {"csrf_token": token, "q-yn": "false", "q-weight": "1", field: value}
    response = sink.post(PAGE, data=data)
    assert response.status_code == 400
    assert any(m.startswith(message) for _, m in error_summary(response.text)), error_summary(response.text)


def test_a_broken_scoring_rule_does_not_cost_the_patient_their_submission(make_app: AppFactory) -> None:
    broken = json.loads(json.dumps(SINK))
    broken["extension"] = [{"url": "https://intake.example.org/fhir/StructureDefinition/flag", "extension": [
        {"url": "id", "valueCode": "broken"}, {"url": "tier", "valueCode": "urgent"},
        {"url": "when", "valueExpression": {"language": "text/fhirpath", "expression": "%noSuchVariable = 1"}},
        {"url": "message", "valueString": "never"}]}]
    app = make_app(forms={"sink": broken})
    client = app.test_client()
    client.get(invite_link(app))
    token = csrf(client.get(PAGE).text)
    assert client.post(PAGE, data={"csrf_token": token, "q-yn": "false", "q-weight": "1"}).status_code == 302
    review = client.get("/intake/review")
    assert (
        client.post("/intake/submit", data={"csrf_token": csrf(review.text)})
        .headers["Location"]
        .endswith("/intake/done")
    )

    with services(app).sessions() as session:
        assert session.scalars(select(Intake.status)).one() == "completed"
        assert session.scalars(select(ScoringResult)).all() == []  # unscored, to be re-scored
    assert "Your answers have been sent" in client.get("/intake/done").text


# --- the GOV.UK date pattern, exclusive check boxes, an item's picture --------------------------

TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
ENTRY_FORMAT = "http://hl7.org/fhir/StructureDefinition/entryFormat"
EXCLUSIVE = "http://hl7.org/fhir/StructureDefinition/questionnaire-optionExclusive"
ITEM_MEDIA = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-itemMedia"


def spanish(text: str) -> dict[str, Any]:
    return {"extension": [{"url": TRANSLATION, "extension": [
        {"url": "lang", "valueCode": "es"}, {"url": "content", "valueString": text}]}]}


def relative(code: str, display: str, es: str, *, exclusive: bool = False) -> dict[str, Any]:
    option: dict[str, Any] = {"valueCoding": {"system": "urn:test", "code": code, "display": display,
                                              "_display": spanish(es)}}
    if exclusive:
        option["extension"] = [{"url": EXCLUSIVE, "valueBoolean": True}]
    return option


PATTERNS = {
    "resourceType": "Questionnaire", "id": "patterns", "url": "https://intake.example.org/fhir/Questionnaire/patterns",
    "version": "1", "status": "active", "title": "Patterns", "_title": spanish("Patrones"),
    "item": [{"linkId": "page", "type": "group", "text": "Dates and relatives", "_text": spanish("Fechas"), "item": [
        {"linkId": "onset", "type": "date", "text": "When did it start?", "_text": spanish("¿Cuándo empezó?"),
         "required": True, "extension": [{"url": ENTRY_FORMAT, "valueString": "YYYY-MM",
                                          "_valueString": spanish("AAAA-MM")}]},
        {"linkId": "year", "type": "date", "text": "Which year?", "_text": spanish("¿Qué año?"),
         "extension": [{"url": ENTRY_FORMAT, "valueString": "YYYY", "_valueString": spanish("AAAA")}]},
        {"linkId": "family", "type": "choice", "repeats": True, "required": True,
         "text": "Which relatives have coeliac disease?", "_text": spanish("¿Qué familiares tienen celiaquía?"),
         "answerOption": [relative("mother", "Mother", "Madre"), relative("father", "Father", "Padre"),
                          relative("none", "None of these", "Ninguno de estos", exclusive=True)]},
        {"linkId": "stool", "type": "choice", "text": "Which type is most like your stool?",
         "_text": spanish("¿Qué tipo se parece más?"),
         "extension": [{"url": ITEM_MEDIA, "valueAttachment": {
             "contentType": "image/svg+xml", "url": "/static/img/bristol-stool-chart.svg",
             "title": "The Bristol stool chart: seven types", "_title": spanish("La escala de Bristol: siete tipos")}}],
         "answerOption": [relative("t1", "Type 1", "Tipo 1"), relative("t4", "Type 4", "Tipo 4")]},
    ]}],
}
PATTERNS_PAGE = "/intake/patterns/page"


@pytest.fixture
def patterns(make_app: AppFactory) -> FlaskClient:
    app = make_app(forms={"patterns": PATTERNS})
    client = app.test_client()
    client.get(invite_link(app))
    return client


def _stored(client: FlaskClient) -> dict[str, Any]:
    app = client.application
    with services(app).sessions() as session:
        resource = session.scalars(select(ResponseRecord)).one().resource
    QuestionnaireResponse.model_validate(resource)
    return {i["linkId"]: i["answer"] for i in resource["item"][0]["item"]}


def test_a_month_and_year_are_two_boxes_stored_as_one_fhir_date(patterns: FlaskClient) -> None:
    html = patterns.get(PATTERNS_PAGE).text
    assert '<fieldset class="fieldset" role="group" id="q-onset"' in html
    assert 'id="q-onset-month" name="q-onset-month" type="text" inputmode="numeric" autocomplete="off"' in html
    assert 'id="q-onset-year" name="q-onset-year"' in html and 'name="q-onset-day"' not in html
    assert "For example, 6 2025" in html and "For example, 2019" in html
    assert 'id="q-year-year"' in html and 'id="q-year-month"' not in html  # a year alone: one box
    response = patterns.post(PATTERNS_PAGE, data={
        "csrf_token": csrf(html), "q-onset-month": "6", "q-onset-year": "2019", "q-year-year": "2001",
        "q-family": "mother"})
    assert response.status_code == 302, error_summary(response.text)
    stored = _stored(patterns)
    assert stored["onset"] == [{"valueDate": "2019-06"}] and stored["year"] == [{"valueDate": "2001"}]
    again = patterns.get(PATTERNS_PAGE).text  # shown again in its boxes, without the leading zero
    assert 'id="q-onset-month" name="q-onset-month" type="text" inputmode="numeric" autocomplete="off" value="6"' \
        in again
    assert 'name="q-onset-year" type="text" inputmode="numeric" autocomplete="off" value="2019"' in again


@pytest.mark.parametrize(
    ("month", "year", "message", "box"),
    [
        ("6", "", "Date must include a year", "q-onset-year"),
        ("", "2019", "Date must include a month", "q-onset-month"),
        ("13", "2019", "Month must be between 1 and 12", "q-onset-month"),
        ("six", "2019", "Month must be a number", "q-onset-month"),
        ("6", "19", "Year must include 4 numbers", "q-onset-year"),
        ("", "", "Enter a date", "q-onset-month"),
    ],
)
def test_a_wrong_date_names_its_box_and_keeps_what_was_typed(patterns: FlaskClient, month: str, year: str,
                                                             message: str, box: str) -> None:
    html = patterns.get(PATTERNS_PAGE).text
    response = patterns.post(PATTERNS_PAGE, data={
        "csrf_token": csrf(html), "q-onset-month": month, "q-onset-year": year, "q-family": "mother"})
    assert response.status_code == 400
    links = error_links(response.text)
    assert [(target, text.split(" – ")[0]) for target, text in links] == [(box, message)]
    assert f'id="{box}"' in response.text
    assert f'value="{month}"' in response.text and f'value="{year}"' in response.text
    wrong = re.search(rf'<input class="([^"]*)" id="{box}"', response.text)
    assert wrong and "input--error" in wrong.group(1)


def test_a_year_alone_is_checked_in_its_box(patterns: FlaskClient) -> None:
    html = patterns.get(PATTERNS_PAGE).text
    response = patterns.post(PATTERNS_PAGE, data={
        "csrf_token": csrf(html), "q-onset-month": "2", "q-onset-year": "2023", "q-year-year": "999x",
        "q-family": "mother"})
    assert [t for t, _ in error_links(response.text)] == ["q-year-year"]
    assert "Year must be a number" in response.text


def test_none_of_these_comes_after_an_or_and_stands_alone(patterns: FlaskClient) -> None:
    html = patterns.get(PATTERNS_PAGE).text
    assert 'data-exclusive-group' in html
    block = html[html.index('id="q-family"'):]
    assert block.index('class="checkboxes__divider">or<') < block.index('value="none" data-behaviour="exclusive"')
    assert block.count('data-behaviour="exclusive"') == 1
    assert block.index('value="father"') < block.index('checkboxes__divider')
    response = patterns.post(PATTERNS_PAGE, data={
        "csrf_token": csrf(html), "q-onset-month": "6", "q-onset-year": "2019", "q-family": ["mother", "none"]})
    assert response.status_code == 400
    message = unescape(error_summary(response.text)[0][1])
    assert message.startswith("Select 'None of these' or the other answers, not both")
    assert 'value="mother" checked' in response.text and 'value="none" checked' in response.text
    alone = patterns.post(PATTERNS_PAGE, data={
        "csrf_token": csrf(html), "q-onset-month": "6", "q-onset-year": "2019", "q-family": "none"})
    assert alone.status_code == 302, error_summary(alone.text)
    assert [a["valueCoding"]["code"] for a in _stored(patterns)["family"]] == ["none"]


def test_the_exclusive_message_and_the_date_boxes_in_spanish(patterns: FlaskClient) -> None:
    patterns.get("/language/es")
    html = patterns.get(PATTERNS_PAGE).text
    assert "Por ejemplo, 6 2025" in html and ">Mes<" in html and ">Año<" in html
    assert 'class="checkboxes__divider">o<' in html
    response = patterns.post(PATTERNS_PAGE, data={
        "csrf_token": csrf(html), "q-onset-month": "6", "q-onset-year": "", "q-family": ["father", "none"]})
    messages = [unescape(m).split(" – ")[0] for _, m in error_summary(response.text)]
    assert messages == ["La fecha debe incluir un año",
                        "Seleccione «Ninguno de estos» o las otras respuestas, no ambas"]


def test_an_item_picture_is_shown_with_its_alt_text_in_the_page_language(patterns: FlaskClient) -> None:
    html = patterns.get(PATTERNS_PAGE).text
    assert ('<img class="item-media" src="/static/img/bristol-stool-chart.svg" '
            'alt="The Bristol stool chart: seven types">') in html
    assert html.index('class="item-media"') < html.index('id="q-stool-1"')  # above the answers
    patterns.get("/language/es")
    assert 'alt="La escala de Bristol: siete tipos"' in patterns.get(PATTERNS_PAGE).text
    picture = patterns.get("/static/img/bristol-stool-chart.svg")
    assert picture.status_code == 200 and picture.mimetype == "image/svg+xml"
    picture.close()


def test_a_picture_from_elsewhere_is_never_shown(make_app: AppFactory) -> None:
    elsewhere = json.loads(json.dumps(PATTERNS))
    media = elsewhere["item"][0]["item"][3]["extension"][0]["valueAttachment"]
    media["url"] = "https://example.com/chart.svg"
    with pytest.raises(Exception, match="not a file of this service"):
        make_app(forms={"patterns": elsewhere})

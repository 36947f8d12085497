"""Every supported item type through the real pages: rendered, posted, stored as FHIR."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from intake.core.fhir_models import QuestionnaireResponse
from intake.services import services
from intake.storage.models import Intake, ResponseRecord, ScoringResult
from tests.conftest import AppFactory
from tests.web.conftest import csrf, error_summary, invite_link

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
    assert 'id="q-day" name="q-day"' in html and 'type="date"' in html
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

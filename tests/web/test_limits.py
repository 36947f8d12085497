"""Input limits: request body size, JSON nesting depth, repeated answers, string lengths and
control characters. Each is refused with 413 or 400 and a message that says what to change;
never a 500 (the app re-raises exceptions under TESTING, so a crash fails the test)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from intake.core.items import is_exclusive
from intake.services import services
from tests.web.conftest import csrf, error_summary
from tests.web.flow import page_data
from tests.web.test_fhir_api import Api, api, api_app, new_token  # noqa: F401  (fixtures)
from tests.web.test_item_types import PAGE as SINK_PAGE
from tests.web.test_item_types import sink, sink_app  # noqa: F401  (fixtures)

MIB = 1024 * 1024
FAMILY = "/intake/autoimmune/autoimmune-family"  # has check boxes and one-answer questions
LIMIT_MESSAGE = "over the 1048576 byte (1 MiB) limit"
QR = "https://intake.example.org/fhir/Questionnaire/diet|1.1.0"


def _page(client: FlaskClient, app: Flask, path: str) -> tuple[dict[str, Any], str]:
    shown = client.get(path)
    assert shown.status_code == 200
    return page_data(app, path), csrf(shown.text)


def _messages(html: str) -> dict[str, str]:
    return dict(error_summary(html))


# --- request body size ---------------------------------------------------------------------------


def test_a_patient_page_over_one_mib_is_413_with_the_neutral_page(app: Flask, opened: FlaskClient) -> None:
    data, token = _page(opened, app, FAMILY)
    response = opened.post(FAMILY, data={**data, "csrf_token": token, "padding": "x" * MIB})
    assert response.status_code == 413
    assert "That was too much to send" in response.text and "Shorten your answers" in response.text


def test_fhir_bodies_over_one_mib_are_413_operation_outcomes(api: Api) -> None:  # noqa: F811
    big = json.dumps({"resourceType": "QuestionnaireResponse", "status": "completed", "questionnaire": QR,
                      "text": {"div": "x" * MIB}})
    for path in ("/fhir/QuestionnaireResponse/$validate", "/fhir/Questionnaire/$validate"):
        response = api.post(path, big)
        assert response.status_code == 413, path
        issue = response.json["issue"][0]
        assert issue["code"] == "too-costly" and LIMIT_MESSAGE in issue["diagnostics"], issue
    response = api.client.post("/fhir/Patient/_search", data={"name": "x" * MIB}, headers=api.headers)
    assert response.status_code == 413
    assert response.content_type.startswith("application/fhir+json")
    assert LIMIT_MESSAGE in response.json["issue"][0]["diagnostics"]


def test_a_token_request_over_one_mib_is_413_as_an_oauth_error(api_app: Flask) -> None:  # noqa: F811
    response = api_app.test_client().post("/auth/token", data={"grant_type": "x" * MIB})
    assert response.status_code == 413
    assert response.content_type == "application/json"
    assert response.json["error"] == "invalid_request"
    assert LIMIT_MESSAGE in response.json["error_description"]


def test_a_body_at_the_limit_is_read(api: Api) -> None:  # noqa: F811
    """Just under 1 MiB is processed normally (the limit is the body, not a smaller cut-off)."""
    body = {"resourceType": "QuestionnaireResponse", "status": "completed", "questionnaire": QR, "text": {"div": ""}}
    body["text"]["div"] = "x" * (MIB - len(json.dumps(body)) - 10)
    response = api.post("/fhir/QuestionnaireResponse/$validate", body)
    assert response.status_code == 200
    assert response.json["resourceType"] == "OperationOutcome"


# --- JSON nesting depth ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["QuestionnaireResponse", "Questionnaire"])
def test_json_nested_deeper_than_64_levels_is_400(api: Api, kind: str) -> None:  # noqa: F811
    path = f"/fhir/{kind}/$validate"

    def nested(levels: int) -> str:
        return f'{{"resourceType":"{kind}","x":' + "[" * (levels - 1) + "]" * (levels - 1) + "}"

    assert api.post(path, nested(64)).status_code == 200
    for levels in (65, 100_000):
        response = api.post(path, nested(levels))
        assert response.status_code == 400, levels
        assert "nested deeper than 64 levels" in response.json["issue"][0]["diagnostics"]


# --- repeated answers -------------------------------------------------------------------------------


def test_check_boxes_sent_more_often_than_there_are_boxes_are_refused(app: Flask, opened: FlaskClient) -> None:
    form = services(app).catalog.by_key["autoimmune"]
    boxes = next(i for i in form.walk() if i.repeats and i.options)
    field = "q-" + boxes.link_id
    data, token = _page(opened, app, FAMILY)
    first = data[field][0]
    count = len(boxes.options)
    for values, message in (
        ([first] * (count + 1), f"Select at most {count} answers"),
        ([first] * 20_000, f"Select at most {count} answers"),
        ([first, first], "Select each answer only once"),
    ):
        response = opened.post(FAMILY, data={**data, field: values, "csrf_token": token})
        assert response.status_code == 400, len(values)
        assert _messages(response.text)[field].startswith(message), _messages(response.text)
    every = [o["valueCoding"]["code"] for o in boxes.options if not is_exclusive(o)]  # "None of these" stands alone
    assert opened.post(FAMILY, data={**data, field: every, "csrf_token": token}).status_code == 302


def test_a_one_answer_question_sent_many_times_is_refused(app: Flask, opened: FlaskClient) -> None:
    data, token = _page(opened, app, FAMILY)
    field = next(name for name, value in data.items() if isinstance(value, str))
    response = opened.post(FAMILY, data={**data, field: [data[field]] * 20_000, "csrf_token": token})
    assert response.status_code == 400
    assert _messages(response.text)[field].startswith("Give only one answer")


# --- string lengths and control characters --------------------------------------------------------


def test_free_text_is_capped_by_max_length_or_10000_characters(sink: FlaskClient) -> None:  # noqa: F811
    token = csrf(sink.get(SINK_PAGE).text)
    base = {"csrf_token": token, "q-yn": "false", "q-weight": "1"}
    too_long = sink.post(SINK_PAGE, data={**base, "q-name": "a" * 13})  # the item's maxLength is 12
    assert too_long.status_code == 400
    assert _messages(too_long.text)["q-name"].startswith("Answer must be 12 characters or fewer")
    no_max = sink.post(SINK_PAGE, data={**base, "q-story": "a" * 10_001})  # a text item without maxLength
    assert no_max.status_code == 400
    assert _messages(no_max.text)["q-story"].startswith("Answer must be 10000 characters or fewer")
    assert sink.post(SINK_PAGE, data={**base, "q-story": "a" * 10_000}).status_code == 302


def test_free_text_with_control_characters_is_refused(sink: FlaskClient) -> None:  # noqa: F811
    token = csrf(sink.get(SINK_PAGE).text)
    base = {"csrf_token": token, "q-yn": "false", "q-weight": "1"}
    for text in ("a\x00b", "a\x1bb", "a\x7fb", "a\x08b"):
        response = sink.post(SINK_PAGE, data={**base, "q-story": text})
        assert response.status_code == 400, repr(text)
        assert _messages(response.text)["q-story"].startswith("Remove the special characters")
    assert sink.post(SINK_PAGE, data={**base, "q-story": "line one\r\nline\ttwo"}).status_code == 302


def test_fhir_strings_with_control_characters_are_400_naming_where(api: Api) -> None:  # noqa: F811
    def response_with(answer: Any, link_id: str = "medas-1", key: str = "valueString") -> dict[str, Any]:
        return {"resourceType": "QuestionnaireResponse", "status": "completed", "questionnaire": QR,
                "item": [{"linkId": link_id, "answer": [{key: answer}]}]}

    for body, where in (
        (response_with("a\x00b"), "$.item[0].answer[0].valueString"),
        (response_with("a\x1bb"), "$.item[0].answer[0].valueString"),
        (response_with("x", link_id="medas-1\x07"), "$.item[0].linkId"),
        (response_with("x", key="value\x01String"), "$.item[0].answer[0] (a key)"),
        (response_with("\ud800"), "$.item[0].answer[0].valueString"),  # an unpaired surrogate
    ):
        response = api.post("/fhir/QuestionnaireResponse/$validate", body)
        assert response.status_code == 400, where
        diagnostics = response.json["issue"][0]["diagnostics"]
        assert diagnostics.startswith(where) and "control characters" in diagnostics, diagnostics
        assert "\x00" not in response.text and "\\u0000" not in response.text  # never echoed
    questionnaire = {"resourceType": "Questionnaire", "status": "active", "item": [
        {"linkId": "a", "type": "string", "text": "Name\x00"}]}
    response = api.post("/fhir/Questionnaire/$validate", questionnaire)
    assert response.status_code == 400
    assert response.json["issue"][0]["diagnostics"].startswith("$.item[0].text")
    # Tab, carriage return and line feed are allowed in FHIR strings: validated as usual.
    assert api.post("/fhir/QuestionnaireResponse/$validate", response_with("a\tb\r\nc")).status_code == 200


def test_a_page_token_beyond_the_stores_range_is_400(api: Api) -> None:  # noqa: F811
    """Found by schemathesis: `_cursor=2200000000` reached PostgreSQL, whose 32-bit `seq`
    comparison failed ("integer out of range", a 500). Tokens the store cannot hold are refused."""
    for cursor in ("2147483648", "2200000000", "99999999999", "9" * 18):
        for response in (
            api.get(f"/fhir/DocumentReference?_cursor={cursor}"),
            api.client.post("/fhir/DocumentReference/_search", data={"_cursor": cursor}, headers=api.headers),
        ):
            assert response.status_code == 400, cursor
            assert "_cursor: not a page token" in response.json["issue"][0]["diagnostics"]
    assert api.get("/fhir/DocumentReference?_cursor=2147483647").status_code == 200

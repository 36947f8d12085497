"""The item-type table (intake/core/item_types.py) and every consumer that handles item types.

Adding a row to the table fails these tests, naming the consumer, until each one handles the
new type: validation's answer checks, calculated answers, enablement's comparisons, the lint,
the web forms' field builders and answer mapping, and the page test that renders every type.
"""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.datastructures import MultiDict

from intake.core import answers, enablement, item_types, lint, validation
from intake.core.item_types import QUESTIONS, SUPPORTED, TYPES, UNSUPPORTED
from intake.web import forms as webforms
from tests.core.factories import (
    coding,
    form,
    group,
    node,
    option,
    question,
    questionnaire,
    response,
    when,
)
from tests.web.test_item_types import SINK

# The per-type handler maps: each must cover exactly the question types of the table.
CONSUMERS: dict[str, dict[str, Any]] = {
    "validation.ANSWER_CHECKS": validation.ANSWER_CHECKS,
    "answers.CALCULATED_ANSWER": answers.CALCULATED_ANSWER,
    "web.forms.FIELD_BUILDERS": webforms.FIELD_BUILDERS,
    "web.forms.TO_ANSWERS": webforms.TO_ANSWERS,
    "web.forms.FROM_ANSWERS": webforms.FROM_ANSWERS,
}

# One well-formed value for each answer value[x] (R4), to post a typed answer of any type.
SAMPLE = {
    "valueBoolean": True,
    "valueDecimal": 1.5,
    "valueInteger": 3,
    "valueDate": "2024-05-06",
    "valueDateTime": "2024-05-06T10:30:00Z",
    "valueTime": "10:30:00",
    "valueString": "words",
    "valueUri": "https://example.org",
    "valueCoding": coding("a"),
    "valueQuantity": {"value": 70.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
    "valueReference": {"reference": "Patient/p1"},
}
ENABLE_WHEN_SAMPLE = {
    "answerBoolean": True, "answerDecimal": 1.5, "answerInteger": 3, "answerDate": "2024-05-06",
    "answerDateTime": "2024-05-06T10:30:00Z", "answerString": "words", "answerCoding": coding("a"),
    "answerQuantity": {"value": 70.5, "system": "http://unitsofmeasure.org", "code": "kg"},
}
# What a browser posts for one answer of each question type (the page's own field formats).
POSTED = {
    "boolean": "true", "decimal": "1,5", "integer": "3", "date": "2024-05-06", "dateTime": "2024-05-06T10:30",
    "string": "words", "text": "more words", "choice": "a", "open-choice": "a", "quantity": "70.5",
}


def minimal_item(code: str, link_id: str = "q", **fields: Any) -> dict[str, Any]:
    """The smallest item of a supported type the lint accepts."""
    if code == "group":
        return group(link_id, question(link_id + "-inner", "boolean"), **fields)
    if TYPES[code].needs_options:
        return question(link_id, code, answerOption=[option("a"), option("b")], **fields)
    return question(link_id, code, **fields)


def errors(resource: dict[str, Any]) -> list[str]:
    return [i.message for i in lint.lint(resource) if i.severity == "error"]


# --- the table ---------------------------------------------------------------------------------


def test_the_table_is_what_the_engine_documents():
    """The twelve types of DESIGN.md and docs/questionnaires.md, no more, no fewer."""
    documented = {"group", "display", "boolean", "decimal", "integer", "date", "dateTime",
                  "string", "text", "choice", "open-choice", "quantity"}
    assert documented == SUPPORTED, "a new type: document it in docs/questionnaires.md (Items), then update this list"
    assert SUPPORTED - {"group", "display"} == QUESTIONS
    assert not SUPPORTED & set(UNSUPPORTED)


@pytest.mark.parametrize("code", sorted(SUPPORTED))
def test_each_row_is_consistent(code: str):
    row = TYPES[code]
    assert row.code == code
    assert row.answer_keys <= set(item_types.ANSWER_VALUE_KEYS)
    assert row.limit_keys <= row.answer_keys | {"valueInteger", "valueDate"}
    if not row.is_question:
        assert (row.answer_keys, row.enable_when, row.option_keys) == (frozenset(), frozenset(), None)
        assert row.widget == "none"
        return
    assert row.answer_keys, "a question must take some answer value[x]"
    assert row.enable_when, "an enableWhen must be able to test a question's answer"
    assert row.widget != "none"
    assert row.value_key is not None or row.needs_options, "a typed answer needs its value[x]"
    assert not row.needs_options or (row.option_keys and row.picks)
    assert not row.free_text or row.needs_options
    assert not row.dynamic_limits or row.limit_keys


def test_item_is_question_reads_the_table():
    built = form(group("g", question("d", "display"), question("b", "boolean")))
    assert [(i.link_id, i.is_question) for i in built.walk()] == [("g", False), ("d", False), ("b", True)]


# --- every consumer covers every supported type --------------------------------------------------


@pytest.mark.parametrize("consumer", sorted(CONSUMERS))
def test_every_consumer_handles_exactly_the_question_types(consumer: str):
    keys = set(CONSUMERS[consumer])
    missing, extra = sorted(QUESTIONS - keys), sorted(keys - QUESTIONS)
    assert not missing and not extra, f"{consumer}: no handler for {missing}; handlers for unknown types {extra}"


def test_enablement_compares_every_answer_type_the_table_allows():
    allowed = set().union(*(row.enable_when for row in TYPES.values()))
    compared = set(enablement.COMPARISONS)
    missing, extra = sorted(allowed - compared), sorted(compared - allowed)
    assert not missing and not extra, f"enablement.COMPARISONS: no comparison for {missing}; unused {extra}"
    assert set(ENABLE_WHEN_SAMPLE) == allowed  # this test's samples cover them all too


def test_the_browser_decides_only_answer_types_the_server_compares():
    assert set(webforms.LIVE_ANSWER_KEYS) <= set(enablement.COMPARISONS)


def test_the_page_test_renders_and_posts_every_type():
    """tests/web/test_item_types.py renders, posts and stores each type through the real pages."""
    used: set[str] = set()
    stack = list(SINK["item"])
    while stack:
        item = stack.pop()
        used.add(item["type"])
        stack.extend(item.get("item") or [])
    assert used == SUPPORTED


# --- lint -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(SUPPORTED))
def test_lint_accepts_each_supported_type(code: str):
    item = minimal_item(code) if code == "group" else group("page", minimal_item(code))
    assert errors(questionnaire(item)) == []


@pytest.mark.parametrize("code", sorted(UNSUPPORTED))
def test_lint_refuses_each_unsupported_type(code: str):
    found = errors(questionnaire(group("page", question("q", code))))
    assert any(f"item type {code!r} is not supported by the engine" in m for m in found), found


@pytest.mark.parametrize("code", sorted(QUESTIONS))
def test_lint_takes_exactly_the_enable_when_answers_of_the_row(code: str):
    for key, value in ENABLE_WHEN_SAMPLE.items():
        condition = when("t", "=", **{key: value})
        dependent = question("q", "string", enableWhen=[condition])
        resource = questionnaire(group("page", minimal_item(code, "t"), dependent))
        found = [m for m in errors(resource) if "can never match" in m]
        assert bool(found) == (key not in TYPES[code].enable_when), (key, found)


@pytest.mark.parametrize("code", sorted(QUESTIONS))
def test_lint_takes_exactly_the_initial_values_of_the_row(code: str):
    for key, value in SAMPLE.items():
        resource = questionnaire(group("page", minimal_item(code, initial=[{key: value}])))
        found = [m for m in errors(resource) if m.startswith("initial #1")]
        assert bool(found) == (key not in TYPES[code].answer_keys), (key, found)


@pytest.mark.parametrize("code", sorted(QUESTIONS))
def test_lint_takes_exactly_the_limit_values_of_the_row(code: str):
    for key in ("valueInteger", "valueDecimal", "valueDate", "valueDateTime", "valueQuantity"):
        limit = {"url": "http://hl7.org/fhir/StructureDefinition/minValue", key: SAMPLE[key]}
        resource = questionnaire(group("page", minimal_item(code, extension=[limit])))
        found = [m for m in errors(resource) if "minValue" in m]
        assert bool(found) == (key not in TYPES[code].limit_keys), (key, found)


# --- validation -----------------------------------------------------------------------------------


def _answer_value(code: str) -> dict[str, Any]:
    row = TYPES[code]
    if row.needs_options:
        return {"valueCoding": coding("a")}
    assert row.value_key is not None
    return {row.value_key: SAMPLE[row.value_key]}


@pytest.mark.parametrize("code", sorted(QUESTIONS))
def test_validation_takes_each_types_own_answer_and_refuses_the_others(code: str):
    built = form(group("page", minimal_item(code)))
    ok = response(node("page", items=[node("q", _answer_value(code))]))
    assert validation.validate(built, ok) == []
    allowed = TYPES[code].answer_keys
    for key in set(SAMPLE) - allowed:
        wrong = response(node("page", items=[node("q", {key: SAMPLE[key]})]))
        messages = [i.message for i in validation.validate(built, wrong)]
        assert f"{key} is not an answer to a {code} item" in messages, (key, messages)


def test_validation_refuses_answers_to_groups_and_displays():
    built = form(group("page", question("d", "display"), question("b", "boolean")))
    bad = response(node("page", {"valueBoolean": True}, items=[node("b", {"valueBoolean": True})]))
    assert [i.message for i in validation.validate(built, bad)] == ["a group item cannot have answers"]


# --- the web forms: field, posted data -> FHIR answer -> field data ------------------------------


@pytest.mark.parametrize("code", sorted(QUESTIONS))
def test_web_form_round_trips_each_type(code: str):
    built = form(group("page", minimal_item(code)))
    cls = webforms.page_form_class(built, built.pages[0])
    name = webforms.field_name("q")
    page = cls(MultiDict({name: POSTED[code]}))
    stored = webforms.page_answers(page)["q"]
    assert len(stored) == 1 and set(stored[0]) <= TYPES[code].answer_keys, stored
    posted = response(node("page", items=[node("q", *stored)]))
    assert validation.validate(built, posted) == []
    shown = webforms.form_data(cls, {"q": stored}, use_initial=False)
    assert shown[name] == ("1.5" if code == "decimal" else POSTED[code]), shown

"""enableWhen / enableBehavior / enableWhenExpression (R4 rules, as the HL7 validator applies them)."""

from __future__ import annotations

import pytest

from intake.core.answers import compute
from intake.core.enablement import condition_met, enabled_links
from tests.core.factories import (
    ENABLE_WHEN_EXPRESSION,
    LOINC,
    UCUM,
    coding,
    expression,
    form,
    group,
    question,
    when,
)

KG = {"value": 70, "unit": "kg", "system": UCUM, "code": "kg"}


def quantity(value: float, code: str = "kg") -> dict:
    return {"value": value, "unit": code, "system": UCUM, "code": code}


def check(operator: str, condition: dict, answers: list[dict]) -> bool:
    return condition_met({"question": "q", "operator": operator, **condition}, answers)


# (operator, condition answer[x], answer given, expected result)
MATRIX = [
    # boolean
    ("=", {"answerBoolean": True}, {"valueBoolean": True}, True),
    ("=", {"answerBoolean": True}, {"valueBoolean": False}, False),
    ("=", {"answerBoolean": False}, {"valueBoolean": False}, True),
    ("!=", {"answerBoolean": True}, {"valueBoolean": False}, True),
    ("!=", {"answerBoolean": True}, {"valueBoolean": True}, False),
    # integer
    ("=", {"answerInteger": 3}, {"valueInteger": 3}, True),
    ("=", {"answerInteger": 3}, {"valueInteger": 4}, False),
    ("!=", {"answerInteger": 3}, {"valueInteger": 4}, True),
    ("!=", {"answerInteger": 3}, {"valueInteger": 3}, False),
    (">", {"answerInteger": 3}, {"valueInteger": 4}, True),
    (">", {"answerInteger": 3}, {"valueInteger": 3}, False),
    ("<", {"answerInteger": 3}, {"valueInteger": 2}, True),
    ("<", {"answerInteger": 3}, {"valueInteger": 3}, False),
    (">=", {"answerInteger": 3}, {"valueInteger": 3}, True),
    (">=", {"answerInteger": 3}, {"valueInteger": 2}, False),
    ("<=", {"answerInteger": 3}, {"valueInteger": 3}, True),
    ("<=", {"answerInteger": 3}, {"valueInteger": 4}, False),
    ("=", {"answerInteger": 0}, {"valueInteger": 0}, True),
    # decimal (and integer/decimal compare by value)
    ("=", {"answerDecimal": 1.5}, {"valueDecimal": 1.5}, True),
    ("=", {"answerDecimal": 1.5}, {"valueDecimal": 1.25}, False),
    ("!=", {"answerDecimal": 1.5}, {"valueDecimal": 1.25}, True),
    (">", {"answerDecimal": 1.5}, {"valueDecimal": 1.51}, True),
    (">", {"answerDecimal": 1.5}, {"valueDecimal": 1.5}, False),
    ("<", {"answerDecimal": 1.5}, {"valueDecimal": 1.49}, True),
    ("<", {"answerDecimal": 1.5}, {"valueDecimal": 1.5}, False),
    (">=", {"answerDecimal": 1.5}, {"valueDecimal": 1.5}, True),
    (">=", {"answerDecimal": 1.5}, {"valueDecimal": 1.49}, False),
    ("<=", {"answerDecimal": 1.5}, {"valueDecimal": 1.5}, True),
    ("<=", {"answerDecimal": 1.5}, {"valueDecimal": 1.51}, False),
    ("=", {"answerDecimal": 2}, {"valueInteger": 2}, True),
    ("=", {"answerInteger": 2}, {"valueDecimal": 2.0}, True),
    # date
    ("=", {"answerDate": "2024-05-10"}, {"valueDate": "2024-05-10"}, True),
    ("=", {"answerDate": "2024-05-10"}, {"valueDate": "2024-05-11"}, False),
    ("!=", {"answerDate": "2024-05-10"}, {"valueDate": "2024-05-11"}, True),
    ("!=", {"answerDate": "2024-05-10"}, {"valueDate": "2024-05-10"}, False),
    (">", {"answerDate": "2024-05-10"}, {"valueDate": "2024-05-11"}, True),
    (">", {"answerDate": "2024-05-10"}, {"valueDate": "2024-05-10"}, False),
    ("<", {"answerDate": "2024-05-10"}, {"valueDate": "2024-05-09"}, True),
    ("<", {"answerDate": "2024-05-10"}, {"valueDate": "2024-05-10"}, False),
    (">=", {"answerDate": "2024-05-10"}, {"valueDate": "2024-05-10"}, True),
    (">=", {"answerDate": "2024-05-10"}, {"valueDate": "2024-05-09"}, False),
    ("<=", {"answerDate": "2024-05-10"}, {"valueDate": "2024-05-10"}, True),
    ("<=", {"answerDate": "2024-05-10"}, {"valueDate": "2024-05-11"}, False),
    ("=", {"answerDate": "2024-05"}, {"valueDate": "2024-05"}, True),
    # different precision is not comparable (FHIRPath gives empty): no ordered match either way
    (">=", {"answerDate": "2024-05-01"}, {"valueDate": "2024-05"}, False),
    ("<=", {"answerDate": "2024-05-01"}, {"valueDate": "2024-05"}, False),
    ("=", {"answerDate": "2024-05-01"}, {"valueDate": "2024-05"}, False),
    # dateTime
    ("=", {"answerDateTime": "2024-05-01T10:00:00Z"}, {"valueDateTime": "2024-05-01T10:00:00Z"}, True),
    ("=", {"answerDateTime": "2024-05-01T10:00:00Z"}, {"valueDateTime": "2024-05-01T10:00:01Z"}, False),
    ("!=", {"answerDateTime": "2024-05-01T10:00:00Z"}, {"valueDateTime": "2024-05-01T10:00:01Z"}, True),
    ("!=", {"answerDateTime": "2024-05-01T10:00:00Z"}, {"valueDateTime": "2024-05-01T10:00:00Z"}, False),
    (">", {"answerDateTime": "2024-05-01T10:00:00Z"}, {"valueDateTime": "2024-05-01T10:30:00Z"}, True),
    (">", {"answerDateTime": "2024-05-01T10:00:00Z"}, {"valueDateTime": "2024-05-01T10:00:00Z"}, False),
    ("<", {"answerDateTime": "2024-05-01T10:00:00Z"}, {"valueDateTime": "2024-05-01T09:59:59Z"}, True),
    ("<", {"answerDateTime": "2024-05-01T10:00:00Z"}, {"valueDateTime": "2024-05-01T10:00:00Z"}, False),
    (">=", {"answerDateTime": "2024-05-01T10:00:00Z"}, {"valueDateTime": "2024-05-01T10:00:00Z"}, True),
    (">=", {"answerDateTime": "2024-05-01T10:00:00Z"}, {"valueDateTime": "2024-05-01T09:00:00Z"}, False),
    ("<=", {"answerDateTime": "2024-05-01T10:00:00Z"}, {"valueDateTime": "2024-05-01T10:00:00Z"}, True),
    ("<=", {"answerDateTime": "2024-05-01T10:00:00Z"}, {"valueDateTime": "2024-05-01T11:00:00Z"}, False),
    # the same instant written in another time zone (or +00:00 for Z) is the same dateTime
    ("=", {"answerDateTime": "2024-05-01T10:00:00Z"}, {"valueDateTime": "2024-05-01T12:00:00+02:00"}, True),
    ("=", {"answerDateTime": "2024-05-01T10:00:00Z"}, {"valueDateTime": "2024-05-01T10:00:00+00:00"}, True),
    ("!=", {"answerDateTime": "2024-05-01T10:00:00Z"}, {"valueDateTime": "2024-05-01T12:00:00+02:00"}, False),
    # 11:00 at +02:00 is 09:00Z: earlier, although its digits are larger
    ("<", {"answerDateTime": "2024-05-01T10:00:00Z"}, {"valueDateTime": "2024-05-01T11:00:00+02:00"}, True),
    (">", {"answerDateTime": "2024-05-01T10:00:00Z"}, {"valueDateTime": "2024-05-01T11:00:00+02:00"}, False),
    ("=", {"answerDateTime": "2024-05-01T10:00:00Z"}, {"valueDateTime": "2024-05-01T10:00:00.000Z"}, True),
    # string
    ("=", {"answerString": "b"}, {"valueString": "b"}, True),
    ("=", {"answerString": "b"}, {"valueString": "B"}, False),
    ("!=", {"answerString": "b"}, {"valueString": "c"}, True),
    ("!=", {"answerString": "b"}, {"valueString": "b"}, False),
    (">", {"answerString": "b"}, {"valueString": "c"}, True),
    (">", {"answerString": "b"}, {"valueString": "a"}, False),
    ("<", {"answerString": "b"}, {"valueString": "a"}, True),
    ("<", {"answerString": "b"}, {"valueString": "b"}, False),
    (">=", {"answerString": "b"}, {"valueString": "b"}, True),
    (">=", {"answerString": "b"}, {"valueString": "a"}, False),
    ("<=", {"answerString": "b"}, {"valueString": "b"}, True),
    ("<=", {"answerString": "b"}, {"valueString": "c"}, False),
    # Coding with a system: code and system must both match
    ("=", {"answerCoding": coding("LA33-6")}, {"valueCoding": coding("LA33-6", display="Yes")}, True),
    ("=", {"answerCoding": coding("LA33-6")}, {"valueCoding": coding("LA32-8")}, False),
    ("=", {"answerCoding": coding("LA33-6")}, {"valueCoding": coding("LA33-6", "http://snomed.info/sct")}, False),
    ("=", {"answerCoding": coding("LA33-6")}, {"valueCoding": coding("LA33-6", None)}, False),
    ("!=", {"answerCoding": coding("LA33-6")}, {"valueCoding": coding("LA32-8")}, True),
    ("!=", {"answerCoding": coding("LA33-6")}, {"valueCoding": coding("LA33-6")}, False),
    ("!=", {"answerCoding": coding("LA33-6")}, {"valueCoding": coding("LA33-6", "http://snomed.info/sct")}, True),
    # Coding without a system: the code alone decides
    ("=", {"answerCoding": coding("LA33-6", None)}, {"valueCoding": coding("LA33-6")}, True),
    ("=", {"answerCoding": coding("LA33-6", None)}, {"valueCoding": coding("LA33-6", "urn:other")}, True),
    ("=", {"answerCoding": coding("LA33-6", None)}, {"valueCoding": coding("LA32-8")}, False),
    ("!=", {"answerCoding": coding("LA33-6", None)}, {"valueCoding": coding("LA33-6", "urn:other")}, False),
    ("!=", {"answerCoding": coding("LA33-6", None)}, {"valueCoding": coding("LA32-8")}, True),
    # an open-choice free-text answer never matches a Coding condition
    ("=", {"answerCoding": coding("LA33-6")}, {"valueString": "LA33-6"}, False),
    ("!=", {"answerCoding": coding("LA33-6")}, {"valueString": "something else"}, False),
    # Quantity: same unit (system + code) compares by value
    ("=", {"answerQuantity": KG}, {"valueQuantity": quantity(70.0)}, True),
    ("=", {"answerQuantity": KG}, {"valueQuantity": quantity(71)}, False),
    ("!=", {"answerQuantity": KG}, {"valueQuantity": quantity(71)}, True),
    ("!=", {"answerQuantity": KG}, {"valueQuantity": quantity(70)}, False),
    (">", {"answerQuantity": KG}, {"valueQuantity": quantity(70.5)}, True),
    (">", {"answerQuantity": KG}, {"valueQuantity": quantity(70)}, False),
    ("<", {"answerQuantity": KG}, {"valueQuantity": quantity(69.5)}, True),
    ("<", {"answerQuantity": KG}, {"valueQuantity": quantity(70)}, False),
    (">=", {"answerQuantity": KG}, {"valueQuantity": quantity(70)}, True),
    (">=", {"answerQuantity": KG}, {"valueQuantity": quantity(69)}, False),
    ("<=", {"answerQuantity": KG}, {"valueQuantity": quantity(70)}, True),
    ("<=", {"answerQuantity": KG}, {"valueQuantity": quantity(71)}, False),
    # another unit is not comparable: 200 [lb_av] is not "> 70 kg" by its number
    (">", {"answerQuantity": KG}, {"valueQuantity": quantity(200, "[lb_av]")}, False),
    ("=", {"answerQuantity": KG}, {"valueQuantity": quantity(70, "[lb_av]")}, False),
]


@pytest.mark.parametrize(("operator", "condition", "answer", "expected"), MATRIX)
def test_operator_against_answer_type(operator, condition, answer, expected):
    assert check(operator, condition, [answer]) is expected


ANSWER_OF_EACH_TYPE = [
    {"valueBoolean": False},
    {"valueInteger": 0},
    {"valueDecimal": 0.0},
    {"valueDate": "2024"},
    {"valueDateTime": "2024-05-01T10:00:00Z"},
    {"valueString": "x"},
    {"valueCoding": coding("LA32-8")},
    {"valueQuantity": quantity(0)},
]


@pytest.mark.parametrize("answer", ANSWER_OF_EACH_TYPE, ids=lambda a: next(iter(a)))
def test_exists(answer):
    assert check("exists", {"answerBoolean": True}, [answer]) is True
    assert check("exists", {"answerBoolean": False}, [answer]) is False


NO_ANSWER = [
    ("exists", {"answerBoolean": True}, False),
    ("exists", {"answerBoolean": False}, True),
    ("=", {"answerBoolean": False}, False),
    ("!=", {"answerBoolean": True}, False),
    ("=", {"answerInteger": 0}, False),
    ("!=", {"answerInteger": 0}, False),
    (">", {"answerInteger": 0}, False),
    ("<", {"answerInteger": 0}, False),
    (">=", {"answerDecimal": 0}, False),
    ("<=", {"answerDecimal": 0}, False),
    ("!=", {"answerString": "x"}, False),
    ("!=", {"answerCoding": coding("LA33-6")}, False),
    ("<=", {"answerDate": "2024-01-01"}, False),
    ("!=", {"answerQuantity": KG}, False),
]


@pytest.mark.parametrize(("operator", "condition", "expected"), NO_ANSWER)
def test_no_answer_is_false_except_exists_false(operator, condition, expected):
    assert check(operator, condition, []) is expected


def test_answer_without_value_is_no_answer():
    assert check("=", {"answerInteger": 1}, [{}]) is False
    assert check("!=", {"answerInteger": 1}, [{}]) is False


@pytest.mark.parametrize(
    ("operator", "condition", "answers", "expected"),
    [
        (">", {"answerInteger": 4}, [2, 5], True),
        (">", {"answerInteger": 5}, [2, 5], False),
        ("=", {"answerInteger": 2}, [5, 2], True),
        ("<", {"answerInteger": 1}, [2, 5], False),
        ("!=", {"answerInteger": 3}, [3, 3], False),
        ("!=", {"answerInteger": 3}, [3, 4], True),
    ],
)
def test_several_answers_any_one_meets(operator, condition, answers, expected):
    assert check(operator, condition, [{"valueInteger": v} for v in answers]) is expected


def test_several_codings_any_one_meets():
    answers = [{"valueCoding": coding("a", "urn:s")}, {"valueCoding": coding("b", "urn:s")}]
    assert check("=", {"answerCoding": coding("b", "urn:s")}, answers) is True
    assert check("=", {"answerCoding": coding("c", "urn:s")}, answers) is False


# ---------------------------------------------------------------- enabled_links over a Form


def two_conditions(behavior: str | None):
    fields = {"enableWhen": [when("a", "=", answerBoolean=True), when("b", ">", answerInteger=5)]}
    if behavior:
        fields["enableBehavior"] = behavior
    return form(
        group(
            "g",
            question("a", "boolean"),
            question("b", "integer"),
            question("c", "string", **fields),
        )
    )


@pytest.mark.parametrize(
    ("behavior", "a", "b", "enabled"),
    [
        ("all", True, 6, True),
        ("all", True, 5, False),
        ("all", False, 6, False),
        ("all", None, None, False),
        ("any", True, 5, True),
        ("any", False, 6, True),
        ("any", False, 5, False),
        ("any", None, None, False),
    ],
)
def test_enable_behavior(behavior, a, b, enabled):
    f = two_conditions(behavior)
    answers = {}
    if a is not None:
        answers["a"] = [{"valueBoolean": a}]
    if b is not None:
        answers["b"] = [{"valueInteger": b}]
    assert ("c" in enabled_links(f, answers)) is enabled


def test_items_without_conditions_are_all_enabled():
    f = form(
        group("g", question("a", "boolean"), group("h", question("b", "string"))), group("g2", question("c", "date"))
    )
    assert enabled_links(f, {}) == {"g", "a", "h", "b", "g2", "c"}


def test_child_of_a_disabled_group_is_disabled():
    f = form(
        group("g1", question("smoker", "boolean")),
        group(
            "g2",
            question("packs", "integer"),
            question("years", "integer", enableWhen=[when("packs", ">", answerInteger=0)]),
            group("g3", question("quit", "boolean")),
            enableWhen=[when("smoker", "=", answerBoolean=True)],
        ),
    )
    answers = {"smoker": [{"valueBoolean": False}], "packs": [{"valueInteger": 3}]}
    assert enabled_links(f, answers) == {"g1", "smoker"}
    answers["smoker"] = [{"valueBoolean": True}]
    assert enabled_links(f, answers) == {"g1", "smoker", "g2", "packs", "years", "g3", "quit"}


def test_child_question_of_a_disabled_question_is_disabled():
    child = question("packs", "integer")
    f = form(
        group(
            "g",
            question("smoker", "boolean"),
            question("vapes", "boolean", child, enableWhen=[when("smoker", "=", answerBoolean=True)]),
        )
    )
    assert enabled_links(f, {"smoker": [{"valueBoolean": False}]}) == {"g", "smoker"}


def test_condition_on_a_disabled_question_counts_as_unanswered():
    f = form(
        group(
            "g",
            question("a", "boolean"),
            question("b", "integer", enableWhen=[when("a", "=", answerBoolean=True)]),
            question("c", "string", enableWhen=[when("b", "exists", answerBoolean=True)]),
            question("d", "string", enableWhen=[when("b", "exists", answerBoolean=False)]),
            question("e", "string", enableWhen=[when("b", ">=", answerInteger=1)]),
        )
    )
    # b keeps a stale answer from before `a` was switched off
    answers = {"a": [{"valueBoolean": False}], "b": [{"valueInteger": 7}]}
    assert enabled_links(f, answers) == {"g", "a", "d"}
    answers["a"] = [{"valueBoolean": True}]
    assert enabled_links(f, answers) == {"g", "a", "b", "c", "e"}


def expression_form(text: str):
    return form(
        group(
            "g",
            question("age", "integer"),
            question("pregnant", "boolean", extension=[expression(ENABLE_WHEN_EXPRESSION, text)]),
        )
    )


def age_response(age: int) -> dict:
    return {
        "resourceType": "QuestionnaireResponse",
        "item": [{"linkId": "g", "item": [{"linkId": "age", "answer": [{"valueInteger": age}]}]}],
    }


AGE_EXPRESSION = "%resource.repeat(item).where(linkId='age').answer.value >= 18"


@pytest.mark.parametrize(("age", "enabled"), [(18, True), (40, True), (17, False)])
def test_enable_when_expression_true_false(age, enabled):
    f = expression_form(AGE_EXPRESSION)
    answers = {"age": [{"valueInteger": age}]}
    assert ("pregnant" in enabled_links(f, answers, age_response(age))) is enabled


def test_enable_when_expression_without_answer_is_empty_so_disabled():
    f = expression_form(AGE_EXPRESSION)
    shell = {"resourceType": "QuestionnaireResponse"}
    assert enabled_links(f, {}, shell) == {"g", "age"}


def test_enable_when_expression_error_disables():
    f = expression_form("%nope = 1")  # an undefined variable fails at run time
    assert enabled_links(f, {"age": [{"valueInteger": 40}]}, age_response(40)) == {"g", "age"}


def test_enable_when_expression_non_boolean_result_disables():
    f = expression_form("%resource.repeat(item).where(linkId='age').answer.value")
    assert enabled_links(f, {"age": [{"valueInteger": 40}]}, age_response(40)) == {"g", "age"}


def test_enable_when_expression_through_compute_drops_answers():
    f = expression_form(AGE_EXPRESSION)
    kept, enabled = compute(f, {"age": [{"valueInteger": 12}], "pregnant": [{"valueBoolean": True}]})
    assert kept == {"age": [{"valueInteger": 12}]}
    assert enabled == {"g", "age"}
    kept, enabled = compute(f, {"age": [{"valueInteger": 30}], "pregnant": [{"valueBoolean": True}]})
    assert kept == {"age": [{"valueInteger": 30}], "pregnant": [{"valueBoolean": True}]}
    assert enabled == {"g", "age", "pregnant"}


def test_enable_when_and_expression_must_both_hold():
    f = form(
        group(
            "g",
            question("age", "integer"),
            question("female", "boolean"),
            question(
                "pregnant",
                "boolean",
                enableWhen=[when("female", "=", answerBoolean=True)],
                extension=[expression(ENABLE_WHEN_EXPRESSION, AGE_EXPRESSION)],
            ),
        )
    )
    response = age_response(30)
    assert "pregnant" not in enabled_links(
        f, {"age": [{"valueInteger": 30}], "female": [{"valueBoolean": False}]}, response
    )
    assert "pregnant" in enabled_links(f, {"age": [{"valueInteger": 30}], "female": [{"valueBoolean": True}]}, response)


def test_loinc_constant_is_the_coding_system():
    assert coding("x") == {"system": LOINC, "code": "x"}

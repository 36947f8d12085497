"""Answers -> QuestionnaireResponse: nesting, pinning, texts, calculation and dropped answers."""

from __future__ import annotations

from functools import lru_cache

import pytest

from intake.core.answers import build_response, compute, flatten, nest
from intake.core.catalog import load_catalog
from intake.core.validation import validate
from tests.core.factories import (
    CALCULATED_EXPRESSION,
    CANONICAL,
    FORMS,
    HIDDEN,
    LOINC,
    UCUM,
    URL,
    coding,
    expression,
    ext,
    form,
    group,
    option,
    question,
    text_of,
    when,
)

SUBJECT = "Patient/p1"
AUTHORED = "2024-05-01T10:00:00Z"


def build(f, answers, status="completed", **kw):
    return build_response(f, answers, status=status, subject=SUBJECT, authored=AUTHORED, **kw)


def envelope(*items, status="completed", questionnaire=CANONICAL):
    out = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": questionnaire,
        "status": status,
        "subject": {"reference": SUBJECT},
        "authored": AUTHORED,
    }
    if items:
        out["item"] = list(items)
    return out


def answered(link_id, *answers, text=True):
    out = {"linkId": link_id}
    if text:
        out["text"] = text_of(link_id)
    out["answer"] = list(answers)
    return out


def in_group(*items):
    return {"linkId": "g", "text": text_of("g"), "item": list(items)}


# ------------------------------------------------------------------ one test per item type


YES = option("LA33-6", display="Yes")
NO = option("LA32-8", display="No")

SIMPLE_TYPES = [
    ("boolean", {}, [{"valueBoolean": False}]),
    ("decimal", {}, [{"valueDecimal": 72.5}]),
    ("integer", {}, [{"valueInteger": 0}]),
    ("date", {}, [{"valueDate": "2024-05-17"}]),
    ("dateTime", {}, [{"valueDateTime": "2024-05-17T08:30:00+02:00"}]),
    ("string", {}, [{"valueString": "Dr Smith"}]),
    ("text", {}, [{"valueString": "line one\nline two"}]),
    ("choice", {"answerOption": [YES, NO]}, [{"valueCoding": coding("LA32-8", display="No")}]),
    ("open-choice", {"answerOption": [YES, NO]}, [{"valueCoding": coding("LA33-6", display="Yes")}]),
    ("open-choice", {"answerOption": [YES, NO]}, [{"valueString": "Sometimes, after meals"}]),
    ("quantity", {}, [{"valueQuantity": {"value": 70.5, "unit": "kg", "system": UCUM, "code": "kg"}}]),
]


@pytest.mark.parametrize(
    ("kind", "fields", "answers"), SIMPLE_TYPES, ids=[f"{k}-{next(iter(a[0]))}" for k, _, a in SIMPLE_TYPES]
)
def test_one_answer_per_type(kind, fields, answers):
    f = form(group("g", question("q", kind, **fields)))
    assert build(f, {"q": answers}) == envelope(in_group(answered("q", *answers)))


@pytest.mark.parametrize("partial", ["2024", "2024-05"])
def test_partial_date(partial):
    f = form(group("g", question("dob", "date")))
    response = build(f, {"dob": [{"valueDate": partial}]})
    assert response == envelope(in_group(answered("dob", {"valueDate": partial})))
    assert validate(f, response) == []


def test_group_nesting_exactly_as_the_questionnaire():
    f = form(
        group("g", question("a", "string"), group("h", question("b", "integer"), group("i", question("c", "boolean")))),
        group("g2", question("d", "string")),
    )
    response = build(f, {"c": [{"valueBoolean": True}], "a": [{"valueString": "x"}]})
    assert response["item"] == [
        {
            "linkId": "g",
            "text": text_of("g"),
            "item": [
                answered("a", {"valueString": "x"}),
                {
                    "linkId": "h",
                    "text": text_of("h"),
                    "item": [{"linkId": "i", "text": text_of("i"), "item": [answered("c", {"valueBoolean": True})]}],
                },
            ],
        }
    ]


def test_display_items_and_empty_groups_are_omitted():
    f = form(
        group("g", question("intro", "display"), question("a", "string"), group("empty", question("b", "string"))),
        group("unanswered", question("c", "string")),
    )
    assert build(f, {"a": [{"valueString": "x"}]}) == envelope(in_group(answered("a", {"valueString": "x"})))


def test_nothing_answered_has_no_item_at_all():
    f = form(group("g", question("a", "string")))
    assert build(f, {}, status="in-progress") == envelope(status="in-progress")


def test_questionnaire_is_url_pipe_version_and_url_alone_when_unversioned():
    f = form(group("g", question("a", "string")), version=None)
    assert build(f, {})["questionnaire"] == URL
    assert build(form(group("g", question("a", "string"))), {})["questionnaire"] == f"{URL}|1.0.0"


def test_envelope_fields_id_and_language():
    f = form(group("g", question("a", "string")))
    response = build(f, {}, status="in-progress", response_id="r-1", language="de")
    assert response == {
        "resourceType": "QuestionnaireResponse",
        "id": "r-1",
        "language": "de",
        "questionnaire": CANONICAL,
        "status": "in-progress",
        "subject": {"reference": SUBJECT},
        "authored": AUTHORED,
    }


def test_text_comes_from_the_questionnaire_and_is_left_out_when_it_has_none():
    f = form(
        group("g", question("a", "string", text="How are you?"), question("b", "string", text=""), text="About you")
    )
    response = build(f, {"a": [{"valueString": "x"}], "b": [{"valueString": "y"}]})
    assert response["item"] == [
        {
            "linkId": "g",
            "text": "About you",
            "item": [
                {"linkId": "a", "text": "How are you?", "answer": [{"valueString": "x"}]},
                {"linkId": "b", "answer": [{"valueString": "y"}]},
            ],
        }
    ]


def test_question_children_go_under_the_first_answer():
    f = form(group("g", question("smoker", "boolean", question("packs", "integer"), question("since", "date"))))
    response = build(f, {"smoker": [{"valueBoolean": True}], "packs": [{"valueInteger": 2}]})
    assert response == envelope(
        in_group(
            {
                "linkId": "smoker",
                "text": text_of("smoker"),
                "answer": [{"valueBoolean": True, "item": [answered("packs", {"valueInteger": 2})]}],
            }
        )
    )


def test_child_answers_of_an_unanswered_question_have_nowhere_to_go():
    f = form(group("g", question("smoker", "boolean", question("packs", "integer"))))
    assert "item" not in build(f, {"packs": [{"valueInteger": 2}]})


def test_repeats_keep_every_answer_in_order():
    f = form(
        group(
            "g",
            question("meds", "string", repeats=True),
            question("symptoms", "choice", repeats=True, answerOption=[option("a"), option("b"), option("c")]),
        )
    )
    answers = {
        "meds": [{"valueString": "metformin"}, {"valueString": "aspirin"}],
        "symptoms": [{"valueCoding": coding("c")}, {"valueCoding": coding("a")}],
    }
    response = build(f, answers)
    assert response == envelope(
        in_group(answered("meds", *answers["meds"]), answered("symptoms", *answers["symptoms"]))
    )
    assert validate(f, response) == []


def test_answers_are_copied_not_shared():
    f = form(group("g", question("a", "string")))
    answers = {"a": [{"valueString": "x"}]}
    response = build(f, answers)
    response["item"][0]["item"][0]["answer"][0]["valueString"] = "changed"
    assert answers == {"a": [{"valueString": "x"}]}


def test_flatten_is_the_inverse_of_nest():
    f = form(
        group(
            "g", question("smoker", "boolean", question("packs", "integer")), question("meds", "string", repeats=True)
        )
    )
    answers = {
        "smoker": [{"valueBoolean": True}],
        "packs": [{"valueInteger": 2}],
        "meds": [{"valueString": "a"}, {"valueString": "b"}],
    }
    assert flatten(build(f, answers)) == answers
    assert flatten({"resourceType": "QuestionnaireResponse"}) == {}


def test_nest_with_enabled_set_keeps_only_enabled():
    f = form(group("g", question("a", "string"), question("b", "string")))
    answers = {"a": [{"valueString": "x"}], "b": [{"valueString": "y"}]}
    assert nest(f, answers, {"g", "b"}) == [in_group(answered("b", {"valueString": "y"}))]
    assert nest(f, answers, {"a", "b"}) == []  # the group itself is disabled


# ------------------------------------------------------------------ traps


def test_answers_to_a_now_disabled_item_are_dropped():
    f = form(
        group(
            "g",
            question("smoker", "boolean"),
            question("packs", "integer", enableWhen=[when("smoker", "=", answerBoolean=True)]),
        )
    )
    answers = {"smoker": [{"valueBoolean": False}], "packs": [{"valueInteger": 20}]}
    response = build(f, answers)
    assert response == envelope(in_group(answered("smoker", {"valueBoolean": False})))
    assert compute(f, answers) == ({"smoker": [{"valueBoolean": False}]}, {"g", "smoker"})


def test_disabled_required_item_is_no_error_when_completed():
    f = form(
        group(
            "g",
            question("smoker", "boolean", required=True),
            question("packs", "integer", required=True, enableWhen=[when("smoker", "=", answerBoolean=True)]),
        )
    )
    response = build(f, {"smoker": [{"valueBoolean": False}]})
    assert validate(f, response) == []
    enabled = build(f, {"smoker": [{"valueBoolean": True}]})
    assert [(i.severity, i.code, i.link_id, i.message) for i in validate(f, enabled)] == [
        ("error", "required", "packs", "an answer is required")
    ]


def weighted(*weights):
    return [option(f"c{n}", system="urn:s", weight=w) for n, w in enumerate(weights)]


def score_form(
    total_type="integer", expr="%resource.repeat(item).where(linkId.startsWith('s-')).answer.value.weight().sum()"
):
    return form(
        group(
            "g",
            question("s-1", "choice", answerOption=weighted(0, 1, 2)),
            question("s-2", "choice", answerOption=weighted(0, 3, 5)),
            question("s-3", "choice", answerOption=[option("x", system="urn:s"), option("y", system="urn:s")]),
            question(
                "total",
                total_type,
                readOnly=True,
                extension=[ext(HIDDEN, valueBoolean=True), expression(CALCULATED_EXPRESSION, expr)],
            ),
        )
    )


def pick(code):
    return [{"valueCoding": {"system": "urn:s", "code": code}}]


def test_calculated_expression_sums_option_weights():
    f = score_form()
    response = build(f, {"s-1": pick("c2"), "s-2": pick("c1"), "s-3": pick("y")})
    assert response == envelope(
        in_group(
            answered("s-1", *pick("c2")),
            answered("s-2", *pick("c1")),
            answered("s-3", *pick("y")),
            answered("total", {"valueInteger": 5}),
        )
    )
    # the weights are only used for the calculation: the stored Codings stay as answered
    assert "extension" not in response["item"][0]["item"][0]["answer"][0]["valueCoding"]


def test_calculated_total_of_nothing_answered():
    f = score_form()
    kept, _ = compute(f, {})
    assert kept == {"total": [{"valueInteger": 0}]}  # sum() of an empty collection is 0


def test_calculated_value_overrides_a_submitted_one():
    f = score_form()
    kept, _ = compute(f, {"s-1": pick("c1"), "total": [{"valueInteger": 99}]})
    assert kept == {"s-1": pick("c1"), "total": [{"valueInteger": 1}]}


@pytest.mark.parametrize(
    ("kind", "expr", "expected"),
    [
        ("integer", "7 / 2", []),  # 3.5 cannot be an integer answer: no answer at all
        ("integer", "6 / 2", [{"valueInteger": 3}]),  # 3.0 is
        ("decimal", "7 / 2", [{"valueDecimal": 3.5}]),
        ("integer", "'3'", []),
        ("string", "'abc'", [{"valueString": "abc"}]),
        ("boolean", "1 > 0", [{"valueBoolean": True}]),
        ("integer", "true", []),
        ("integer", "{}", []),
        ("integer", "%nope", []),  # a run-time error: no answer
    ],
)
def test_calculated_result_types(kind, expr, expected):
    f = score_form(kind, expr)
    kept, _ = compute(f, {})
    assert kept.get("total", []) == expected


# ------------------------------------------------------------------ the stress reflex (real form)


@lru_cache(maxsize=1)
def stress():
    return load_catalog(FORMS).by_key["stress"]


def frequency(code):
    return [{"valueCoding": {"system": LOINC, "code": code}}]


NOT_AT_ALL, SEVERAL, MORE_THAN_HALF, NEARLY_EVERY = "LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"


def stress_answers(phq4_3, phq4_4):
    answers = {f"pss10-{n}": frequency("LA10082-8") for n in range(1, 11)}
    answers["phq4-1"] = frequency(NOT_AT_ALL)
    answers["phq4-2"] = frequency(SEVERAL)
    answers["phq4-3"] = frequency(phq4_3)
    answers["phq4-4"] = frequency(phq4_4)
    return answers


def phq4_group(response):
    return next(i for i in response["item"] if i["linkId"] == "stress-phq4")


def test_reflex_switched_on_by_hidden_score_and_back_off():
    f = stress()
    answers = stress_answers(MORE_THAN_HALF, SEVERAL)  # 2 + 1 = 3: PHQ-9 follows
    answers.update({f"phq9-{n}": frequency(SEVERAL) for n in range(1, 10)})
    on = build(f, answers)
    assert [i["linkId"] for i in on["item"]] == ["stress-pss10", "stress-phq4", "stress-phq9"]
    scores = {i["linkId"]: i["answer"] for i in phq4_group(on)["item"] if i["linkId"].endswith("-score")}
    assert scores == {"phq4-anxiety-score": [{"valueInteger": 1}], "phq4-depression-score": [{"valueInteger": 3}]}
    # the nine answers, then the hidden calculated total (forms/stress.json 1.1.0)
    assert [i["linkId"] for i in on["item"][2]["item"]] == [f"phq9-{n}" for n in range(1, 10)] + ["phq9-total"]
    assert validate(f, on) == []

    # the stored response comes back (with its stale score 3); PHQ-4 item 3 is lowered to 1
    again = flatten(on)
    assert again["phq4-depression-score"] == [{"valueInteger": 3}]
    again["phq4-3"] = frequency(SEVERAL)
    off = build(f, again)
    assert [i["linkId"] for i in off["item"]] == ["stress-pss10", "stress-phq4"]
    scores = {i["linkId"]: i["answer"] for i in phq4_group(off)["item"] if i["linkId"].endswith("-score")}
    assert scores == {"phq4-anxiety-score": [{"valueInteger": 1}], "phq4-depression-score": [{"valueInteger": 2}]}
    assert not any(k.startswith("phq9-") for k in flatten(off))
    assert validate(f, off) == []

    # and on again: the dropped PHQ-9 answers do not come back by themselves; items 1-2 are PHQ-4's
    # own questions, carried forward (stress 1.3.0), so only items 3-9 are missing
    again = flatten(off)
    again["phq4-3"] = frequency(NEARLY_EVERY)
    back = build(f, again, status="in-progress")
    assert [i["linkId"] for i in back["item"]] == ["stress-pss10", "stress-phq4", "stress-phq9"]
    carried = {i["linkId"]: i["answer"][0]["valueCoding"]["code"] for i in back["item"][2]["item"]}
    assert carried == {"phq9-1": again["phq4-4"][0]["valueCoding"]["code"], "phq9-2": NEARLY_EVERY}
    issues = validate(f, back)
    assert [(i.severity, i.link_id) for i in issues] == [("warning", f"phq9-{n}") for n in range(3, 10)]


def test_reflex_threshold_is_3_not_2():
    f = stress()
    kept, enabled = compute(f, stress_answers(SEVERAL, SEVERAL))
    assert kept["phq4-depression-score"] == [{"valueInteger": 2}]
    assert "stress-phq9" not in enabled and "stress-gad7" not in enabled
    kept, enabled = compute(f, stress_answers(NEARLY_EVERY, NOT_AT_ALL))
    assert kept["phq4-depression-score"] == [{"valueInteger": 3}]
    assert "stress-phq9" in enabled and "stress-gad7" not in enabled


def test_missing_phq4_item_gives_no_score_and_no_reflex():
    f = stress()
    answers = stress_answers(NEARLY_EVERY, NEARLY_EVERY)
    del answers["phq4-4"]
    kept, enabled = compute(f, answers)
    assert "phq4-depression-score" not in kept  # empty + 3 is empty, not 3
    assert "stress-phq9" not in enabled

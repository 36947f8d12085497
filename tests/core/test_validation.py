"""validate() / operation_outcome(): a QuestionnaireResponse against its Questionnaire."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from intake.core import validation
from intake.core.catalog import load_catalog
from intake.core.fhir_models import OperationOutcome, model_errors
from intake.core.validation import (
    Issue,
    constraints,
    current_date,
    has_errors,
    operation_outcome,
    validate,
)
from tests.core.factories import (
    CANONICAL,
    FORMS,
    LOINC,
    MAX_VALUE,
    MIN_VALUE,
    REGEX,
    UCUM,
    URL,
    coding,
    ext,
    form,
    group,
    node,
    option,
    question,
    response,
    when,
)


def issues(f, resource):
    return [(i.severity, i.code, i.link_id, i.message) for i in validate(f, resource)]


def one(link_id, *answers, **kw):
    return response(node("g", items=[node(link_id, *answers)]), **kw)


def single(kind, **fields):
    return form(group("g", question("q", kind, **fields)))


# ------------------------------------------------------------------ status and required


def required_form():
    return form(group("g", question("name", "string", required=True), question("age", "integer")))


def test_complete_response_is_clean():
    f = required_form()
    assert issues(f, one("name", {"valueString": "Ann"})) == []


def test_missing_required_is_a_warning_in_progress():
    f = required_form()
    assert issues(f, one("age", {"valueInteger": 40}, status="in-progress")) == [
        ("warning", "required", "name", "an answer is required")
    ]
    assert issues(f, response(status="in-progress")) == [("warning", "required", "name", "an answer is required")]


@pytest.mark.parametrize("status", ["completed", "amended"])
def test_missing_required_is_an_error_otherwise(status):
    f = required_form()
    assert issues(f, one("age", {"valueInteger": 40}, status=status)) == [
        ("error", "required", "name", "an answer is required")
    ]


def test_required_group_needs_some_answer():
    f = form(group("g", question("a", "string"), question("b", "string"), required=True))
    assert issues(f, response()) == [("error", "required", "g", "required group has no answers")]
    assert issues(f, one("b", {"valueString": "x"})) == []


def test_read_only_required_is_not_asked():
    f = form(group("g", question("a", "string"), question("calc", "integer", required=True, readOnly=True)))
    assert issues(f, one("a", {"valueString": "x"})) == []


@pytest.mark.parametrize("status", [None, "done", "draft"])
def test_bad_status(status):
    f = required_form()
    resource = one("name", {"valueString": "Ann"})
    if status is None:
        del resource["status"]
    else:
        resource["status"] = status
    found = issues(f, resource)
    assert found[0] == ("error", "value", None, f"status {status!r} is not a QuestionnaireResponse status")


def test_not_a_questionnaire_response():
    f = required_form()
    assert issues(f, {"resourceType": "Patient"}) == [("error", "structure", None, "not a QuestionnaireResponse")]
    assert issues(f, ["x"]) == [("error", "structure", None, "not a QuestionnaireResponse")]


@pytest.mark.parametrize("ref", [CANONICAL, URL])
def test_questionnaire_reference_accepted(ref):
    assert issues(required_form(), one("name", {"valueString": "A"}, questionnaire_ref=ref)) == []


@pytest.mark.parametrize("ref", [f"{URL}|2.0.0", "Questionnaire/test", "https://elsewhere.org/Questionnaire/test"])
def test_questionnaire_reference_rejected(ref):
    assert issues(required_form(), one("name", {"valueString": "A"}, questionnaire_ref=ref)) == [
        ("error", "invalid", None, f"questionnaire {ref!r} is not {CANONICAL}")
    ]


# ------------------------------------------------------------------ answer types and options


@pytest.mark.parametrize(
    ("kind", "answer", "key"),
    [
        ("boolean", {"valueString": "true"}, "valueString"),
        ("integer", {"valueDecimal": 1.5}, "valueDecimal"),
        ("integer", {"valueString": "3"}, "valueString"),
        ("decimal", {"valueInteger": 3}, "valueInteger"),
        ("date", {"valueDateTime": "2024-05-01T10:00:00Z"}, "valueDateTime"),
        ("string", {"valueInteger": 3}, "valueInteger"),
        ("quantity", {"valueDecimal": 70.0}, "valueDecimal"),
        ("dateTime", {"valueDate": "2024-05-01"}, "valueDate"),
    ],
)
def test_wrong_answer_type(kind, answer, key):
    assert issues(single(kind), one("q", answer)) == [
        ("error", "value", "q", f"{key} is not an answer to a {kind} item")
    ]


YES_NO = [option("LA33-6", display="Yes"), option("LA32-8", display="No")]


def test_choice_bool_for_choice():
    f = single("choice", answerOption=YES_NO)
    assert issues(f, one("q", {"valueBoolean": True})) == [
        ("error", "value", "q", "valueBoolean is not an answer to a choice item")
    ]


def test_choice_in_options():
    f = single("choice", answerOption=YES_NO)
    assert issues(f, one("q", {"valueCoding": coding("LA33-6", display="Yes")})) == []
    assert issues(f, one("q", {"valueCoding": coding("LA33-6")})) == []  # display is optional


@pytest.mark.parametrize(
    "tampered",
    [
        coding("LA6571-9"),  # a code that is not an option
        coding("LA33-6", "http://snomed.info/sct"),  # system mismatch
        coding("LA33-6", None),  # system dropped
    ],
)
def test_choice_code_not_in_options(tampered):
    f = single("choice", answerOption=YES_NO)
    assert issues(f, one("q", {"valueCoding": tampered})) == [
        ("error", "code-invalid", "q", "is not one of the allowed answers")
    ]


def test_option_without_system_does_not_accept_one_with_system():
    f = single("choice", answerOption=[option("a", system=None)])
    assert issues(f, one("q", {"valueCoding": coding("a", None)})) == []
    assert issues(f, one("q", {"valueCoding": coding("a", "urn:added")})) == [
        ("error", "code-invalid", "q", "is not one of the allowed answers")
    ]


def test_choice_free_text_rejected():
    f = single("choice", answerOption=YES_NO)
    assert issues(f, one("q", {"valueString": "Maybe"})) == [
        ("error", "value", "q", "a choice item takes one of its options, not free text")
    ]


def test_open_choice_free_text_ok_but_codes_still_checked():
    f = single("open-choice", answerOption=YES_NO)
    assert issues(f, one("q", {"valueString": "Only on Sundays"})) == []
    assert issues(f, one("q", {"valueCoding": coding("LA32-8")})) == []
    assert issues(f, one("q", {"valueCoding": coding("LA9999-9")})) == [
        ("error", "code-invalid", "q", "is not one of the allowed answers")
    ]


def test_integer_options():
    f = single("integer", answerOption=[{"valueInteger": 1}, {"valueInteger": 2}])
    assert issues(f, one("q", {"valueInteger": 2})) == []
    assert issues(f, one("q", {"valueInteger": 3})) == [
        ("error", "code-invalid", "q", "is not one of the allowed answers")
    ]


def test_answer_without_value():
    assert issues(single("string"), one("q", {})) == [("error", "required", "q", "answer has no value")]


# ------------------------------------------------------------------ structure


def test_two_answers_on_non_repeating():
    f = single("string")
    assert issues(f, one("q", {"valueString": "a"}, {"valueString": "b"})) == [
        ("error", "structure", "q", "more than one answer to a question that does not repeat")
    ]
    assert issues(single("string", repeats=True), one("q", {"valueString": "a"}, {"valueString": "b"})) == []


def test_unknown_link_id():
    f = single("string")
    resource = response(node("g", items=[node("q", {"valueString": "a"}), node("zz", {"valueString": "b"}, text=None)]))
    assert issues(f, resource) == [("error", "structure", "zz", "linkId 'zz' is not in the Questionnaire")]


def nested_form():
    return form(
        group("g", question("a", "string"), question("b", "string")),
        group("h", question("c", "boolean", question("d", "integer"))),
    )


def test_wrong_nesting_item_at_the_top_level():
    resource = response(node("a", {"valueString": "x"}))
    assert issues(nested_form(), resource) == [
        ("error", "structure", "a", "item is at the top level, which is not where the Questionnaire has it")
    ]


def test_wrong_nesting_item_under_another_group():
    resource = response(node("h", items=[node("a", {"valueString": "x"})]))
    assert issues(nested_form(), resource) == [
        ("error", "structure", "a", "item is under 'h', which is not where the Questionnaire has it")
    ]


def test_question_children_must_go_under_answer():
    wrong = response(node("h", items=[node("c", {"valueBoolean": True}, items=[node("d", {"valueInteger": 1})])]))
    assert issues(nested_form(), wrong) == [("error", "structure", "c", "children of a question go under answer.item")]
    right = response(node("h", items=[node("c", {"valueBoolean": True, "item": [node("d", {"valueInteger": 1})]})]))
    assert issues(nested_form(), right) == []


def test_out_of_order():
    resource = response(node("g", items=[node("b", {"valueString": "y"}), node("a", {"valueString": "x"})]))
    assert issues(nested_form(), resource) == [("error", "structure", "a", "item is out of the Questionnaire's order")]
    groups = response(
        node("h", items=[node("c", {"valueBoolean": False})]), node("g", items=[node("a", {"valueString": "x"})])
    )
    assert issues(nested_form(), groups) == [("error", "structure", "g", "item is out of the Questionnaire's order")]


def test_duplicate_item():
    resource = response(node("g", items=[node("a", {"valueString": "x"}), node("a", {"valueString": "y"})]))
    assert issues(nested_form(), resource) == [("error", "structure", "a", "item appears more than once")]


def test_text_mismatch_and_missing_text():
    tampered = response(node("g", items=[node("a", {"valueString": "x"}, text="Something else")]))
    assert issues(nested_form(), tampered) == [
        ("error", "value", "a", "item.text differs from the Questionnaire's text")
    ]
    assert issues(nested_form(), response(node("g", items=[node("a", {"valueString": "x"}, text=None)]))) == []


def test_answers_on_a_group_or_display():
    f = form(group("g", question("intro", "display"), question("a", "string")))
    resource = response(node("g", {"valueString": "x"}, items=[node("intro", {"valueString": "y"})]))
    assert issues(f, resource) == [
        ("error", "structure", "g", "a group item cannot have answers"),
        ("error", "structure", "intro", "a display item cannot have answers"),
    ]


# ------------------------------------------------------------------ values


@pytest.mark.parametrize(
    ("kind", "limits", "value", "expected"),
    [
        ("integer", {"min": {"valueInteger": 1}, "max": {"valueInteger": 10}}, {"valueInteger": 1}, []),
        ("integer", {"min": {"valueInteger": 1}, "max": {"valueInteger": 10}}, {"valueInteger": 10}, []),
        ("integer", {"min": {"valueInteger": 1}}, {"valueInteger": 0}, ["must be at least 1"]),
        ("integer", {"max": {"valueInteger": 10}}, {"valueInteger": 11}, ["must be at most 10"]),
        ("decimal", {"min": {"valueDecimal": 0.5}}, {"valueDecimal": 0.49}, ["must be at least 0.5"]),
        ("decimal", {"max": {"valueDecimal": 2.5}}, {"valueDecimal": 2.5}, []),
        ("date", {"min": {"valueDate": "1900-01-01"}}, {"valueDate": "1899-12-31"}, ["must be at least 1900-01-01"]),
        ("date", {"max": {"valueDate": "2024-12-31"}}, {"valueDate": "2025-01-01"}, ["must be at most 2024-12-31"]),
        (
            "quantity",
            {"max": {"valueQuantity": {"value": 300, "system": UCUM, "code": "kg"}}},
            {"valueQuantity": {"value": 301, "unit": "kg", "system": UCUM, "code": "kg"}},
            ["must be at most 300"],
        ),
    ],
)
def test_min_max_value(kind, limits, value, expected):
    extensions = []
    if "min" in limits:
        extensions.append(ext(MIN_VALUE, **limits["min"]))
    if "max" in limits:
        extensions.append(ext(MAX_VALUE, **limits["max"]))
    f = single(kind, extension=extensions)
    assert issues(f, one("q", value)) == [("error", "value", "q", m) for m in expected]


def test_max_length():
    f = single("string", maxLength=5)
    assert issues(f, one("q", {"valueString": "12345"})) == []
    assert issues(f, one("q", {"valueString": "123456"})) == [("error", "value", "q", "is longer than 5 characters")]


def test_regex_must_match_the_whole_answer():
    f = single("string", extension=[ext(REGEX, valueString=r"[0-9]{5}")])
    assert issues(f, one("q", {"valueString": "12345"})) == []
    for bad in ("1234", "123456", "12345x", "x12345"):
        assert issues(f, one("q", {"valueString": bad})) == [("error", "value", "q", "is not in the expected format")]


@pytest.mark.parametrize("value", ["a\x00b", "bell\x07", "esc\x1b[2J", "del\x7f"])
def test_control_characters(value):
    assert issues(single("string"), one("q", {"valueString": value})) == [
        ("error", "value", "q", "contains control characters")
    ]


def test_tabs_and_newlines_are_not_control_characters():
    assert issues(single("text"), one("q", {"valueString": "line 1\r\n\tline 2"})) == []


def test_invalid_date_names_the_item():
    found = issues(single("date"), one("q", {"valueDate": "2021-02-30"}))
    assert len(found) == 1
    severity, _code, link_id, message = found[0]
    assert (severity, link_id) == ("error", "q")
    assert message.startswith("answer.0.valueDate: ")
    assert "day value is outside expected range" in message


@pytest.mark.parametrize("value", ["2021-02-28", "2024-02-29", "2024-05", "2024"])
def test_valid_and_partial_dates(value):
    assert issues(single("date"), one("q", {"valueDate": value})) == []


@pytest.mark.parametrize("value", ["2024-05-01T10:00:00", "2024-05-01T10:00Z", "2024-05-01 10:00:00Z"])
def test_datetime_without_timezone_or_seconds(value):
    found = issues(single("dateTime"), one("q", {"valueDateTime": value}))
    assert [(s, lid) for s, _, lid, _ in found] == [("error", "q")]
    assert found[0][3].startswith("answer.0.valueDateTime: ")


@pytest.mark.parametrize(
    "value", ["2024-05-01T10:00:00Z", "2024-05-01T10:00:00+02:00", "2024-05-01T10:00:00.123-05:00", "2024-05-01"]
)
def test_valid_datetime(value):
    assert issues(single("dateTime"), one("q", {"valueDateTime": value})) == []


def test_structure_error_deep_in_the_tree_names_the_item():
    f = nested_form()
    resource = response(
        node("h", items=[node("c", {"valueBoolean": True, "item": [node("d", {"valueInteger": "many"})]})])
    )
    found = issues(f, resource)
    assert [(s, c, lid) for s, c, lid, _ in found] == [("error", "structure", "d")]
    assert found[0][3].startswith("answer.0.valueInteger: ")


def test_integer_out_of_32_bit_range():
    found = issues(single("integer"), one("q", {"valueInteger": 2**31}))
    assert [(s, lid) for s, _, lid, _ in found] == [("error", "q")]


# ------------------------------------------------------------------ enablement


def enable_form():
    return form(
        group(
            "g",
            question("smoker", "boolean", required=True),
            question("packs", "integer", required=True, enableWhen=[when("smoker", "=", answerBoolean=True)]),
        )
    )


def test_answer_to_a_disabled_item():
    resource = response(node("g", items=[node("smoker", {"valueBoolean": False}), node("packs", {"valueInteger": 3})]))
    assert issues(enable_form(), resource) == [
        ("error", "business-rule", "packs", "is answered but not enabled by the earlier answers")
    ]


def test_enabled_required_missing():
    resource = response(node("g", items=[node("smoker", {"valueBoolean": True})]))
    assert issues(enable_form(), resource) == [("error", "required", "packs", "an answer is required")]


def test_disabled_required_is_not_required():
    resource = response(node("g", items=[node("smoker", {"valueBoolean": False})]))
    assert issues(enable_form(), resource) == []


def test_problems_come_in_document_order_tree_first():
    f = form(
        group(
            "g",
            question("a", "string", required=True),
            question("b", "string", maxLength=1),
            question("c", "integer", required=True),
        )
    )
    resource = response(node("g", items=[node("b", {"valueString": "long"})]))
    assert issues(f, resource) == [
        ("error", "value", "b", "is longer than 1 characters"),
        ("error", "required", "a", "an answer is required"),
        ("error", "required", "c", "an answer is required"),
    ]


# ------------------------------------------------------------------ OperationOutcome


def test_operation_outcome_shape():
    outcome = operation_outcome(
        [
            Issue("error", "required", "packs", "an answer is required"),
            Issue("warning", "value", None, "status 'x' is not a QuestionnaireResponse status"),
        ]
    )
    assert outcome == {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "required",
                "diagnostics": "Item 'packs': an answer is required",
                "expression": ["QuestionnaireResponse.repeat(item).where(linkId='packs')"],
            },
            {
                "severity": "warning",
                "code": "value",
                "diagnostics": "status 'x' is not a QuestionnaireResponse status",
            },
        ],
    }


def test_operation_outcome_all_ok():
    assert operation_outcome([]) == {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "informational", "diagnostics": "No issues found"}],
    }


def test_operation_outcome_is_valid_fhir():

    resource = response(node("g", items=[node("smoker", {"valueBoolean": False}), node("packs", {"valueInteger": 3})]))
    assert model_errors(OperationOutcome, operation_outcome(validate(enable_form(), resource))) == []
    assert model_errors(OperationOutcome, operation_outcome([])) == []


def test_has_errors():
    assert has_errors([Issue("warning", "required", "a", "x")]) is False
    assert has_errors([Issue("warning", "required", "a", "x"), Issue("error", "value", "b", "y")]) is True
    assert has_errors([]) is False


def test_structure_error_outside_the_items_has_no_link_id():
    resource = one("q", {"valueString": "x"})
    resource["subject"] = "Patient/p1"
    found = issues(single("string"), resource)
    assert [(s, c, lid) for s, c, lid, _ in found] == [("error", "structure", None)]
    assert found[0][3].startswith("subject: ")


def test_item_without_link_id_is_reported_on_its_parent():
    resource = response(node("g", items=[{"text": "x", "answer": [{"valueString": "y"}]}]))
    assert issues(single("string"), resource) == [
        ("error", "structure", "g", "item.0.linkId: Value for the field 'linkId' is required.")
    ]


def test_answers_to_a_reflex_switched_off_by_the_real_scores():
    f = load_catalog(FORMS).by_key["stress"]

    def freq(code):
        return [{"valueCoding": {"system": LOINC, "code": code}}]

    answers = {f"pss10-{n}": freq("LA6270-8") for n in range(1, 11)}
    answers.update({f"phq4-{n}": freq("LA6568-5") for n in range(1, 5)})
    # a client claims a depression score of 3 and answers PHQ-9; the items add up to 0
    answers["phq4-depression-score"] = [{"valueInteger": 3}]
    answers.update({f"phq9-{n}": freq("LA6569-3") for n in range(1, 10)})
    items = []
    for top in f.items:
        children = []
        for child in top.children:
            if child.link_id in answers:
                children.append({"linkId": child.link_id, "text": child.text, "answer": answers[child.link_id]})
        if children:
            items.append({"linkId": top.link_id, "text": top.text, "item": children})
    found = issues(f, response(*items, questionnaire_ref=f.canonical))
    assert found == [
        ("error", "business-rule", f"phq9-{n}", "is answered but not enabled by the earlier answers")
        for n in range(1, 10)
    ]


# ------------------------------------------------------------------ limits given by an expression

CQF = "http://hl7.org/fhir/StructureDefinition/cqf-expression"
CONSTRAINT = "http://hl7.org/fhir/StructureDefinition/questionnaire-constraint"
TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
TODAY = date(2024, 6, 1)
BORN = date(1970, 5, 1)


def dynamic(url, expression, key="_valueDate", **static):
    return {
        "url": url,
        **static,
        key: {"extension": [{"url": CQF, "valueExpression": {"language": "text/fhirpath", "expression": expression}}]},
    }


def dated(kind="date", *extensions):
    return single(kind, extension=list(extensions) or [dynamic(MIN_VALUE, "%birthDate"), dynamic(MAX_VALUE, "today()")])


def date_messages(f, value, key="valueDate", **kw):
    return [i.message for i in validate(f, one("q", {key: value}), **kw)]


FUTURE = "is in the future: must be today (2024-06-01) or earlier"
BEFORE_BIRTH = "is before the patient's date of birth"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1969", [BEFORE_BIRTH]), ("1970", []), ("1971", []),  # year: the birth year is allowed
        ("1970-04", [BEFORE_BIRTH]), ("1970-05", []),  # month
        ("1970-04-30", [BEFORE_BIRTH]), ("1970-05-01", []),  # day
        ("2024", []), ("2025", [FUTURE]),  # this year allowed, next year not
        ("2024-06", []), ("2024-07", [FUTURE]),
        ("2024-06-01", []), ("2024-06-02", [FUTURE]),
    ],
)
def test_date_limits_at_the_precision_of_the_answer(value, expected):
    assert date_messages(dated(), value, birth_date=BORN, today=TODAY) == expected


def test_birth_date_may_be_text_and_unknown_means_no_lower_limit():
    f = dated()
    assert date_messages(f, "1970-04", birth_date="1970-05-01", today=TODAY) == [BEFORE_BIRTH]
    assert date_messages(f, "1800-01-01", today=TODAY) == []
    assert date_messages(f, "1800-01-01", birth_date=None, today=TODAY) == []


def test_today_is_read_at_each_validation(monkeypatch):

    f = dated()
    monkeypatch.setattr(validation, "current_date", lambda: date(2030, 12, 31))
    assert date_messages(f, "2031-01-01") == ["is in the future: must be today (2030-12-31) or earlier"]
    monkeypatch.setattr(validation, "current_date", lambda: date(2031, 1, 1))
    assert date_messages(f, "2031-01-01") == []


def test_the_default_today_is_never_before_the_patients_today():

    assert current_date() >= datetime.now(UTC).date()
    assert date_messages(dated(), date.today().isoformat()) == []


def test_date_time_answers_are_judged_on_their_day():
    f = dated("dateTime", dynamic(MAX_VALUE, "today()", key="_valueDateTime"))
    assert date_messages(f, "2024-06-01T23:30:00-05:00", "valueDateTime", today=TODAY) == []
    assert date_messages(f, "2024-06-02T00:10:00+02:00", "valueDateTime", today=TODAY) == [FUTURE]
    assert date_messages(f, "2025", "valueDateTime", today=TODAY) == [FUTURE]


def test_other_expressions_give_a_plain_limit():
    f = dated("date", dynamic(MIN_VALUE, "today() - 1 year"))
    assert date_messages(f, "2023-05-31", today=TODAY) == ["must be at least 2023-06-01"]
    assert date_messages(f, "2023-06", today=TODAY) == []


def test_an_expression_wins_over_the_fixed_value_which_applies_when_it_has_none():
    f = dated("date", dynamic(MIN_VALUE, "%birthDate", valueDate="1900-01-01"))
    assert date_messages(f, "1950", birth_date=BORN, today=TODAY) == [BEFORE_BIRTH]
    assert date_messages(f, "1950", today=TODAY) == []
    assert date_messages(f, "1899", today=TODAY) == ["must be at least 1900-01-01"]


@pytest.mark.parametrize(
    ("limit", "value", "expected"),
    [
        ({"min": "2000"}, "2000-01-01", []),  # a fixed partial-date limit at the common precision
        ({"min": "2000-06-15"}, "2000-06", []),
        ({"min": "2000-06-15"}, "2000-05", ["must be at least 2000-06-15"]),
        ({"max": "2000-06"}, "2000-06-30", []),
        ({"max": "2000-06"}, "2000-07-01", ["must be at most 2000-06"]),
    ],
)
def test_fixed_date_limits_compare_at_the_common_precision(limit, value, expected):
    extensions = [ext(MIN_VALUE if "min" in limit else MAX_VALUE, valueDate=next(iter(limit.values())))]
    assert date_messages(single("date", extension=extensions), value) == expected


# ------------------------------------------------------------------ questionnaire-constraint


def constraint(key, expression, human, *, severity="error", location=None, spanish=None):
    parts = [{"url": "key", "valueId": key}, {"url": "severity", "valueCode": severity},
             {"url": "expression", "valueString": expression}, {"url": "human", "valueString": human}]
    if spanish:
        parts[3]["_valueString"] = {"extension": [{"url": TRANSLATION, "extension": [
            {"url": "lang", "valueCode": "es"}, {"url": "content", "valueString": spanish}]}]}
    if location:
        parts.append({"url": "location", "valueString": location})
    return {"url": CONSTRAINT, "extension": parts}


PERCENT = ("(item.where(linkId='hard').answer.value | 0).first() "
           "+ (item.where(linkId='loose').answer.value | 0).first() <= 100")


def bowel_form(**kw):
    rule = constraint("bowel-pct", PERCENT, "Together at most 100%", spanish="Juntos como mucho 100 %", **kw)
    return form(group("g", question("hard", "integer"), question("loose", "integer"), extension=[rule]))


def percentages(hard=None, loose=None):
    answers = [node(k, {"valueInteger": v}) for k, v in (("hard", hard), ("loose", loose)) if v is not None]
    return response(node("g", items=answers)) if answers else response()


@pytest.mark.parametrize(("hard", "loose"), [(60, 40), (100, None), (None, 100), (0, 0), (None, None)])
def test_constraint_holds(hard, loose):
    assert issues(bowel_form(location="loose"), percentages(hard, loose)) == []


def test_constraint_fails_at_its_location():
    assert issues(bowel_form(location="loose"), percentages(60, 50)) == [
        ("error", "invariant", "loose", "Together at most 100% (constraint 'bowel-pct')")
    ]


def test_constraint_without_location_names_its_group():
    assert [i[2] for i in issues(bowel_form(), percentages(60, 50))] == ["g"]


def test_constraint_fails_in_progress_too():
    draft = {**percentages(99, 2), "status": "in-progress"}
    assert [i[:3] for i in issues(bowel_form(location="loose"), draft)] == [("error", "invariant", "loose")]


def test_constraint_of_severity_warning_does_not_refuse():
    rule = constraint("hint", "item.where(linkId='hard').answer.value.first() != 100", "All hard?", severity="warning")
    f = form(group("g", question("hard", "integer"), extension=[rule]))
    found = validate(f, response(node("g", items=[node("hard", {"valueInteger": 100})])))
    assert [(i.severity, i.code) for i in found] == [("warning", "invariant")] and not has_errors(found)


def test_constraint_message_in_the_patients_language():

    (rule,) = constraints(bowel_form())
    assert (rule.message("es"), rule.message("en"), rule.message(None), rule.message("fr")) == (
        "Juntos como mucho 100 %", "Together at most 100%", "Together at most 100%", "Together at most 100%")


def test_constraint_on_the_questionnaire_sees_the_whole_response_and_the_birth_date():
    rule = constraint("after-birth", "%resource.repeat(item).where(linkId='onset').answer.value >= %birthDate.toDate()",
                      "Not before birth", location="onset")
    f = form(group("g", question("onset", "date")), extension=[rule])
    before = one("onset", {"valueDate": "1960-01-01"})
    assert issues(f, before) == []  # unknown birth date: the comparison is empty, not false
    assert [i[1:3] for i in validate_tuples(f, before, birth_date=BORN)] == [("invariant", "onset")]
    assert validate_tuples(f, one("onset", {"valueDate": "1980-01-01"}), birth_date=BORN) == []


def validate_tuples(f, resource, **kw):
    return [(i.severity, i.code, i.link_id, i.message) for i in validate(f, resource, **kw)]


def test_constraint_that_cannot_be_evaluated_is_a_warning_not_a_refusal():
    rule = constraint("odd", "item.where(linkId='hard').answer.value + 'x' > 1", "never shown")
    f = form(group("g", question("hard", "integer"), extension=[rule]))
    found = validate(f, response(node("g", items=[node("hard", {"valueInteger": 1})])))
    assert not has_errors(found)
    assert all(i.code == "exception" for i in found)


def test_constraint_on_a_group_not_in_the_response_is_not_checked():
    rule = constraint("never", "false", "always fails")
    f = form(group("g", question("a", "string"), extension=[rule]), group("h", question("b", "string")))
    assert issues(f, response(node("h", items=[node("b", {"valueString": "x"})]))) == []
    assert [i[2] for i in issues(f, one("a", {"valueString": "x"}))] == ["g"]


def test_constraint_issue_in_operation_outcome():
    outcome = operation_outcome(validate(bowel_form(location="loose"), percentages(60, 50)))
    assert outcome["issue"] == [{
        "severity": "error", "code": "invariant",
        "diagnostics": "Item 'loose': Together at most 100% (constraint 'bowel-pct')",
        "expression": ["QuestionnaireResponse.repeat(item).where(linkId='loose')"],
    }]


# ------------------------------------------------------------------ optionExclusive

EXCLUSIVE = "http://hl7.org/fhir/StructureDefinition/questionnaire-optionExclusive"


def relatives_form():
    none = option("none", display="None of these")
    none["extension"] = [{"url": EXCLUSIVE, "valueBoolean": True}]
    return form(group("g", question("rel", "choice", repeats=True, answerOption=[
        option("mother", display="Mother"), option("father", display="Father"), none])))


def answer(code, display):
    return {"valueCoding": {"system": LOINC, "code": code, "display": display}}


def test_an_exclusive_option_with_another_is_refused():
    f = relatives_form()
    both = one("rel", answer("mother", "Mother"), answer("none", "None of these"))
    found = validate(f, both)
    assert [(i.severity, i.code, i.link_id) for i in found] == [("error", "business-rule", "rel")]
    assert "'None of these' cannot be given together with other answers" in found[0].message
    assert found[0].rule == "exclusive:none"  # the option's code: the page words it in its language


def test_an_exclusive_option_alone_or_other_options_together_are_fine():
    f = relatives_form()
    assert issues(f, one("rel", answer("none", "None of these"))) == []
    assert issues(f, one("rel", answer("mother", "Mother"), answer("father", "Father"))) == []

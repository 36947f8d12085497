"""intake/web/forms called directly: the page form class a Questionnaire page becomes, each item
type's parsing and its messages, and stored answers <-> field data. No app and no HTTP: WTForms
and the messages' gettext work outside a request (the words are then the base language's)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from werkzeug.datastructures import FileStorage, MultiDict

from intake.core.enablement import Answers
from intake.core.items import Form, build_form
from intake.core.translations import localize
from intake.core.validation import validate
from intake.web.forms import (
    ChoiceInput,
    LongText,
    MultiChoiceInput,
    PageForm,
    TextInput,
    anchor,
    field_name,
    form_data,
    page_answers,
    page_form_class,
    patient_message,
)
from tests.core.factories import (
    ENABLE_WHEN_EXPRESSION,
    FHIR_EXT,
    HIDDEN,
    MAX_VALUE,
    MIN_VALUE,
    REGEX,
    UCUM,
    expression,
    ext,
    form,
    group,
    node,
    option,
    question,
    questionnaire,
    response,
    when,
)

ENTRY_FORMAT = FHIR_EXT + "entryFormat"
UNIT_OPTION = FHIR_EXT + "questionnaire-unitOption"
CQF = FHIR_EXT + "cqf-expression"


def one(item: dict[str, Any]) -> Form:
    """A one-page form holding `item` (linkId "q") under the group "page"."""
    return form(group("page", item))


def posted(built: Form, data: dict[str, Any], *, enabled: set[str] | None = None, **kwargs: Any) -> PageForm:
    """The page form of `built`'s first page, posted `data` (keys are linkIds) and validated."""
    cls = page_form_class(built, built.pages[0])
    formdata: MultiDict[str, Any] = MultiDict()
    for link_id, value in data.items():
        for v in value if isinstance(value, list) else [value]:
            formdata.add(field_name(link_id) if not link_id.startswith("q-") else link_id, v)
    page = cls(formdata, **kwargs)
    page.enabled = enabled if enabled is not None else {i.link_id for i in built.walk()}
    page.validate()
    return page


def errors(page: PageForm) -> dict[str, list[str]]:
    return {name: list(page[name].errors) for name in page.field_items if page[name].errors}


def message(item: dict[str, Any], value: Any, **kwargs: Any) -> str | None:
    """The message beside question "q" when `value` is posted for it (None: accepted)."""
    page = posted(one(item), {"q": value}, **kwargs)
    found = page[field_name("q")].errors
    return found[0] if found else None


# --- field names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("link_id", "name"), [
    ("q1", "q-q1"), ("/44250-9", "q-_44250-9"), ("a.b c", "q-a_b_c"), ("dx_1-b", "q-dx_1-b"), ("é", "q-_"),
])
def test_field_name_is_html_safe(link_id: str, name: str) -> None:
    assert field_name(link_id) == name


# --- the page form class --------------------------------------------------------------------------


def test_page_form_class_has_a_field_per_answerable_question() -> None:
    built = form(group(
        "page",
        question("shown", "string"),
        question("note", "display"),
        question("calc", "integer", readOnly=True),
        question("secret", "string", extension=[ext(HIDDEN, valueBoolean=True)]),
        question("pick", "open-choice", answerOption=[option("a"), option("b")]),
        question("weight", "quantity", extension=[ext(UNIT_OPTION, valueCoding={"system": UCUM, "code": "kg"}),
                                                  ext(UNIT_OPTION, valueCoding={"system": UCUM, "code": "[lb_av]"})]),
        question("height", "quantity", extension=[ext(UNIT_OPTION, valueCoding={"system": UCUM, "code": "cm"})]),
        group("inner", question("nested", "boolean")),
    ))
    cls = page_form_class(built, built.pages[0])
    assert list(cls.field_items) == ["q-shown", "q-pick", "q-weight", "q-height", "q-nested"]
    assert cls.other_fields == {"q-pick": "q-pick-other"} and cls.unit_fields == {"q-weight": "q-weight-unit"}
    assert cls.qform is built and cls.page is built.pages[0]
    page = cls()
    assert isinstance(page["q-shown"], TextInput) and isinstance(page["q-pick"], ChoiceInput)
    assert isinstance(page["q-pick-other"], TextInput) and isinstance(page["q-weight-unit"], ChoiceInput)
    assert page["q-weight-unit"].choices == [("kg", "kg"), ("[lb_av]", "[lb_av]")]
    assert isinstance(page["q-nested"], ChoiceInput) and page["q-nested"].choices == [("true", "Yes"), ("false", "No")]


def test_field_kinds_follow_the_item_type() -> None:
    built = form(group("page", question("t", "text"), question("m", "choice", repeats=True,
                                                               answerOption=[option("a")])))
    page = page_form_class(built, built.pages[0])()
    assert isinstance(page["q-t"], LongText) and isinstance(page["q-m"], MultiChoiceInput)


def test_the_class_is_built_once_per_loaded_form() -> None:
    first, second = one(question("q", "string")), one(question("q", "string"))
    cls = page_form_class(first, first.pages[0])
    assert page_form_class(first, first.pages[0]) is cls
    assert page_form_class(second, second.pages[0]) is not cls  # kept on each form, not by url|version


# --- the enablement gate and required answers ---------------------------------------------------


@pytest.mark.parametrize(("item", "expected"), [
    (question("q", "string", required=True), "Enter an answer"),
    (question("q", "integer", required=True), "Enter an answer"),
    (question("q", "boolean", required=True), "Select an answer"),
    (question("q", "choice", required=True, answerOption=[option("a")]), "Select an answer"),
    (question("q", "choice", required=True, repeats=True, answerOption=[option("a")]), "Select at least one answer"),
    (question("q", "string"), None),
])
def test_a_missing_required_answer_is_named_by_its_kind(item: dict[str, Any], expected: str | None) -> None:
    assert message(item, []) == expected  # nothing posted, as a browser sends an unanswered question


def test_a_disabled_question_is_not_checked_at_all() -> None:
    built = form(group("page", question("a", "boolean"),
                       question("q", "integer", required=True, enableWhen=[when("a", "=", answerBoolean=True)])))
    page = posted(built, {"a": "false", "q": "not a number"}, enabled={"page", "a"})
    assert errors(page) == {}
    page = posted(built, {"a": "true", "q": "not a number"}, enabled={"page", "a", "q"})
    assert errors(page) == {"q-q": ["Enter a whole number, like 3"]}


@pytest.mark.parametrize(("item", "value", "expected"), [
    (question("q", "string"), ["a", "b"], "Give only one answer"),
    (question("q", "string"), FileStorage(filename="x.txt"), "Type your answer; files cannot be sent here"),
    (question("q", "choice", answerOption=[option("a"), option("b")]), "c", "Select one of the options shown"),
    (question("q", "choice", repeats=True, answerOption=[option("a"), option("b")]), ["a", "c"],
     "Select only the options shown"),
    (question("q", "choice", repeats=True, answerOption=[option("a"), option("b")]), ["a", "a"],
     "Select each answer only once"),
    (question("q", "choice", repeats=True, answerOption=[option("a"), option("b")]), ["a", "b", "a"],
     "Select at most 2 answers: each box once"),
    (question("q", "boolean"), "maybe", "Select one of the options shown"),
])
def test_tampered_or_repeated_values_are_refused(item: dict[str, Any], value: Any, expected: str) -> None:
    assert message(item, value) == expected


# --- text -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "value", "expected"),
    [
        (question("q", "string"), "  fine  ", None),
        (question("q", "string"), "bell\x07", "Remove the special characters from your answer"),
        (question("q", "text"), "line\nbreak\ttab", None),
        (question("q", "string", maxLength=3), "four", "Answer must be 3 characters or fewer"),
        (question("q", "string"), "x" * 10_001, "Answer must be 10000 characters or fewer"),
        (
            question("q", "string", extension=[ext(REGEX, valueString="[A-Z]{2}[0-9]")]),
            "ab1",
            "Enter your answer in the format shown",
        ),
        (question("q", "string", extension=[ext(REGEX, valueString="[A-Z]{2}[0-9]")]), "AB1", None),
    ],
)
def test_text_checks(item: dict[str, Any], value: str, expected: str | None) -> None:
    assert message(item, value) == expected


# --- numbers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("type_", "value", "expected"), [
    ("integer", "3", None),
    ("integer", " 3 ", None),
    ("integer", "three", "Enter a whole number, like 3"),
    ("integer", "1.5", "Enter a whole number, like 3"),
    ("integer", "2.0", None),
    ("integer", "NaN", "Enter a number, like 2 or 1.5"),
    ("integer", "2147483647", None),
    ("integer", "2147483648", "Enter a smaller number"),
    ("integer", "-2147483649", "Enter a smaller number"),
    ("decimal", "1,5", None),
    ("decimal", "1.5.1", "Enter a number, like 2 or 1.5"),
    ("decimal", "Infinity", "Enter a number, like 2 or 1.5"),
    ("decimal", "1e400", "Enter a smaller number"),
    ("quantity", "70,5", None),
    ("quantity", "heavy", "Enter a number, like 2 or 1.5"),
])
def test_number_parsing_and_its_messages(type_: str, value: str, expected: str | None) -> None:
    assert message(question("q", type_), value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("0", "Enter a number of 1 or more"), ("1", None), ("10", None), ("11", "Enter a number of 10 or less"),
])
def test_number_bounds(value: str, expected: str | None) -> None:
    item = question("q", "integer", extension=[ext(MIN_VALUE, valueInteger=1), ext(MAX_VALUE, valueInteger=10)])
    assert message(item, value) == expected


def test_parsed_numbers_become_fhir_answers() -> None:
    built = form(
        group(
            "page",
            question("i", "integer"),
            question("d", "decimal"),
            question(
                "w",
                "quantity",
                extension=[ext(UNIT_OPTION, valueCoding={"system": UCUM, "code": "kg", "display": "kilograms"})],
            ),
        )
    )
    page = posted(built, {"i": "2.0", "d": "1,25", "w": "70,5"})
    assert page_answers(page) == {
        "i": [{"valueInteger": 2}], "d": [{"valueDecimal": 1.25}],
        "w": [{"valueQuantity": {"value": 70.5, "system": UCUM, "code": "kg", "unit": "kilograms"}}],
    }
    assert isinstance(page_answers(page)["i"][0]["valueInteger"], int)


def test_a_refused_answer_stores_nothing() -> None:
    built = form(group("page", question("i", "integer"), question("s", "string")))
    page = posted(built, {"i": "lots", "s": "kept"})
    assert page_answers(page) == {"i": [], "s": [{"valueString": "kept"}]}


# --- dates ------------------------------------------------------------------------------------------

TODAY = date(2026, 12, 7)


def cqf(url: str, value_key: str, text: str) -> dict[str, Any]:
    return {"url": url, f"_{value_key}": {"extension": [expression(CQF, text)]}}


@pytest.mark.parametrize(
    ("item", "value", "expected"),
    [
        (question("q", "date"), "2024-02-29", None),
        (question("q", "date"), "2023-02-29", "Enter a real date"),
        (question("q", "date"), "2024-13", "Enter a real date"),
        (question("q", "date"), "29/02/2024", "Enter a real date"),
        (question("q", "date"), "2024", None),
        (
            question("q", "date", extension=[ext(ENTRY_FORMAT, valueString="YYYY")]),
            "nineteen",
            "Enter a year, like 2019",
        ),
        (
            question("q", "date", extension=[ext(ENTRY_FORMAT, valueString="YYYY-MM")]),
            "2024-5",
            "Enter a real date, like 2024-05 (year and month)",
        ),
        (
            question("q", "date", extension=[ext(MIN_VALUE, valueDate="1900")]),
            "1899-12",
            "Enter a date on or after 1900",
        ),
        (
            question("q", "date", extension=[ext(MAX_VALUE, valueDate="2020-06-30")]),
            "2020-07",
            "Enter a date on or before 2020-06-30",
        ),
        (question("q", "date", extension=[cqf(MAX_VALUE, "valueDate", "today()")]), "2026-12-07", None),
        (
            question("q", "date", extension=[cqf(MAX_VALUE, "valueDate", "today()")]),
            "2026-12-08",
            "The date must be today or in the past",
        ),
        (
            question("q", "date", extension=[cqf(MAX_VALUE, "valueDate", "today()")]),
            "2027",
            "The date must be today or in the past",
        ),
        (
            question("q", "date", extension=[cqf(MIN_VALUE, "valueDate", "%birthDate")]),
            "1970-04",
            "The date cannot be before your date of birth",
        ),
        (
            question("q", "date", extension=[cqf(MIN_VALUE, "valueDate", "%birthDate")]),
            "1970",
            None,
        ),  # the year of birth
        (question("q", "dateTime"), "2024-05-06T10:30", None),
        (question("q", "dateTime"), "2024-05-06", "Enter a date and time"),
        (question("q", "dateTime"), "2024-02-30T10:30", "Enter a date and time"),
        (
            question("q", "dateTime", extension=[cqf(MAX_VALUE, "valueDateTime", "today()")]),
            "2026-12-08T00:01",
            "The date must be today or in the past",
        ),
    ],
)
def test_date_parsing_and_limits(item: dict[str, Any], value: str, expected: str | None) -> None:
    assert message(item, value, today=TODAY, birth_date="1970-05-01") == expected


def test_without_a_birth_date_there_is_no_lower_limit() -> None:
    item = question("q", "date", extension=[cqf(MIN_VALUE, "valueDate", "%birthDate")])
    assert message(item, "1800-01-01", today=TODAY) is None
    assert (
        message(item, "1800-01-01", today=TODAY, birth_date=date(1970, 5, 1))
        == "The date cannot be before your date of birth"
    )


def test_dates_become_fhir_answers() -> None:
    built = form(group("page", question("d", "date"), question("t", "dateTime"), question("s", "dateTime")))
    page = posted(built, {"d": "2024-05", "t": "2024-05-06T10:30", "s": "2024-05-06T10:30:15"})
    assert page_answers(page) == {"d": [{"valueDate": "2024-05"}], "t": [{"valueDateTime": "2024-05-06T10:30:00Z"}],
                                  "s": [{"valueDateTime": "2024-05-06T10:30:15Z"}]}


# --- stored answers <-> field data ---------------------------------------------------------------


def test_form_data_shows_stored_answers_again() -> None:
    built = form(group(
        "page",
        question("b", "boolean"),
        question("c", "choice", answerOption=[option("a"), option("b")]),
        question("m", "choice", repeats=True, answerOption=[option("a"), option("b")]),
        question("o", "open-choice", answerOption=[option("a")]),
        question("i", "integer"),
        question("d", "decimal"),
        question("t", "dateTime"),
        question("w", "quantity", extension=[ext(UNIT_OPTION, valueCoding={"system": UCUM, "code": "kg"}),
                                             ext(UNIT_OPTION, valueCoding={"system": UCUM, "code": "[lb_av]"})]),
        question("s", "string"),
        question("unanswered", "string"),
    ))
    cls = page_form_class(built, built.pages[0])
    answers: Answers = {
        "b": [{"valueBoolean": False}],
        "c": [{"valueCoding": {"system": "http://loinc.org", "code": "b"}}],
        "m": [{"valueCoding": {"code": "a"}}, {"valueCoding": {"code": "b"}}],
        "o": [{"valueString": "something else"}],
        "i": [{"valueInteger": 7}],
        "d": [{"valueDecimal": 2.0}],
        "t": [{"valueDateTime": "2024-05-06T10:30:00Z"}],
        "w": [{"valueQuantity": {"value": 154.0, "code": "[lb_av]"}}],
        "s": [{"valueString": "words"}],
    }
    assert form_data(cls, answers, use_initial=False) == {
        "q-b": "false", "q-c": "b", "q-m": ["a", "b"], "q-o": None, "q-o-other": "something else",
        "q-i": "7", "q-d": "2", "q-t": "2024-05-06T10:30", "q-w": "154", "q-w-unit": "[lb_av]", "q-s": "words",
    }


def test_initial_values_are_shown_on_a_first_visit_only() -> None:
    built = form(group("page", question("s", "string", initial=[{"valueString": "start"}]),
                       question("c", "choice", answerOption=[option("a"), {**option("b"), "initialSelected": True}])))
    cls = page_form_class(built, built.pages[0])
    assert form_data(cls, {}, use_initial=True) == {"q-s": "start", "q-c": "b"}
    assert form_data(cls, {}, use_initial=False) == {}
    assert form_data(cls, {"s": [{"valueString": "mine"}]}, use_initial=True) == {"q-s": "mine", "q-c": "b"}


def test_a_page_shown_again_posts_back_the_same_answers() -> None:
    built = form(group("page", question("c", "choice", answerOption=[option("a"), option("b")]),
                       question("o", "open-choice", repeats=True, answerOption=[option("a")]),
                       question("d", "decimal"), question("t", "dateTime"), question("b", "boolean")))
    cls = page_form_class(built, built.pages[0])
    answers: Answers = {"c": [{"valueCoding": {"system": "http://loinc.org", "code": "b"}}],
               "o": [{"valueCoding": {"system": "http://loinc.org", "code": "a"}}, {"valueString": "more"}],
               "d": [{"valueDecimal": 1.5}], "t": [{"valueDateTime": "2024-05-06T10:30:00Z"}],
               "b": [{"valueBoolean": True}]}
    data = form_data(cls, answers, use_initial=False)
    page = posted(built, data)
    assert errors(page) == {}
    assert page_answers(page) == answers


def test_an_enable_when_expression_item_is_still_a_field() -> None:
    built = one(question("q", "string", extension=[expression(ENABLE_WHEN_EXPRESSION, "true")]))
    assert list(page_form_class(built, built.pages[0]).field_items) == ["q-q"]


REQUIRED_MESSAGE = "https://intake.example.org/fhir/StructureDefinition/requiredMessage"


def _own_message(text: str, spanish: str | None = None) -> dict[str, Any]:
    extension: dict[str, Any] = {"url": REQUIRED_MESSAGE, "valueString": text}
    if spanish:
        extension["_valueString"] = {"extension": [{"url": FHIR_EXT + "translation", "extension": [
            {"url": "lang", "valueCode": "es"}, {"url": "content", "valueString": spanish}]}]}
    return extension


@pytest.mark.parametrize("kind", ["boolean", "string", "date"])
def test_a_question_names_its_own_missing_answer(kind: str) -> None:
    item = question("q", kind, required=True, extension=[_own_message("Select yes if you have seen blood")])
    assert message(item, []) == "Select yes if you have seen blood"


def test_the_own_message_follows_the_page_language(monkeypatch: pytest.MonkeyPatch) -> None:
    item = question("q", "boolean", required=True,
                    extension=[_own_message("Select yes if you have seen blood", "Seleccione sí si ha visto sangre")])
    monkeypatch.setattr("intake.web.forms._language", lambda: "es")
    assert message(item, []) == "Seleccione sí si ha visto sangre"
    monkeypatch.setattr("intake.web.forms._language", lambda: "fr")  # no French: as written
    assert message(item, []) == "Select yes if you have seen blood"


def test_without_an_own_message_the_generic_one_stays() -> None:
    item = question("q", "choice", required=True, answerOption=[option("a")], extension=[_own_message("  ")])
    assert message(item, []) == "Select an answer"


# --- the date boxes (GOV.UK date pattern) --------------------------------------------------------


def month_year() -> Form:
    return one(question("q", "date", extension=[ext(ENTRY_FORMAT, valueString="YYYY-MM")]))


@pytest.mark.parametrize(
    ("boxes", "stored", "message", "box"),
    [
        ({"q-q-month": "6", "q-q-year": "2025"}, "2025-06", None, None),
        ({"q-q-month": "06", "q-q-year": " 2025 "}, "2025-06", None, None),
        ({"q-q-month": "", "q-q-year": ""}, None, None, None),
        ({"q-q-month": "6"}, None, "Date must include a year", "year"),
        ({"q-q-month": "0", "q-q-year": "2025"}, None, "Month must be between 1 and 12", "month"),
        ({"q-q-month": "٦", "q-q-year": "2025"}, None, "Month must be a number", "month"),
        ({"q-q-month": "6", "q-q-year": "25"}, None, "Year must include 4 numbers", "year"),
        ({"q-q-month": ["6", "7"], "q-q-year": "2025"}, None, "Give only one answer", "month"),
    ],
)
def test_month_and_year_boxes_become_one_fhir_date(boxes: dict[str, Any], stored: str | None,
                                                    message: str | None, box: str | None) -> None:
    page = posted(month_year(), boxes)
    field = page["q-q"]
    assert field.errors == ([message] if message else [])
    assert field.error_part == box
    assert page_answers(page)["q"] == ([{"valueDate": stored}] if stored else [])


def test_a_full_date_has_three_boxes_and_must_be_real() -> None:
    built = one(question("q", "date"))
    assert posted(built, {"q-q-day": "29", "q-q-month": "2", "q-q-year": "2024"})["q-q"].data == "2024-02-29"
    wrong = posted(built, {"q-q-day": "30", "q-q-month": "2", "q-q-year": "2024"})["q-q"]
    assert wrong.errors == ["Date must be a real date"] and wrong.error_part == "day"
    assert posted(built, {"q-q-day": "3", "q-q-year": "2024"})["q-q"].errors == ["Date must include a month"]
    assert posted(built, {"q-q-day": "32", "q-q-month": "1", "q-q-year": "2024"})["q-q"].errors == [
        "Day must be between 1 and 31"]


def test_a_stored_date_is_shown_in_its_boxes() -> None:
    built = month_year()
    cls = page_form_class(built, built.pages[0])
    page = cls(data=form_data(cls, {"q": [{"valueDate": "2019-06"}]}, use_initial=False))
    assert page["q-q"].parts == {"month": "6", "year": "2019"}


def test_the_whole_date_posted_as_fhir_text_is_still_read() -> None:
    page = posted(month_year(), {"q": "2019-06"})
    assert page["q-q"].errors == [] and page_answers(page)["q"] == [{"valueDate": "2019-06"}]
    wrong = posted(month_year(), {"q": "<b>June</b>"})["q-q"]
    assert wrong.errors and wrong.parts == {"month": "<b>June</b>", "year": ""}  # shown again, escaped


def test_an_exclusive_option_with_others_at_submit_is_worded_with_the_shown_words() -> None:
    none = option("none", display="None of these")
    none["extension"] = [ext(FHIR_EXT + "questionnaire-optionExclusive", valueBoolean=True)]
    none["valueCoding"]["_display"] = {"extension": [{"url": FHIR_EXT + "translation", "extension": [
        {"url": "lang", "valueCode": "es"}, {"url": "content", "valueString": "Ninguno"}]}]}
    resource = questionnaire(group("g", question("rel", "choice", repeats=True,
                                                  answerOption=[option("mother", display="Mother"), none])))
    built = build_form(resource, "test")
    both = response(node("g", items=[node("rel", {"valueCoding": option("mother", display="Mother")["valueCoding"]},
                                          {"valueCoding": {k: v for k, v in none["valueCoding"].items()
                                                           if not k.startswith("_")}})]))
    issue = next(i for i in validate(built, both) if i.rule)
    assert patient_message(built, issue) == "Select 'None of these' or the other answers, not both"
    spanish = build_form(localize(resource, "es"), "test")
    assert patient_message(built, issue, shown=spanish) == "Select 'Ninguno' or the other answers, not both"


def test_a_date_outside_its_limits_links_to_its_first_box() -> None:
    built = one(question("q", "date", extension=[ext(ENTRY_FORMAT, valueString="YYYY-MM"),
                                                 cqf(MAX_VALUE, "valueDate", "today()")]))
    page = posted(built, {"q-q-month": "1", "q-q-year": "2027"}, today=TODAY)
    field = page["q-q"]
    assert field.errors == ["The date must be today or in the past"] and field.error_part is None
    assert anchor(built.by_link["q"], field) == "q-q-month"
    assert anchor(built.by_link["q"]) == "q-q-month"  # a Change link: the first box
    wrong = posted(built, {"q-q-month": "1"}, today=TODAY)["q-q"]
    assert anchor(built.by_link["q"], wrong) == "q-q-year"

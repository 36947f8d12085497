"""The Questionnaire lint and the catalog: each rule, the project forms, the LHC Form Builder files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from intake.core.catalog import CatalogError, lint_file, load_catalog, load_form
from intake.core.fhir_models import Questionnaire, model_errors
from intake.core.fhirpath import check_syntax
from intake.core.lint import LintIssue, lint
from tests.core.factories import (
    CALCULATED_EXPRESSION,
    CANONICAL,
    ENABLE_WHEN_EXPRESSION,
    FIXTURES,
    FORMS,
    MAX_VALUE,
    MIN_VALUE,
    REGEX,
    SCORE_CRITERION,
    SCORED,
    URL,
    VARIABLE,
    coding,
    expression,
    ext,
    group,
    option,
    question,
    questionnaire,
    when,
)

ITEM_CONTROL = "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl"


def found(resource) -> list[tuple[str, str | None, str]]:
    return [(i.severity, i.link_id, i.message) for i in lint(resource)]


def in_group(*items, **kw):
    return questionnaire(group("g", *items), **kw)


def error(link_id, message):
    return ("error", link_id, message)


def test_minimal_questionnaire_is_clean():
    assert found(in_group(question("a", "boolean"))) == []


# ------------------------------------------------------------------ resource level


def test_not_a_questionnaire():
    assert found({"resourceType": "Patient"}) == [
        error(None, "not a FHIR Questionnaire (resourceType must be 'Questionnaire')")
    ]
    assert found([]) == [error(None, "not a FHIR Questionnaire (resourceType must be 'Questionnaire')")]


def test_missing_url_is_an_error():
    assert found(in_group(question("a", "boolean"), url=None)) == [
        error(None, "has no url: a QuestionnaireResponse must be able to pin it")
    ]


def test_missing_version_is_a_warning():
    assert found(in_group(question("a", "boolean"), version=None)) == [
        ("warning", None, "has no version: responses will pin the url alone")
    ]


def test_no_items():
    assert found(questionnaire()) == [error(None, "has no items")]


def test_errors_come_before_warnings():
    resource = in_group(
        question("a", "integer", extension=[expression(CALCULATED_EXPRESSION, "1 + 1")]),
        question("b", "choice"),
        version=None,
    )
    assert found(resource) == [
        error("b", "a choice item needs answerOption"),
        ("warning", None, "has no version: responses will pin the url alone"),
        (
            "warning",
            "a",
            "has a calculatedExpression but is not readOnly: the calculated value overwrites the patient's",
        ),
    ]


# ------------------------------------------------------------------ fhir.resources model errors


def test_model_error_is_mapped_to_the_nested_link_id():
    resource = questionnaire(group("g", group("h", question("a", "string"), question("b", "string", maxLength="x"))))
    assert found(resource) == [
        error("b", "maxLength: Input should be a valid integer, unable to parse string as an integer")
    ]


def test_model_error_on_an_answer_option_extension():
    bad = option("a", system="urn:s")
    bad["extension"] = [{"url": "http://hl7.org/fhir/StructureDefinition/questionnaire-optionPrefix", "valueString": 1}]
    resource = in_group(question("q", "choice", answerOption=[option("z", system="urn:s"), bad]))
    assert found(resource) == [error("q", "answerOption.1.extension.0.valueString: Input should be a valid string")]


def test_model_error_on_expression_name_with_underscore():
    resource = in_group(
        question("a", "integer", readOnly=True, extension=[expression(CALCULATED_EXPRESSION, "1", name="my_total")])
    )
    assert found(resource) == [
        error("a", "extension.0.valueExpression.name: String should match pattern '^[A-Za-z0-9\\-.]+$'")
    ]


def test_model_error_outside_items():
    resource = in_group(question("a", "boolean"))
    del resource["status"]
    assert found(resource) == [error(None, "status: Value for the field 'status' is required.")]


# ------------------------------------------------------------------ linkIds and types


def test_duplicate_link_id():
    resource = questionnaire(group("g", question("a", "boolean")), group("h", question("a", "string")))
    assert found(resource) == [error("a", "linkId is used more than once")]


def test_unsupported_item_type():
    assert found(in_group(question("photo", "attachment"))) == [
        error(
            "photo",
            "item type 'attachment' is not supported by the engine (supported: boolean, choice, date, dateTime, "
            "decimal, display, group, integer, open-choice, quantity, string, text)",
        )
    ]


def test_repeating_group():
    resource = questionnaire(group("meds", question("name", "string"), repeats=True))
    assert found(resource) == [
        error(
            "meds",
            "a repeating group is not supported by the engine (ask the repeated questions with `repeats` instead)",
        )
    ]


def test_answer_option_on_group():
    resource = questionnaire(group("g", question("a", "boolean"), answerOption=[option("x")]))
    assert found(resource) == [
        error("g", "a group item must not have answerOption or answerValueSet"),
        error("g", "answerOption is not allowed on a group item"),
    ]


def test_display_item_rules():
    resource = in_group(question("intro", "display", question("inner", "display"), required=True))
    assert found(resource) == [
        error("intro", "a display item must not have child items"),
        error("intro", "a display item cannot be required"),
    ]


@pytest.mark.parametrize("kind", ["choice", "open-choice"])
def test_choice_without_options(kind):
    assert found(in_group(question("q", kind))) == [error("q", f"a {kind} item needs answerOption")]


def test_answer_value_set_unsupported():
    resource = in_group(question("q", "choice", answerValueSet="http://loinc.org/vs/LL358-3"))
    assert found(resource) == [error("q", "answerValueSet is not supported: list the choices as answerOption")]
    resource = in_group(question("s", "string", answerValueSet="http://loinc.org/vs/LL358-3"))
    assert found(resource) == [error("s", "answerValueSet is not supported: list the choices as answerOption")]


def test_answer_option_of_the_wrong_kind():
    resource = in_group(question("q", "integer", answerOption=[{"valueInteger": 1}, {"valueString": "two"}]))
    assert found(resource) == [
        error("q", "answerOption #2 has ['valueString']; a integer item takes one of ['valueInteger']")
    ]


def test_answer_option_coding_without_code():
    resource = in_group(question("q", "choice", answerOption=[{"valueCoding": {"system": "urn:s", "display": "Yes"}}]))
    assert found(resource) == [error("q", "answerOption #1 valueCoding has no code")]


def test_initial_of_the_wrong_type():
    resource = in_group(question("q", "boolean", initial=[{"valueString": "yes"}]))
    assert found(resource) == [error("q", "initial #1 has ['valueString'], which does not fit a boolean item")]


# ------------------------------------------------------------------ enableWhen


def test_enable_when_target_missing():
    resource = in_group(
        question("a", "boolean"), question("b", "string", enableWhen=[when("zz", "=", answerBoolean=True)])
    )
    assert found(resource) == [error("b", "enableWhen #1 refers to 'zz', which is not an item of this Questionnaire")]


def test_enable_when_target_after_the_item():
    resource = in_group(
        question("a", "string", enableWhen=[when("b", "=", answerBoolean=True)]), question("b", "boolean")
    )
    assert found(resource) == [
        error("a", "enableWhen #1 refers to 'b', which comes after it: a condition must depend on an earlier answer")
    ]


def test_enable_when_self_or_child():
    resource = in_group(
        question("a", "boolean", enableWhen=[when("a", "=", answerBoolean=True)]),
        group("h", question("c", "boolean"), enableWhen=[when("c", "=", answerBoolean=True)]),
    )
    assert found(resource) == [
        error("a", "enableWhen #1 refers to the item itself or one of its children"),
        error("h", "enableWhen #1 refers to the item itself or one of its children"),
    ]


@pytest.mark.parametrize(
    ("target", "answer", "label"),
    [
        (question("a", "boolean"), {"answerString": "true"}, "answerString can never match 'a' of type boolean"),
        (question("a", "integer"), {"answerString": "3"}, "answerString can never match 'a' of type integer"),
        (question("a", "string"), {"answerInteger": 3}, "answerInteger can never match 'a' of type string"),
        (
            question("a", "date"),
            {"answerDateTime": "2024-05-01T10:00:00Z"},
            "answerDateTime can never match 'a' of type date",
        ),
        (question("a", "quantity"), {"answerDecimal": 3}, "answerDecimal can never match 'a' of type quantity"),
        (question("a", "display"), {"answerBoolean": True}, "answerBoolean can never match 'a' of type display"),
        (
            question("a", "choice", answerOption=[option("x")]),
            {"answerBoolean": True},
            "answerBoolean can never match 'a' of type choice",
        ),
    ],
)
def test_enable_when_answer_type_can_never_match(target, answer, label):
    resource = in_group(target, question("b", "string", enableWhen=[when("a", "=", **answer)]))
    assert found(resource) == [error("b", f"enableWhen #1: {label}")]


@pytest.mark.parametrize("operator", [">", "<", ">=", "<="])
def test_ordered_operator_on_coding(operator):
    resource = in_group(
        question("a", "choice", answerOption=[option("x")]),
        question("b", "string", enableWhen=[when("a", operator, answerCoding=coding("x"))]),
    )
    assert found(resource) == [error("b", f"enableWhen #1: operator {operator!r} cannot order answerCoding")]


def test_ordered_operator_on_boolean():
    resource = in_group(
        question("a", "boolean"), question("b", "string", enableWhen=[when("a", ">", answerBoolean=False)])
    )
    assert found(resource) == [error("b", "enableWhen #1: operator '>' cannot order answerBoolean")]


def test_exists_takes_a_boolean():
    resource = in_group(
        question("a", "integer"), question("b", "string", enableWhen=[when("a", "exists", answerInteger=1)])
    )
    assert found(resource) == [error("b", "enableWhen #1: operator 'exists' takes answerBoolean, not answerInteger")]


def test_multiple_enable_when_without_behavior():
    conditions = [when("a", "=", answerBoolean=True), when("a", "exists", answerBoolean=True)]
    resource = in_group(question("a", "boolean"), question("b", "string", enableWhen=conditions))
    assert found(resource) == [error("b", "has 2 enableWhen conditions but no enableBehavior (que-12)")]
    with_behavior = in_group(
        question("a", "boolean"), question("b", "string", enableWhen=conditions, enableBehavior="any")
    )
    assert found(with_behavior) == []


def test_second_condition_is_numbered():
    conditions = [when("a", "=", answerBoolean=True), when("nope", "=", answerBoolean=True)]
    resource = in_group(question("a", "boolean"), question("b", "string", enableWhen=conditions, enableBehavior="all"))
    assert found(resource) == [error("b", "enableWhen #2 refers to 'nope', which is not an item of this Questionnaire")]


# ------------------------------------------------------------------ scoring


def test_scored_choice_without_weights():
    options = [option("a", weight=0), option("b"), option("c", ordinal=2), option("d")]
    resource = in_group(question("q", "choice", answerOption=options, extension=[ext(SCORED, valueBoolean=True)]))
    assert found(resource) == [error("q", "is scored but answerOption [2, 4] carry no itemWeight/ordinalValue")]


def test_scored_non_choice_without_score_criterion():
    resource = in_group(question("q", "integer", extension=[ext(SCORED, valueBoolean=True)]))
    assert found(resource) == [error("q", "is scored but has neither weighted answerOptions nor a scoreCriterion")]
    ok = in_group(
        question(
            "q", "integer", extension=[ext(SCORED, valueBoolean=True), expression(SCORE_CRITERION, "answer.value >= 4")]
        )
    )
    assert found(ok) == []


# ------------------------------------------------------------------ expressions


@pytest.mark.parametrize(
    ("url", "name"),
    [
        (CALCULATED_EXPRESSION, "sdc-questionnaire-calculatedExpression"),
        (ENABLE_WHEN_EXPRESSION, "sdc-questionnaire-enableWhenExpression"),
        (SCORE_CRITERION, "scoreCriterion"),
        (VARIABLE, "variable"),
    ],
)
@pytest.mark.parametrize("text", ["answer.value >= ", "a b", "1 +* 2"])
def test_fhirpath_syntax_error(url, name, text):
    value = expression(url, text, name="v" if url == VARIABLE else None)
    resource = in_group(question("q", "integer", readOnly=True, extension=[value]))
    reason = check_syntax(text)
    assert reason and reason.startswith(f"FHIRPath does not parse: {text!r}: column ")
    assert found(resource) == [error("q", f"{name}: {reason}")]


def test_fhirpath_syntax_error_in_questionnaire_variable():
    resource = in_group(question("q", "boolean"))
    resource["extension"] = [expression(VARIABLE, "%resource.item.where(", name="broken")]
    [(severity, link_id, message)] = found(resource)
    assert (severity, link_id) == ("error", None)
    assert message.startswith("variable: FHIRPath does not parse: '%resource.item.where(': column 22: ")


@pytest.mark.parametrize("language", ["text/cql", "application/x-fhir-query"])
def test_non_fhirpath_language(language):
    resource = in_group(
        question("q", "integer", readOnly=True, extension=[expression(CALCULATED_EXPRESSION, "1", language=language)])
    )
    assert found(resource) == [
        error(
            "q",
            f"sdc-questionnaire-calculatedExpression: expression language {language!r} is not supported "
            "(only text/fhirpath)",
        )
    ]


def test_expression_extension_needs_a_value_expression():
    resource = in_group(question("q", "boolean", extension=[ext(ENABLE_WHEN_EXPRESSION, valueString="true")]))
    assert found(resource) == [error("q", "sdc-questionnaire-enableWhenExpression needs a valueExpression")]


def test_calculated_not_read_only_is_a_warning():
    resource = in_group(question("q", "integer", extension=[expression(CALCULATED_EXPRESSION, "1 + 1")]))
    assert found(resource) == [
        (
            "warning",
            "q",
            "has a calculatedExpression but is not readOnly: the calculated value overwrites the patient's",
        )
    ]


# ------------------------------------------------------------------ value constraints


def test_bad_regex():
    resource = in_group(question("q", "string", extension=[ext(REGEX, valueString="[0-9")]))
    assert found(resource) == [error("q", "regex '[0-9' does not compile: unterminated character set at position 0")]


@pytest.mark.parametrize(
    ("kind", "url", "value", "message"),
    [
        ("integer", MIN_VALUE, {"valueDecimal": 1.5}, "minValue valueDecimal does not fit a integer item"),
        ("integer", MAX_VALUE, {"valueDate": "2024-01-01"}, "maxValue valueDate does not fit a integer item"),
        ("date", MIN_VALUE, {"valueInteger": 1900}, "minValue valueInteger does not fit a date item"),
        ("string", MIN_VALUE, {"valueInteger": 1}, "minValue valueInteger does not fit a string item"),
    ],
)
def test_min_max_type_mismatch(kind, url, value, message):
    assert found(in_group(question("q", kind, extension=[ext(url, **value)]))) == [error("q", message)]


@pytest.mark.parametrize(
    ("kind", "value"),
    [("decimal", {"valueInteger": 1}), ("dateTime", {"valueDate": "2024-01-01"}), ("integer", {"valueInteger": 0})],
)
def test_min_value_type_fits(kind, value):
    assert found(in_group(question("q", kind, extension=[ext(MIN_VALUE, **value)]))) == []


def test_unknown_item_control_is_a_warning():
    control = {"url": ITEM_CONTROL, "valueCodeableConcept": {"coding": [{"code": "spinner"}]}}
    assert found(in_group(question("q", "integer", extension=[control]))) == [
        ("warning", "q", "itemControl 'spinner' is not supported; the default control is used")
    ]


def test_format_names_file_link_id_and_severity():
    assert LintIssue("error", "q", "boom").format("forms/x.json") == "forms/x.json: linkId 'q' error: boom"
    assert LintIssue("warning", None, "hm").format("forms/x.json") == "forms/x.json: warning: hm"


# ------------------------------------------------------------------ the project forms


PROJECT_FORMS = sorted(FORMS.glob("*.json"))


def test_there_are_five_project_forms():
    assert [p.stem for p in PROJECT_FORMS] == ["autoimmune", "diet", "digestive", "neuropathy", "stress"]


@pytest.mark.parametrize("path", PROJECT_FORMS, ids=lambda p: p.stem)
def test_project_form_lints_clean(path: Path):
    assert lint_file(path) == []


def test_project_catalog_loads():
    catalog = load_catalog(FORMS)
    assert sorted(catalog.by_key) == ["autoimmune", "diet", "digestive", "neuropathy", "stress"]
    stress = catalog.get("https://intake.example.org/fhir/Questionnaire/stress|1.5.0")
    assert stress is catalog.by_key["stress"]
    assert catalog.get("https://intake.example.org/fhir/Questionnaire/stress") is stress
    assert catalog.get("https://intake.example.org/fhir/Questionnaire/stress|9.9.9") is None
    assert [p.key for p in stress.pages] == ["stress-pss10", "stress-phq4", "stress-phq9", "stress-gad7"]


# ------------------------------------------------------------------ NLM LHC Form Builder exports


LHC = FIXTURES / "lhc-forms"
needs_fixtures = pytest.mark.skipif(
    not LHC.is_dir(),
    reason=f"fhircheck fixtures not found at {LHC} (the shared checkout ../shared/fhircheck is absent)",
)

NAME_PATTERN = "String should match pattern '^[A-Za-z0-9\\-.]+$'"


@needs_fixtures
def test_lhc_fixture_set_is_the_expected_one():
    assert sorted(p.name for p in LHC.glob("*.json")) == [
        "hunger-vital-signs.json",
        "phq9.json",
        "vital-sign-questionnaire.json",
        "weight-height-questionnaire.json",
    ]


@needs_fixtures
def test_lhc_hunger_vital_signs_loads():
    path = LHC / "hunger-vital-signs.json"
    assert [(i.severity, i.link_id, i.message) for i in lint_file(path)] == [
        ("warning", None, "has no version: responses will pin the url alone")
    ]
    form = load_form(path)
    assert form.canonical == "https://lforms-fhir.nlm.nih.gov/baseR4/Questionnaire/hungerVitalSigns"
    assert len(form.pages) == 1  # loose top-level questions share one page


@needs_fixtures
def test_lhc_weight_height_loads():
    path = LHC / "weight-height-questionnaire.json"
    assert [(i.severity, i.link_id, i.message) for i in lint_file(path)] == [
        ("warning", None, "has no version: responses will pin the url alone"),
        (
            "warning",
            "/39156-5",
            "has a calculatedExpression but is not readOnly: the calculated value overwrites the patient's",
        ),
    ]
    assert load_form(path).canonical == "https://lforms-fhir.nlm.nih.gov/baseR4/Questionnaire/55418-8-x"


@needs_fixtures
def test_lhc_phq9_is_rejected_for_option_prefix_number_and_expression_names():
    path = LHC / "phq9.json"
    errors = [(i.link_id, i.message) for i in lint_file(path) if i.severity == "error"]
    assert errors == [
        ("/44259-0", "answerOption.1.extension.0.valueString: Input should be a valid string"),
        *[("/44261-6", f"extension.{n}.valueExpression.name: {NAME_PATTERN}") for n in range(3, 13)],
        (None, "has no url: a QuestionnaireResponse must be able to pin it"),
    ]
    resource = json.loads(path.read_text(encoding="utf-8"))
    total = next(i for i in resource["item"] if i["linkId"] == "/44261-6")
    names = [e["valueExpression"].get("name") for e in total["extension"][3:13]]
    assert all("_" in n for n in names)
    with pytest.raises(CatalogError) as caught:
        load_form(path)
    assert (
        f"{path}: linkId '/44259-0' error: answerOption.1.extension.0.valueString: Input should be a valid string"
        in str(caught.value)
    )


@needs_fixtures
def test_lhc_vital_signs_is_rejected_for_having_no_url():
    path = LHC / "vital-sign-questionnaire.json"
    errors = [(i.link_id, i.message) for i in lint_file(path) if i.severity == "error"]
    assert errors == [(None, "has no url: a QuestionnaireResponse must be able to pin it")]
    with pytest.raises(CatalogError, match=re.escape(f"{path}: error: has no url")):
        load_form(path)


# ------------------------------------------------------------------ catalog errors


def write(directory: Path, name: str, resource) -> Path:
    path = directory / name
    path.write_text(json.dumps(resource) if not isinstance(resource, str) else resource, encoding="utf-8")
    return path


def test_catalog_error_names_file_link_id_and_problem(tmp_path: Path):
    write(tmp_path, "good.json", in_group(question("a", "boolean"), url=URL + "-good"))
    broken = write(tmp_path, "broken.json", in_group(question("q", "choice")))
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path)
    assert str(caught.value) == f"{broken}: linkId 'q' error: a choice item needs answerOption"


def test_catalog_collects_every_error_of_every_file(tmp_path: Path):
    a = write(tmp_path, "a.json", in_group(question("q", "choice"), question("r", "attachment"), url=URL + "-a"))
    b = write(tmp_path, "b.json", "{not json")
    message = None
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path)
    message = str(caught.value).splitlines()
    assert message[0] == f"{a}: linkId 'q' error: a choice item needs answerOption"
    assert message[1].startswith(f"{a}: linkId 'r' error: item type 'attachment' is not supported")
    assert message[2] == f"{b}: not valid JSON: line 1 column 2: Expecting property name enclosed in double quotes"
    assert len(message) == 3


def test_catalog_of_an_empty_directory(tmp_path: Path):
    with pytest.raises(CatalogError, match=re.escape(f"{tmp_path}: no Questionnaire files (*.json) found")):
        load_catalog(tmp_path)


def test_catalog_rejects_the_same_canonical_twice(tmp_path: Path):
    first = write(tmp_path, "a.json", in_group(question("a", "boolean")))
    second = write(tmp_path, "b.json", in_group(question("a", "boolean")))
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path)
    assert str(caught.value) == f"{second}: {CANONICAL} is already loaded from {first}"


def test_catalog_keeps_two_versions(tmp_path: Path):
    write(tmp_path, "a.json", in_group(question("a", "boolean"), version="1.0.0"))
    write(tmp_path, "b.json", in_group(question("a", "boolean"), version="2.0.0"))
    catalog = load_catalog(tmp_path)
    assert [f.canonical for f in catalog] == [f"{URL}|1.0.0", f"{URL}|2.0.0"]
    assert catalog.get(URL).version == "2.0.0"  # a bare url resolves to the latest loaded
    assert catalog.get(f"{URL}|1.0.0").version == "1.0.0"


def test_lint_file_reports_unreadable_json_as_an_issue(tmp_path: Path):
    path = write(tmp_path, "x.json", "[1, 2")
    [issue] = lint_file(path)
    assert (issue.severity, issue.link_id) == ("error", None)
    assert issue.message.startswith("not valid JSON: line 1 column 6: ")


# ------------------------------------------------------------------ limits given by an expression

CQF = "http://hl7.org/fhir/StructureDefinition/cqf-expression"
CONSTRAINT = "http://hl7.org/fhir/StructureDefinition/questionnaire-constraint"
ANSWER_LIMITS = Path(__file__).resolve().parents[1] / "fixtures" / "answer-limits.json"


def dynamic(url, expression, key="_valueDate", language="text/fhirpath", **static):
    value = {"language": language, "expression": expression}
    return {"url": url, **static, key: {"extension": [{"url": CQF, "valueExpression": value}]}}


def test_date_limits_given_by_expressions_are_clean():
    resource = in_group(
        question("onset", "date", extension=[dynamic(MIN_VALUE, "%birthDate"), dynamic(MAX_VALUE, "today()")]),
        question("seen", "dateTime", extension=[dynamic(MAX_VALUE, "today()", key="_valueDateTime")]),
        question(
            "fixed",
            "date",
            extension=[ext(MIN_VALUE, valueDate="1900"), dynamic(MAX_VALUE, "today()", valueDate="2030-01-01")],
        ),
    )
    assert found(resource) == []


@pytest.mark.parametrize(
    ("kind", "extension", "message"),
    [
        ("date", dynamic(MAX_VALUE, "today() +"), "maxValue cqf-expression: FHIRPath does not parse"),
        (
            "date",
            dynamic(MAX_VALUE, "today()", language="text/cql"),
            "maxValue cqf-expression language 'text/cql' is not supported",
        ),
        (
            "integer",
            dynamic(MAX_VALUE, "1", key="_valueInteger"),
            "maxValue given by an expression is supported on date and dateTime items only",
        ),
        (
            "date",
            dynamic(MIN_VALUE, "%birthDate", key="_valueInteger"),
            "minValue valueInteger does not fit a date item",
        ),
        (
            "date",
            {"url": MIN_VALUE, "_valueDate": {"extension": [{"url": "urn:other", "valueString": "x"}]}},
            "minValue has no value: its `_value[x]` carries no cqf-expression",
        ),
        ("date", ext(MIN_VALUE, valueInteger=3), "minValue valueInteger does not fit a date item"),
    ],
)
def test_bad_date_limits(kind, extension, message):
    problems = [m for s, _, m in found(in_group(question("q", kind, extension=[extension]))) if s == "error"]
    assert any(m.startswith(message) for m in problems), problems


def test_a_limit_with_nothing_is_ignored_with_a_warning():
    # What `localize` leaves of a limit given by an expression (it drops the `_valueDate` shadow).
    assert found(in_group(question("q", "date", extension=[{"url": MIN_VALUE}]))) == [
        ("warning", "q", "minValue has neither a value nor a cqf-expression giving one: ignored")]


def test_a_value_date_shadow_alone_passes_the_fhir_model():

    resource = in_group(question("q", "date", extension=[dynamic(MAX_VALUE, "today()")]))
    assert model_errors(Questionnaire, resource) == []
    resource["item"][0]["item"][0]["extension"][0]["_valueDate"] = {}
    assert model_errors(Questionnaire, resource) == [
        ("item.0.item.0.extension.0._valueDate", "a value with neither a value nor extensions (ele-1)")]


# ------------------------------------------------------------------ questionnaire-constraint


def constraint(*parts):
    return {"url": CONSTRAINT, "extension": [{"url": url, **value} for url, value in parts]}


def good(key="total", **replace):
    parts = {"key": {"valueId": key}, "severity": {"valueCode": "error"},
             "expression": {"valueString": "item.where(linkId='a').answer.value.first() <= 100"},
             "human": {"valueString": "At most 100"}, "location": {"valueString": "a"}}
    parts.update(replace)
    return constraint(*((k, v) for k, v in parts.items() if v is not None))


def test_constraints_on_groups_and_the_questionnaire_are_clean():
    resource = questionnaire(group("g", question("a", "integer"), extension=[good()]), extension=[good("other")])
    assert found(resource) == []


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        ({"key": None}, "questionnaire-constraint: needs one `key` (valueId)"),
        (
            {"severity": {"valueCode": "fatal"}},
            "questionnaire-constraint 'total': needs one `severity` (valueCode): one of ['error', 'warning']",
        ),
        ({"severity": None}, "questionnaire-constraint 'total': needs one `severity`"),
        (
            {"expression": {"valueString": "item.where(linkId = "}},
            "questionnaire-constraint 'total': expression: FHIRPath does not parse",
        ),
        ({"expression": None}, "questionnaire-constraint 'total': needs one `expression`"),
        ({"human": None}, "questionnaire-constraint 'total': needs one `human`"),
        (
            {"location": {"valueString": "nowhere"}},
            "questionnaire-constraint 'total': location 'nowhere' is not a linkId",
        ),
    ],
)
def test_bad_constraints(replace, message):
    problems = found(questionnaire(group("g", question("a", "integer"), extension=[good(**replace)])))
    assert any(s == "error" and link == "g" and m.startswith(message) for s, link, m in problems), problems


def test_constraint_keys_are_unique_in_the_questionnaire():
    resource = questionnaire(group("g", question("a", "integer"), extension=[good()]), extension=[good()])
    assert found(resource) == [
        error("g", "questionnaire-constraint 'total': key is used by another constraint of this Questionnaire")
    ]


def test_constraint_on_a_question_is_refused():
    assert found(in_group(question("a", "integer", extension=[good()]))) == [
        error("a", "questionnaire-constraint is supported on groups and on the Questionnaire only")]


def test_unknown_constraint_part_is_a_warning():
    rule = good()
    rule["extension"].append({"url": "colour", "valueString": "red"})
    assert found(questionnaire(group("g", question("a", "integer"), extension=[rule]))) == [
        ("warning", "g", "questionnaire-constraint 'total': unknown sub-extension 'colour' is ignored")]


def test_the_answer_limits_fixture_is_clean_and_loads():
    assert lint_file(ANSWER_LIMITS) == []
    assert load_form(ANSWER_LIMITS).key == "limits"


def test_the_answer_limits_fixture_passes_fhircheck():
    import shutil
    import subprocess

    check = FIXTURES.parent / "check.sh"
    if not check.exists():
        pytest.skip("../shared/fhircheck is not beside this clone")
    if not (FIXTURES.parent / "node_modules").exists() or shutil.which("node") is None:
        pytest.skip("fhircheck dependencies missing: run (cd ../shared/fhircheck && npm ci)")
    result = subprocess.run([str(check), "--strict", str(ANSWER_LIMITS)], capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "PASS" in result.stdout


# ------------------------------------------------------------------ optionExclusive, itemMedia

EXCLUSIVE = "http://hl7.org/fhir/StructureDefinition/questionnaire-optionExclusive"
ITEM_MEDIA = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-itemMedia"


def exclusive_option(code):
    out = option(code)
    out["extension"] = [{"url": EXCLUSIVE, "valueBoolean": True}]
    return out


def test_option_exclusive_belongs_on_a_repeating_choice():
    fine = question("rel", "choice", repeats=True, answerOption=[option("a"), exclusive_option("none")])
    assert found(in_group(fine)) == []
    single = question("rel", "choice", answerOption=[option("a"), exclusive_option("none")])
    assert found(in_group(single)) == [
        error("rel", "answerOption [2] are optionExclusive, which only means something on a repeating choice")]


def media(**attachment):
    return {"url": ITEM_MEDIA, "valueAttachment": attachment}


@pytest.mark.parametrize(
    ("attachment", "message"),
    [
        ({"contentType": "image/svg+xml", "url": "/static/img/chart.svg", "title": "A chart"}, None),
        ({"contentType": "image/svg+xml", "url": "https://example.com/chart.svg", "title": "A chart"},
         "itemMedia url 'https://example.com/chart.svg' is not a file of this service under /static/"),
        ({"contentType": "image/svg+xml", "url": "//example.com/static/x.svg", "title": "A chart"},
         "itemMedia url '//example.com/static/x.svg' is not a file of this service under /static/"),
        ({"contentType": "image/svg+xml", "url": "/static/../secret.svg", "title": "A chart"},
         "itemMedia url '/static/../secret.svg' is not a file of this service under /static/"),
        ({"contentType": "text/html", "url": "/static/img/chart.svg", "title": "A chart"},
         "itemMedia contentType 'text/html' is not one of ['image/jpeg', 'image/png', 'image/svg+xml', 'image/webp']"),
        ({"contentType": "image/svg+xml", "url": "/static/img/chart.svg"},
         "itemMedia needs a title: it is the picture's alt text"),
    ],
)
def test_item_media_is_an_image_of_this_service_with_alt_text(attachment, message):
    item = question("q", "boolean", extension=[media(**attachment)])
    assert found(in_group(item)) == ([] if message is None else [error("q", message)])


def test_a_translated_picture_url_is_checked_too():
    spanish = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/translation", "extension": [
        {"url": "lang", "valueCode": "es"}, {"url": "content", "valueString": "https://example.com/es.svg"}]}]}
    item = question("q", "boolean", extension=[media(contentType="image/svg+xml", url="/static/img/chart.svg",
                                                     title="A chart", _url=spanish)])
    assert found(in_group(item)) == [error(
        "q", "itemMedia url 'https://example.com/es.svg' is not a file of this service under /static/ "
             "(the 'es' translation)")]


# --- requiredMessage -------------------------------------------------------------------------------

REQUIRED_MESSAGE = "https://intake.example.org/fhir/StructureDefinition/requiredMessage"


def _lint_one(item: dict) -> list[tuple[str, str]]:
    return [(i.severity, i.message) for i in lint(questionnaire(group("g", item))) if i.link_id == "q"]


def test_required_message_rules() -> None:
    assert _lint_one(question("q", "boolean", required=True,
                              extension=[{"url": REQUIRED_MESSAGE, "valueString": "Select yes if so"}])) == []
    assert _lint_one(question("q", "boolean", extension=[{"url": REQUIRED_MESSAGE, "valueString": "Select"}])) == [
        ("warning", "has a requiredMessage but is not required: it is never shown")]
    empty = question("q", "boolean", required=True, extension=[{"url": REQUIRED_MESSAGE, "valueString": ""}])
    assert _lint_one(empty)[0][0] == "error"



"""Tiny Questionnaire builders for the core tests: plain dicts, no fixtures.

Every item gets the text "Text of <linkId>" unless told otherwise, so a test can predict the
QuestionnaireResponse exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from intake.core.items import Form, build_form

URL = "https://intake.example.org/fhir/Questionnaire/test"
VERSION = "1.0.0"
CANONICAL = f"{URL}|{VERSION}"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
FHIR_EXT = "http://hl7.org/fhir/StructureDefinition/"
SDC_EXT = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"
PROJECT_EXT = "https://intake.example.org/fhir/StructureDefinition/"

ITEM_WEIGHT = FHIR_EXT + "itemWeight"
ORDINAL_VALUE = FHIR_EXT + "ordinalValue"
MIN_VALUE = FHIR_EXT + "minValue"
MAX_VALUE = FHIR_EXT + "maxValue"
REGEX = FHIR_EXT + "regex"
HIDDEN = FHIR_EXT + "questionnaire-hidden"
VARIABLE = FHIR_EXT + "variable"
ENABLE_WHEN_EXPRESSION = SDC_EXT + "sdc-questionnaire-enableWhenExpression"
CALCULATED_EXPRESSION = SDC_EXT + "sdc-questionnaire-calculatedExpression"
SCORED = PROJECT_EXT + "scored"
SCORE_CRITERION = PROJECT_EXT + "scoreCriterion"

ROOT = Path(__file__).resolve().parents[2]  # /work/main
FORMS = ROOT / "forms"
SHARED = Path(__file__).resolve().parents[3] / "shared"
FHIRCHECK = SHARED / "fhircheck"
FIXTURES = FHIRCHECK / "fixtures"


def text_of(link_id: str) -> str:
    return f"Text of {link_id}"


def questionnaire(
    *items: dict[str, Any], url: str | None = URL, version: str | None = VERSION, **extra: Any
) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Questionnaire", "status": "active"}
    if url is not None:
        resource["url"] = url
    if version is not None:
        resource["version"] = version
    resource.update(extra)
    resource["item"] = list(items)
    return resource


def item(link_id: str, type_: str, *children: dict[str, Any], **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"linkId": link_id, "text": fields.pop("text", text_of(link_id)), "type": type_}
    out.update(fields)
    if children:
        out["item"] = list(children)
    return out


def group(link_id: str, *children: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return item(link_id, "group", *children, **fields)


def question(link_id: str, type_: str, *children: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return item(link_id, type_, *children, **fields)


def ext(url: str, **value: Any) -> dict[str, Any]:
    """An extension: ext(MIN_VALUE, valueInteger=1)."""
    return {"url": url, **value}


def expression(url: str, text: str, *, language: str = "text/fhirpath", name: str | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {"language": language, "expression": text}
    if name:
        value["name"] = name
    return {"url": url, "valueExpression": value}


def coding(code: str, system: str | None = LOINC, display: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if system:
        out["system"] = system
    out["code"] = code
    if display:
        out["display"] = display
    return out


def option(
    code: str,
    *,
    system: str | None = LOINC,
    display: str | None = None,
    weight: float | None = None,
    ordinal: float | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    extensions = []
    if weight is not None:
        extensions.append({"url": ITEM_WEIGHT, "valueDecimal": weight})
    if ordinal is not None:
        extensions.append({"url": ORDINAL_VALUE, "valueDecimal": ordinal})
    if extensions:
        out["extension"] = extensions
    out["valueCoding"] = coding(code, system, display)
    return out


def when(question_id: str, operator: str, **answer: Any) -> dict[str, Any]:
    """An enableWhen condition: when("q1", "=", answerBoolean=True)."""
    return {"question": question_id, "operator": operator, **answer}


def form(*items: dict[str, Any], **kw: Any) -> Form:
    return build_form(questionnaire(*items, **kw), "test")


def response(*items: dict[str, Any], status: str = "completed", questionnaire_ref: str = CANONICAL) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": questionnaire_ref,
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "authored": "2024-05-01T10:00:00Z",
    }
    if items:
        out["item"] = list(items)
    return out


def node(
    link_id: str, *answers: dict[str, Any], items: list[dict[str, Any]] | None = None, text: str | None = ""
) -> dict[str, Any]:
    """A QuestionnaireResponse item; text defaults to the factory's text, None leaves it out."""
    out: dict[str, Any] = {"linkId": link_id}
    if text == "":
        out["text"] = text_of(link_id)
    elif text is not None:
        out["text"] = text
    if answers:
        out["answer"] = list(answers)
    if items:
        out["item"] = items
    return out

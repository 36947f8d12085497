"""Extension URLs the engine reads, and small accessors for them.

Standard FHIR / SDC URLs and the project's own (documented in docs/questionnaires.md).
"""

from __future__ import annotations

from typing import Any

FHIR_EXT = "http://hl7.org/fhir/StructureDefinition/"
SDC_EXT = "http://hl7.org/fhir/uv/sdc/StructureDefinition/"
BASE = "https://intake.example.org/fhir"
PROJECT_EXT = BASE + "/StructureDefinition/"
ITEM_CODES = BASE + "/CodeSystem/intake-items"

ITEM_CONTROL = FHIR_EXT + "questionnaire-itemControl"
HIDDEN = FHIR_EXT + "questionnaire-hidden"
MIN_VALUE = FHIR_EXT + "minValue"
MAX_VALUE = FHIR_EXT + "maxValue"
REGEX = FHIR_EXT + "regex"
ENTRY_FORMAT = FHIR_EXT + "entryFormat"
UNIT_OPTION = FHIR_EXT + "questionnaire-unitOption"
UNIT = FHIR_EXT + "questionnaire-unit"
VARIABLE = FHIR_EXT + "variable"
TRANSLATION = FHIR_EXT + "translation"
CQF_EXPRESSION = FHIR_EXT + "cqf-expression"
CONSTRAINT = FHIR_EXT + "questionnaire-constraint"
ENABLE_WHEN_EXPRESSION = SDC_EXT + "sdc-questionnaire-enableWhenExpression"
CALCULATED_EXPRESSION = SDC_EXT + "sdc-questionnaire-calculatedExpression"
OPTION_EXCLUSIVE = FHIR_EXT + "questionnaire-optionExclusive"
ITEM_MEDIA = SDC_EXT + "sdc-questionnaire-itemMedia"

INSTRUMENT = PROJECT_EXT + "instrument"
SCORED = PROJECT_EXT + "scored"
SCORE_CRITERION = PROJECT_EXT + "scoreCriterion"
# The question's own message when it is left unanswered ("Select yes if you have seen blood in
# your stool"), valueString translated on `_valueString`; the generic message otherwise.
REQUIRED_MESSAGE = PROJECT_EXT + "requiredMessage"

ITEM_CONTROLS = {"radio-button", "check-box", "drop-down", "slider", "page", "help", "autocomplete", "list"}

EXPRESSION_EXTENSIONS = (ENABLE_WHEN_EXPRESSION, CALCULATED_EXPRESSION, VARIABLE, SCORE_CRITERION)


def find(element: dict[str, Any], url: str) -> list[dict[str, Any]]:
    return [e for e in element.get("extension") or [] if e.get("url") == url]


def typed_value(element: dict[str, Any], url: str) -> dict[str, Any] | None:
    """The first extension's `value[x]` as a one-key dict, e.g. {"valueInteger": 3}."""
    for extension in find(element, url):
        for key, val in extension.items():
            if key.startswith("value"):
                return {key: val}
    return None


def value(element: dict[str, Any], url: str) -> Any:
    typed = typed_value(element, url)
    return next(iter(typed.values())) if typed else None


def values(element: dict[str, Any], url: str) -> list[Any]:
    out: list[Any] = []
    for extension in find(element, url):
        out.extend(v for k, v in extension.items() if k.startswith("value"))
    return out


def expression(element: dict[str, Any], url: str) -> str | None:
    """The FHIRPath text of an Expression-valued extension (only text/fhirpath is supported)."""
    val = value(element, url)
    if isinstance(val, dict):
        return val.get("expression")
    return None


def shadow_expression(extension: dict[str, Any]) -> tuple[str, Any] | None:
    """(`value[x]` key, Expression) of a primitive value given by a `cqf-expression`.

    `{"url": ".../maxValue", "_valueDate": {"extension": [{"url": ".../cqf-expression",
    "valueExpression": {...}}]}}` -> ("valueDate", {...}). The Expression is returned as
    written (the lint checks its language and syntax); None when there is no such shadow.
    """
    for key, shadow in extension.items():
        if key.startswith("_value") and isinstance(shadow, dict):
            for inner in find(shadow, CQF_EXPRESSION):
                return key[1:], inner.get("valueExpression")
    return None


def variables(element: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """SDC `variable` extensions as (name, FHIRPath) pairs, in declaration order."""
    out = []
    for val in values(element, VARIABLE):
        if isinstance(val, dict) and val.get("name") and val.get("expression"):
            out.append((val["name"], val["expression"]))
    return tuple(out)


def item_control(element: dict[str, Any]) -> str | None:
    concept = value(element, ITEM_CONTROL)
    if isinstance(concept, dict):
        for coding in concept.get("coding") or []:
            code: str | None = coding.get("code")
            if code:
                return code
    return None


def sub_values(extension: dict[str, Any]) -> dict[str, list[Any]]:
    """A complex extension's sub-extensions as {url: [values]} (several may repeat); a complex
    sub-extension (a score's band or threshold) is kept whole."""
    out: dict[str, list[Any]] = {}
    for sub in extension.get("extension") or []:
        values = [val for key, val in sub.items() if key.startswith("value")]
        if not values and sub.get("extension"):
            values = [sub]
        out.setdefault(sub.get("url", ""), []).extend(values)
    return out

"""Dates a patient gives (symptom onsets, years of diagnosis, a diet's start) lie within their life.

Every `date` item of every current form carries the standard SDC dynamic limits: `minValue` given
by the cqf-expression `%birthDate` (not before birth) and `maxValue` by `today()` (not in the
future). The validation engine evaluates them; this checks that the forms ask for it.
"""

from __future__ import annotations

from typing import Any

import pytest

from intake.core.catalog import load_catalog
from tests.core.factories import FORMS

FHIR = "http://hl7.org/fhir/StructureDefinition/"
CATALOG = load_catalog(FORMS)
DATE_ITEMS = [(form.key, item) for form in CATALOG for item in form.walk() if item.type == "date"]


def limit(expression: str, url: str) -> dict[str, Any]:
    return {"url": FHIR + url, "_valueDate": {"extension": [
        {"url": FHIR + "cqf-expression", "valueExpression": {"language": "text/fhirpath", "expression": expression}}]}}


def test_the_dated_questions_are_the_expected_ones() -> None:
    assert sorted(f"{key}:{item.link_id}" for key, item in DATE_ITEMS) == sorted(
        ["digestive:gi-af5", "diet:diet-gluten-free-since"]
        + [f"autoimmune:ai-self-{c}-year" for c in (
            "coeliac", "rheumatoid-arthritis", "lupus", "multiple-sclerosis", "hashimoto", "graves", "type1-diabetes",
            "ibd", "psoriasis", "pernicious-anaemia")])


@pytest.mark.parametrize(("key", "item"), DATE_ITEMS, ids=[item.link_id for _, item in DATE_ITEMS])
def test_every_date_is_limited_to_the_patients_life(key: str, item: Any) -> None:
    limits = [e for e in item.raw.get("extension") or [] if e["url"] in (FHIR + "minValue", FHIR + "maxValue")]
    assert sorted(limits, key=lambda e: e["url"]) == [limit("today()", "maxValue"), limit("%birthDate", "minValue")]
    assert item.entry_format in ("YYYY", "YYYY-MM")
    spanish = CATALOG.localized(CATALOG.by_key[key], "es").by_link[item.link_id]
    assert [e for e in spanish.raw.get("extension") or [] if e in limits] == limits  # kept in the patient's language

"""The five intake Questionnaires (and their archived versions): valid R4 for fhir.resources and for
the independent checker."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from intake.core.catalog import load_catalog
from intake.core.fhir_models import Questionnaire, model_errors

ROOT = Path(__file__).resolve().parents[1]
FORMS = ROOT / "forms"
FHIRCHECK = ROOT.parent / "shared" / "fhircheck"
EXPECTED = {"digestive", "neuropathy", "autoimmune", "diet", "stress"}


def test_the_five_questionnaires_load_with_versions() -> None:
    catalog = load_catalog(FORMS)
    assert set(catalog.by_key) == EXPECTED
    for form in catalog:
        # 1.1.0: scoring rules added; 1.2.0 (digestive, autoimmune): rules rewritten for speed;
        # issue 14: digestive, autoimmune 1.3.0, the others 1.2.0 (clinical rule fixes, patient guidance);
        # issue 19: stress 1.3.0 (PHQ-4's answers carried into PHQ-9 and GAD-7, not asked twice);
        # issue 17: neuropathy, diet 1.3.0 and stress 1.4.0 (each score's better direction, for its trend)
        # issue 17: digestive 1.4.0 (the reason for the visit)
        # issue 19: digestive 1.5.0, stress 1.5.0, the others 1.4.0 (each fact asked once, family
        # history as one question per condition, question-specific required-answer messages)
        assert form.version == {"stress": "1.5.0", "digestive": "1.5.0"}.get(form.key, "1.4.0")
        assert form.url == f"https://intake.example.org/fhir/Questionnaire/{form.key}"
        assert all(page.group is not None for page in form.pages), "top-level items are groups (pages)"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_questionnaire_is_a_valid_r4_model(name: str) -> None:
    # model_errors, not the bare model: it also checks the `_valueString` translation shadows
    # on extensions, which fhir.resources has no field for (intake/core/fhir_models.py).
    assert model_errors(Questionnaire, json.loads((FORMS / f"{name}.json").read_text(encoding="utf-8"))) == []


def test_questionnaires_pass_fhircheck() -> None:
    if not (FHIRCHECK / "check.sh").exists():
        pytest.skip("../shared/fhircheck is not beside this clone")
    if not (FHIRCHECK / "node_modules").exists() or shutil.which("node") is None:
        pytest.skip("fhircheck dependencies missing: run (cd ../shared/fhircheck && npm ci)")
    result = subprocess.run([str(FHIRCHECK / "check.sh"), "--strict", str(FORMS)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    # the five current forms and the earlier versions kept in forms/archive (the checker recurses)
    files = len(list(FORMS.glob("*.json"))) + len(list((FORMS / "archive").glob("*.json")))
    assert files == 20 and f"{files} passed, 0 failed" in result.stdout


def test_every_required_question_says_what_is_missing_in_its_own_words() -> None:
    """Issue 19: "Select yes if you have seen blood in your stool", not nine identical "Select an
    answer": each question a patient must answer carries a requiredMessage, in English and Spanish."""
    catalog = load_catalog(FORMS)
    for form in catalog:
        spanish = catalog.localized(form, "es")
        for page in form.pages:
            for item in page.walk():
                if not (item.is_question and item.required and not item.read_only):
                    continue
                assert item.required_message and item.required_message.startswith(("Select", "Enter")), item.link_id
                localized = spanish.by_link[item.link_id].required_message
                assert localized and localized != item.required_message, item.link_id
                assert item.required_message_in("es") == localized

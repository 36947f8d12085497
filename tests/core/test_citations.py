"""A result stored before the forms carried clinician citations reads them from its Questionnaire."""

from __future__ import annotations

from pathlib import Path

from intake.core.catalog import load_catalog
from intake.core.citations import with_clinician_citations
from intake.core.clinician_text import score_reference

FORMS = Path(__file__).resolve().parents[2] / "forms"
CLINIC = "Clinic protocol (not a published instrument)."


def test_missing_citations_come_from_the_same_questionnaire_version() -> None:
    catalog = load_catalog(FORMS)
    forms = {form.canonical: form for form in catalog.forms}
    digestive, stress = (next(f.canonical for f in catalog.forms if f.key == key) for key in ("digestive", "stress"))
    stored = {  # as scored before clinicianCitation existed: only the maintainers' citations
        "flags": [{"id": "gi-af1-emergency", "tier": "emergency", "citation": "In-house wording and rule.",
                   "questionnaire": digestive}],
        "notes": [{"id": "ibs-pattern", "citation": "instruments.md 2.3: Rome IV", "questionnaire": digestive}],
        "scores": [{"id": "phq4", "citation": "x", "instrumentCitation": "y", "questionnaire": stress},
                   {"id": "phq4", "questionnaire": "https://example.org/Questionnaire/gone|1.0.0",
                    "instrumentCitation": "instruments.md 6.2: Kroenke K et al."}],
    }
    filled = with_clinician_citations(stored, forms)
    assert filled["flags"][0]["clinicianCitation"] == CLINIC
    assert filled["notes"][0]["clinicianCitation"].startswith("Rome IV criteria for IBS")
    assert score_reference(filled["scores"][0]) == "Kroenke K, Spitzer RL, Williams JBW, Löwe B. Psychosomatics " \
                                                   "2009;50:613-21."
    # a version the catalog does not hold keeps the cleaned fallback
    assert "clinicianCitation" not in filled["scores"][1] and score_reference(filled["scores"][1]) == "Kroenke K et al."
    assert "clinicianCitation" not in stored["flags"][0]  # the stored result is not changed


def test_a_citation_the_result_carries_is_kept() -> None:
    catalog = load_catalog(FORMS)
    forms = {form.canonical: form for form in catalog.forms}
    stress = next(f.canonical for f in catalog.forms if f.key == "stress")
    kept = {"id": "phq9", "questionnaire": stress, "clinicianCitation": "As scored.",
            "instrumentClinicianCitation": "Instrument as scored."}
    assert with_clinician_citations({"scores": [kept]}, forms)["scores"] == [kept]

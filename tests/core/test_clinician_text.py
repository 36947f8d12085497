"""Rule wording as clinicians and EHRs read it: the bookkeeping goes, the published sources stay."""

from __future__ import annotations

import re
from pathlib import Path

from intake.core import extensions as ext
from intake.core.catalog import load_catalog
from intake.core.clinician_text import (
    clinician_message,
    clinician_reference,
    clinician_source,
    first_sentence,
    score_reference,
    with_onset_age,
)

FORMS = Path(__file__).resolve().parents[2] / "forms"
INTERNAL = re.compile(r"instruments\.md|clinical reference|\bsection \d|\b(?:un|partly-)?verified\b|"
                      r"\bAMBER\b|\b[A-Z]{1,2}-[A-Z]{1,2}\d|\bgi-af\d", re.IGNORECASE)


def test_messages_lose_rule_codes_and_item_ids() -> None:
    text = ("GI alarm feature GI-AF2: weight loss without trying in the last 6-12 months "
            "(amount in gi-af2-kg if given) (expedited review).")
    assert clinician_message(text) == ("GI alarm feature: weight loss without trying in the last 6-12 months "
                                       "(expedited review).")


def test_sources_keep_the_citation_and_drop_the_bookkeeping() -> None:
    text = ("instruments.md 2.2, GI-AF1 (in-house wording; feature listed in Lacy BE, Patel NK, J Clin Med "
            "2017;6:99). Tier mapping is local policy (reference RED = expedited review -> urgent; AMBER = "
            "clinician review -> review), needs clinical sign-off. Partly verified against the source.")
    out = clinician_source(text)
    assert "Lacy BE, Patel NK, J Clin Med 2017;6:99" in out
    assert not INTERNAL.search(out) and "sign-off" not in out and "policy" not in out


def test_comparisons_read_as_printed() -> None:
    assert clinician_message("Autoimmune red flag AI-RF4: new headache, aged >= 50.") == (
        "Autoimmune red flag: new headache, aged ≥ 50.")


def test_first_sentence_splits_headline_from_detail() -> None:
    assert first_sentence("Has fallen. Review.") == ("Has fallen.", "Review.")
    assert first_sentence("One line only") == ("One line only", "")


def test_no_rule_text_in_the_forms_leaks_internal_names() -> None:
    """Every message, note and citation of every current Questionnaire, cleaned."""
    catalog = load_catalog(FORMS)
    seen = 0
    for form in catalog.forms:
        for kind in ("flag", "finding", "crossDomainNote", "score", "instrument"):
            for extension in ext.find(form.resource, ext.PROJECT_EXT + kind):
                subs = ext.sub_values(extension)
                for key in ("message", "text"):
                    for value in subs.get(key) or []:
                        assert not INTERNAL.search(clinician_message(str(value))), value
                        seen += 1
                for value in subs.get("citation") or []:
                    assert not INTERNAL.search(clinician_source(str(value))), value
                    seen += 1
    assert seen > 50


def _definitions(node: object) -> list[dict[str, list[object]]]:
    """Every flag, finding, note, score and instrument definition of a resource, nested ones too."""
    kinds = {ext.PROJECT_EXT + k for k in ("flag", "finding", "crossDomainNote", "score", "instrument")}
    out: list[dict[str, list[object]]] = []
    if isinstance(node, dict):
        if node.get("url") in kinds:
            out.append(ext.sub_values(node))
        for value in node.values():
            out += _definitions(value)
    elif isinstance(node, list):
        for value in node:
            out += _definitions(value)
    return out


# What a clinician-facing citation never says: our bookkeeping, or wording the pattern cleaner
# used to leave behind ("(in-house wording): sources say", "checklist no validated ...").
BOOKKEEPING = re.compile(r"in-house|sign-off|sources say|local policy|not retrieved|mirrors|Intake's|"
                         r"\bRED\b|\btier\b|linkId|\bencoded\b|confirm", re.IGNORECASE)


def test_every_current_definition_has_a_clinician_citation() -> None:
    """Written for clinicians: a published source, or the clinic's protocol, and nothing else."""
    catalog = load_catalog(FORMS)
    seen = 0
    for form in catalog.forms:
        for subs in _definitions(form.resource):
            if not subs.get("citation"):
                continue
            written = subs.get("clinicianCitation") or []
            assert len(written) == 1, (form.key, subs.get("id") or subs.get("code"))
            text = str(written[0])
            assert not INTERNAL.search(text) and not BOOKKEEPING.search(text), text
            assert text.endswith(".") and text[0].isupper(), text
            assert clinician_reference(text, subs["citation"][0]) == text
            seen += 1
    assert seen >= 54  # issue 19 retired the note coeliac-family-relative-unknown (autoimmune 1.4.0)


def test_in_house_rules_read_as_clinic_protocol() -> None:
    catalog = load_catalog(FORMS)
    digestive = next(f for f in catalog.forms if f.key == "digestive")
    by_id = {str((s.get("id") or [None])[0]): s for s in _definitions(digestive.resource)}
    assert by_id["gi-af1-emergency"]["clinicianCitation"] == ["Clinic protocol (not a published instrument)."]
    assert "Lacy BE, Patel NK. J Clin Med 2017;6:99" in str(by_id["gi-af2"]["clinicianCitation"][0])


def test_a_rule_without_a_clinician_citation_falls_back_to_the_cleaned_one() -> None:
    """Archived Questionnaire versions and results scored before `clinicianCitation` existed."""
    old = "instruments.md 2.2, GI-AF3 (in-house wording; feature listed in Lacy BE, Patel NK, J Clin Med 2017;6:99)."
    assert clinician_reference(None, old) == clinician_source(old)
    assert clinician_reference("  ", old) == clinician_source(old)
    assert clinician_reference(None, None) == ""
    assert score_reference({"instrumentCitation": old, "instrumentClinicianCitation": "Written.",
                            "clinicianCitation": "Own."}) == "Written."
    assert score_reference({"instrumentCitation": None, "citation": old}) == clinician_source(old)
    assert score_reference({"citation": old, "clinicianCitation": "Own."}) == "Own."


STORED_GI_AF5 = ("GI alarm feature GI-AF5: bowel symptoms began at or over the onset-age threshold (default 50), "
                 "or the date of birth is unknown (clinician review).")


def test_the_onset_age_threshold_reads_as_the_configured_age() -> None:
    assert with_onset_age(STORED_GI_AF5, 45).startswith("GI alarm feature GI-AF5: bowel symptoms began at age 45 "
                                                        "or over, or the date")
    assert with_onset_age("the patient is now at or over the onset-age threshold (default 50) or", 60) == (
        "the patient is now aged 60 or over or")
    assert with_onset_age(STORED_GI_AF5, 50, birth_date_known=True) == (
        "GI alarm feature GI-AF5: bowel symptoms began at age 50 or over (clinician review).")
    assert with_onset_age("now at or over the onset-age threshold (default 50) or the age is unknown: ask", 50,
                          age_known=True) == "now at age 50 or over: ask"
    assert with_onset_age("No threshold here, or the date of birth is unknown.", 50, birth_date_known=True) == (
        "No threshold here, or the date of birth is unknown.")


def test_a_message_stored_with_the_default_reads_neutrally() -> None:
    """A result scored before the engine filled the threshold in: no number the clinic may not use."""
    assert clinician_message(STORED_GI_AF5) == ("GI alarm feature: bowel symptoms began at or over the clinic's "
                                                "onset-age threshold, or the date of birth is unknown "
                                                "(clinician review).")

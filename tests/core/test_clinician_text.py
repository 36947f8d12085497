"""Rule wording as clinicians and EHRs read it: the bookkeeping goes, the published sources stay."""

from __future__ import annotations

import re
from pathlib import Path

from intake.core import extensions as ext
from intake.core.catalog import load_catalog
from intake.core.clinician_text import clinician_message, clinician_source, first_sentence

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

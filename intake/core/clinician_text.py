"""Rule wording as a clinician or an EHR reads it: no internal bookkeeping.

The Questionnaires' messages and citations are written for the people who maintain the rules:
they name the project's clinical reference and its sections, the reference's rule codes
("GI-AF1"), item linkIds and how far a rule has been checked against its sources. That belongs in
the Questionnaire metadata and docs/ (docs/screening.md, "What the clinician reads"), not on the
summary, the PDF or a FHIR note. Each current rule carries a `clinicianCitation` written for
clinicians (docs/questionnaires.md), which `clinician_reference` prefers; the pattern functions
below strip the bookkeeping, sentence by sentence, from rules that have none (archived
Questionnaire versions, results scored before it existed), so the published sources stay.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# The project's own reference document and its section numbers ("instruments.md 4.2, AI-F1:",
# "(clinical reference, section 4.2)", "section 2.2").
_REFERENCE = re.compile(
    r"\(?\s*(?:the\s+)?(?:instruments\.md|clinical reference)(?:\s*,?\s*(?:section\s+)?\d+(?:\.\d+)*)?"
    r"(?:\s*(?:and|,)\s*\d+(?:\.\d+)*)*(?:\s*,?\s*end)?\s*\)?\s*[,:;]?",
    re.IGNORECASE,
)
_SECTION = re.compile(r"\(?\s*\bsections?\s+\d+(?:\.\d+)*\s*\)?\s*[,:;]?", re.IGNORECASE)
# The reference's rule codes ("GI-AF1", "AI-RF4", "N-RF2", "AI-F1") and item linkIds in prose
# ("gi-af2-kg", "ai-self-coeliac", "phq9-9", "%scores.mnsi").
_RULE_CODE = re.compile(r"\b[A-Z]{1,2}-[A-Z]{1,2}\d+[a-z]?\b")
_ITEM_PREFIXES = (r"(?:gi|ai|n|phq\d*|gad\d*|pss\d*|mnsi|medas|bsfs|ibs|sym|diet|digestive|stress|neuropathy|"
                  r"autoimmune|reason)")
_LINK_ID = re.compile(rf"%?\b{_ITEM_PREFIXES}-[a-z0-9]+(?:-[a-z0-9]+)*\b|%[a-z][A-Za-z0-9.]*")
# A parenthesis whose only job is to point at an item ("(amount in gi-af2-kg if given)").
_ITEM_ASIDE = re.compile(rf"\s*\([^()]*\b{_ITEM_PREFIXES}-[a-z0-9]+(?:-[a-z0-9]+)*\b[^()]*\)")
# Sentences about how far a rule has been checked, who must still sign it off, or the local
# tier policy: maintenance notes, not clinical content.
_BOOKKEEPING = re.compile(
    r"\b(?:un|partly[- ])?verif(?:ied|y|ication)\b|sign-off|reference tier|\bAMBER\b|\bRED\b|tier mapping|"
    r"local policy|not retrieved|seen via mirrors|Intake's (?:reading|definition)|to confirm against|"
    r"QuestionnaireResponse|\bencoded\b|\blinkId\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.;])\s+(?=[A-Z(])")
# A rule message naming a configurable threshold by its default ("at or over the onset-age
# threshold (default 50)", the GI age-at-onset rules): the clinician reads the threshold in force.
_ONSET_AGE = re.compile(r"(?P<now>is now )?at or over the onset-age threshold \(default \d+\)")
# The same rules' clauses for a patient whose age cannot be worked out.
_NO_BIRTH_DATE = re.compile(r",? or the date of birth is unknown")
_NO_AGE = re.compile(r" or the age is unknown")


def _tidy(text: str) -> str:
    text = re.sub(r"\(\s*[;,:]?\s*\)", "", text)
    text = re.sub(r"\s+([,.;:)])", r"\1", text)
    text = re.sub(r"([,;:])\s*([,;:.])", r"\2", text)
    text = re.sub(r"\(\s+", "(", text)
    text = re.sub(r"\s{2,}", " ", text)
    return text.strip(" ,;:")


def with_onset_age(text: str, age: int | None, *, birth_date_known: bool = False, age_known: bool = False) -> str:
    """`text` with the GI age-at-onset threshold stated as the configured age (setting
    `INTAKE_GI_ONSET_AGE`), or, when it is not known (a result stored before the engine filled
    it in), as the clinic's threshold without a number. The clauses for an unknown birth date or
    age go when the patient's are known: "began at age 50 or over", not "..., or the date of
    birth is unknown" beside a birth date."""
    def phrase(match: re.Match[str]) -> str:
        if age is None:
            return f"{match['now'] or ''}at or over the clinic's onset-age threshold"
        return f"is now aged {age} or over" if match["now"] else f"at age {age} or over"
    if not _ONSET_AGE.search(text):
        return text
    text = _ONSET_AGE.sub(phrase, text)
    if birth_date_known:
        text = _NO_BIRTH_DATE.sub("", text)
    if age_known:
        text = _NO_AGE.sub("", text)
    return text


def clinician_message(text: str) -> str:
    """A flag message or note text without rule codes, item ids or reference sections (and no
    threshold given only as its default)."""
    text = with_onset_age(text, None)
    text = _REFERENCE.sub(" ", text)
    text = _SECTION.sub(" ", text)
    text = _ITEM_ASIDE.sub("", text)
    text = _RULE_CODE.sub("", text)
    text = re.sub(r"\b(GI alarm feature|red flag)\s*:", r"\1:", text)
    text = text.replace(">=", "≥").replace("<=", "≤")  # "aged >= 50" as printed, not as typed
    return _tidy(text)


def clinician_source(text: str) -> str:
    """A citation as a reference list shows it: the published sources, without the sentences
    that track verification, sign-off or local policy (empty when nothing else is left)."""
    text = _REFERENCE.sub(" ", text)
    text = _SECTION.sub(" ", text)
    kept = []
    for sentence in _SENTENCE_END.split(text):
        if _BOOKKEEPING.search(sentence):
            continue
        if _LINK_ID.search(sentence) or sentence.lstrip("( ").startswith("Rule:"):
            continue  # how the rule reads the items: for the maintainers
        sentence = _tidy(_RULE_CODE.sub("", sentence))
        if len(sentence) > 3:
            kept.append(sentence if sentence.endswith((".", ")")) else sentence + ".")
    return " ".join(kept)


def clinician_reference(written: object, citation: object) -> str:
    """A rule's source for a reference list: its `clinicianCitation` when it has one, else the
    maintainers' `citation` cleaned by pattern (older versions); empty when neither says anything."""
    if isinstance(written, str) and written.strip():
        return written.strip()
    return clinician_source(str(citation)) if citation else ""


def score_reference(score: Mapping[str, Any]) -> str:
    """The source of a scored result (`Score.as_json`): its instrument's, else the score's own."""
    if score.get("instrumentCitation"):
        return clinician_reference(score.get("instrumentClinicianCitation"), score["instrumentCitation"])
    return clinician_reference(score.get("clinicianCitation"), score.get("citation"))


def first_sentence(text: str) -> tuple[str, str]:
    """(the first sentence, the rest): a flag's headline and its detail."""
    parts = re.split(r"(?<=\.)\s+(?=[A-Z])", text.strip(), maxsplit=1)
    return parts[0], (parts[1] if len(parts) > 1 else "")

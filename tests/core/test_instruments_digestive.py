"""Digestive Questionnaire rules (forms/digestive.json 1.4.0): GI alarm flags and the IBS pattern.

Reference: ../shared/instruments.md 2.2 (GI-AF1..10, tiers, age at onset, the GI-AF1 emergency branch)
and 2.3 (BSFS, Rome IV-style IBS pattern and subtype). Responses are built with the real form,
scored with the real engine; patient wording is checked in English and Spanish.
"""

from __future__ import annotations

from typing import Any

import pytest

from intake.core import fhirpath
from intake.core.answers import build_response
from intake.core.catalog import Catalog
from intake.core.items import Form
from intake.core.scoring import Context, Result, score_intake, score_response
from intake.core.translations import flag_guidance, translation

CANONICAL = "https://intake.example.org/fhir/Questionnaire/digestive|1.5.0"
AUTHORED = "2024-05-01T10:00:00Z"
BOOLEAN_ALARMS = ["gi-af1", "gi-af2", "gi-af3", "gi-af4", "gi-af6", "gi-af7", "gi-af8", "gi-af9", "gi-af10"]
TIERS = {
    "gi-af1": "urgent", "gi-af2": "urgent", "gi-af3": "urgent", "gi-af4": "review", "gi-af6": "urgent",
    "gi-af7": "review", "gi-af8": "urgent", "gi-af9": "review", "gi-af10": "urgent",
}
TEXT = "Symptom pattern consistent with {} (Rome IV-style criteria, paraphrased; not a diagnosis)"


@pytest.fixture(scope="module")
def digestive(catalog: Catalog) -> Form:
    return catalog.by_key["digestive"]


@pytest.fixture(scope="module")
def spanish(catalog: Catalog, digestive: Form) -> Form:
    return catalog.localized(digestive, "es")


def yes(value: bool = True) -> list[dict[str, Any]]:
    return [{"valueBoolean": value}]


def number(value: int) -> list[dict[str, Any]]:
    return [{"valueInteger": value}]


def onset(value: str) -> list[dict[str, Any]]:
    return [{"valueDate": value}]


def no_alarms(**more: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    answers = {link: yes(False) for link in BOOLEAN_ALARMS}
    answers.update({k.replace("_", "-"): v for k, v in more.items()})
    return answers


def ibs(
    hard: int | None = None, loose: int | None = None, **more: list[dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """Rome IV-style criteria met: weekly pain, 2 of 3 associated features, onset > 6 months.

    The onset is the date `gi-af5` (asked once, digestive 1.5.0), here 2023-06 for a response
    authored 2024-05.
    """
    answers = no_alarms(**{"gi-af5": onset("2023-06"), **more})
    answers.update({
        "ibs-pain-weekly": yes(), "ibs-pain-defecation": yes(), "ibs-pain-frequency": yes(False),
        "ibs-pain-form": yes(),
    })
    if hard is not None:
        answers["bsfs-hard-pct"] = number(hard)
    if loose is not None:
        answers["bsfs-loose-pct"] = number(loose)
    return answers


def score(form: Form, answers: dict[str, list[dict[str, Any]]], context: Context | None = None,
          status: str = "completed") -> Result:
    response = build_response(form, answers, status=status, subject="Patient/p1", authored=AUTHORED)
    return score_response(form, response, context or Context(birth_date="1990-03-15"))


def flags(result: Result) -> list[tuple[str, str]]:
    return [(f.id, f.tier) for f in result.flags]


def test_version_is_bumped(digestive: Form) -> None:
    assert digestive.version == "1.5.0"
    assert score(digestive, no_alarms()).versions == {CANONICAL: f"engine-1;{CANONICAL}"}


def test_no_alarm_no_flag_and_no_numeric_score(digestive: Form) -> None:
    everything = no_alarms(**{"gi-af5": onset("2020-01")})
    everything.update({link: [{"valueCoding": {"system": "https://intake.example.org/fhir/CodeSystem/intake-answers",
                                               "code": "every-day", "display": "Every day"}}]
                       for link in ("sym-pain", "sym-bloating", "sym-reflux", "sym-diarrhoea", "sym-constipation")})
    result = score(digestive, everything)
    assert result.flags == []
    assert result.notes == []
    assert result.scores == []  # symptom frequencies are not a validated score


@pytest.mark.parametrize("link", BOOLEAN_ALARMS)
def test_each_alarm_item_raises_its_flag_and_tier(digestive: Form, spanish: Form, link: str) -> None:
    answers = no_alarms()
    answers[link] = yes()
    result = score(digestive, answers)
    assert flags(result) == [(link, TIERS[link])]
    flag = result.flags[0]
    assert flag.because == (link,)
    assert flag.verification == "partly-verified"
    assert flag.questionnaire == CANONICAL
    assert "instruments.md 2.2" in (flag.citation or "")
    assert link.upper() in flag.message
    if TIERS[link] == "urgent":  # calm guidance on the confirmation page, in the patient's language
        guidance = flag.patient_guidance or ""
        assert guidance.startswith("You told us ")
        assert "Please contact the clinic today to tell them. Do not wait for your appointment." in guidance
        es = flag_guidance(spanish.resource, link) or ""
        assert es.startswith("Usted nos dijo que ")
        assert "Por favor, comuníquese hoy con la clínica para contárselo. No espere a su cita." in es
        assert not any(ch.isdigit() for ch in guidance + es)  # no country's phone numbers
    else:
        assert flag.patient_guidance is None


def test_tier_mapping_red_urgent_amber_review(digestive: Form) -> None:
    result = score(digestive, {link: yes() for link in BOOLEAN_ALARMS})
    assert sorted(flags(result)) == sorted(TIERS.items())
    for flag in result.flags:
        # The reference's RED tier is urgent (expedited review), AMBER is review; the message says
        # what to do, not which tier of our reference document it came from.
        expected = "(expedited review)" if flag.tier == "urgent" else "clinician review"
        assert expected in flag.message and "reference" not in flag.message


def test_flags_are_evaluated_on_an_incomplete_response(digestive: Form) -> None:
    assert flags(score(digestive, {"gi-af1": yes()}, status="in-progress")) == [("gi-af1", "urgent")]


# --- GI-AF1: the emergency branch (bleeding with dizziness/fainting or vomiting blood) ---------

FOLLOW_UPS = ["gi-af1-dizzy", "gi-af1-vomit-blood"]


def test_gi_af1_follow_ups_are_asked_only_after_a_yes(digestive: Form, spanish: Form) -> None:
    items = {link: digestive.by_link[link] for link in FOLLOW_UPS}
    order = [i.link_id for i in digestive.walk()]
    assert (
        order.index("gi-af1") < order.index("gi-af1-dizzy") < order.index("gi-af1-vomit-blood") < order.index("gi-af2")
    )
    for link, item in items.items():
        assert item.type == "boolean" and item.required
        assert item.raw["enableWhen"] == [{"question": "gi-af1", "operator": "=", "answerBoolean": True}]
        assert [c["code"] for c in item.raw["code"]] == [link.upper()]  # local code only, no LOINC/SNOMED
        assert {c["system"] for c in item.raw["code"]} == {"https://intake.example.org/fhir/CodeSystem/intake-items"}
    assert (
        items["gi-af1-dizzy"].text == "With the bleeding, have you also felt dizzy or faint, or fainted (passed out)?"
    )
    assert items["gi-af1-vomit-blood"].text == ("Have you also vomited (been sick) blood, or something that looks like "
                                                "coffee grounds?")
    assert spanish.by_link["gi-af1-dizzy"].text == (
        "Junto con el sangrado, ¿se ha sentido también mareado(a) o a punto de desmayarse, o se ha desmayado?"
    )
    assert spanish.by_link["gi-af1-vomit-blood"].text == "¿Ha vomitado también sangre, o algo que parece posos de café?"
    # after a No they are switched off and their answers dropped
    answers = no_alarms(**{"gi-af1-dizzy": yes(), "gi-af1-vomit-blood": yes()})
    assert score(digestive, answers).flags == []


@pytest.mark.parametrize(("dizzy", "vomit", "emergency"), [
    (True, False, True), (False, True, True), (True, True, True), (False, False, False), (None, None, False),
])
def test_gi_af1_with_dizziness_or_vomiting_blood_is_an_emergency(digestive: Form, dizzy: bool | None,
                                                                 vomit: bool | None, emergency: bool) -> None:
    answers = no_alarms(**{"gi-af1": yes()})
    if dizzy is not None:
        answers["gi-af1-dizzy"] = yes(dizzy)
    if vomit is not None:
        answers["gi-af1-vomit-blood"] = yes(vomit)
    result = score_intake([(digestive, build_response(digestive, answers, status="in-progress", subject="Patient/p1",
                                                      authored=AUTHORED))], Context(birth_date="1990-03-15"))
    expected = [("gi-af1-emergency", "emergency")] if emergency else []
    assert flags(result) == [*expected, ("gi-af1", "urgent")]  # gi-af1 itself stays urgent


def test_gi_af1_emergency_flag_wording_and_provenance(digestive: Form, spanish: Form) -> None:
    result = score(digestive, no_alarms(**{"gi-af1": yes(), "gi-af1-vomit-blood": yes(), "gi-af1-dizzy": yes(False)}))
    assert flags(result) == [("gi-af1", "urgent"), ("gi-af1-emergency", "emergency")]  # declaration order
    flag = result.flags[1]
    assert flag.because == ("gi-af1", "gi-af1-dizzy", "gi-af1-vomit-blood")
    assert flag.verification == "unverified"
    assert "In-house wording" in (flag.citation or "") and "clinical sign-off required" in (flag.citation or "")
    assert "'if with fainting/dizziness or vomiting blood -> show emergency advice'" in (flag.citation or "")
    assert "instruments.md" not in flag.message + (flag.patient_guidance or "")
    assert "vomiting blood" in flag.message and "dizziness" in flag.message
    guidance = flag.patient_guidance or ""
    assert guidance == ("You told us you have had blood in your stool (poo), or black, tarry stools, and that you have "
                        "also felt dizzy or faint, fainted, or vomited blood. This needs help straight away. Call your "
                        "local emergency number now, or go to the nearest emergency department. Do not wait for your "
                        "appointment.")
    es = flag_guidance(spanish.resource, "gi-af1-emergency") or ""
    assert es.startswith("Usted nos dijo que ha tenido sangre en las heces (popó)")
    assert "Llame ahora al número local de emergencias" in es and "No espere a su cita." in es


def test_gi_af1_message_names_the_emergency_follow_ups(digestive: Form) -> None:
    flag = score(digestive, no_alarms(**{"gi-af1": yes(), "gi-af1-dizzy": yes(False),
                                         "gi-af1-vomit-blood": yes(False)})).flags[0]
    assert flag.id == "gi-af1"
    citation = flag.citation or ""
    assert "gi-af1-dizzy" in citation and "gi-af1-vomit-blood" in citation and "gi-af1-emergency" in citation
    assert "does not ask" not in flag.message and "expedited review" in flag.message
    assert "If you feel dizzy or faint, or you vomit blood, call your local emergency number now." in (
        flag.patient_guidance or "")


# --- GI-AF5: age at onset ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "start", "raised"),
    [
        ("1974-06-15", "2024-05", False),  # 49 years 11 months
        ("1974-06-15", "2024-06", True),   # exactly 50 years (600 months)
        ("1974-06-30", "2024-06", True),   # whole months: the day of birth is ignored
        ("1974-06-01", "2024-05", False),
        ("1960-01-01", "2024-05", True),
        ("1974-06-15", "2024-06-03", True),  # a full date uses its month
        ("1974-06-15", "2024-05-31", False),
        ("1974-01-15", "2024", True),      # year only: December assumed -> 611 months
        ("1974-12-15", "2024", True),      # year only: December assumed -> 600 months
        ("1975-01-15", "2024", False),     # year only: December assumed -> 599 months
    ],
)
def test_gi_af5_age_boundary_at_default_threshold(digestive: Form, birth: str, start: str, raised: bool) -> None:
    result = score(digestive, no_alarms(**{"gi-af5": onset(start)}), Context(birth_date=birth))
    assert flags(result) == ([("gi-af5", "review")] if raised else [])


@pytest.mark.parametrize(("start", "threshold", "raised"), [
    ("2024-05", 45, False),  # 44 years 11 months
    ("2024-06", 45, True),   # 45 years
    ("2024-06", 50, False),
    ("2029-06", 50, True),
])
def test_gi_af5_threshold_is_configurable(digestive: Form, start: str, threshold: int, raised: bool) -> None:
    context = Context(birth_date="1979-06-20", gi_onset_age_threshold=threshold)
    result = score(digestive, no_alarms(**{"gi-af5": onset(start)}), context)
    assert flags(result) == ([("gi-af5", "review")] if raised else [])


@pytest.mark.parametrize(("start", "raised"), [
    ("2020", True),      # turned 50 in May 2020: a year-only onset may be December, aged 50
    ("2019", False),     # at most December 2019: 49 years 7 months
    ("2020-04", False),  # 49 years 11 months
    ("2020-05", True),   # 50 years
    ("2020-05-01", True),
    ("2020-04-30", False),
])
def test_gi_af5_uses_the_latest_moment_the_answer_allows(digestive: Form, start: str, raised: bool) -> None:
    """Reference oracle (2.2): age at onset >= threshold (50); birth 1970-05."""
    result = score(digestive, no_alarms(**{"gi-af5": onset(start)}), Context(birth_date="1970-05-20"))
    assert flags(result) == ([("gi-af5", "review")] if raised else [])


def test_gi_af5_unanswered_without_bowel_symptoms_raises_nothing(digestive: Form) -> None:
    assert score(digestive, no_alarms(), Context(birth_date="1930-01-01")).flags == []


def test_gi_af5_without_a_birth_date_is_raised_for_a_clinician_to_check(digestive: Form) -> None:
    result = score(digestive, no_alarms(**{"gi-af5": onset("2024-05")}), Context())
    assert flags(result) == [("gi-af5", "review")]
    assert "date of birth is unknown" in result.flags[0].message


def test_gi_af5_documents_the_boundary_and_the_missing_month(digestive: Form) -> None:
    flag = score(digestive, no_alarms(**{"gi-af5": onset("1990-01")}), Context(birth_date="1930-01-01")).flags[0]
    assert flag.because == ("gi-af5",)
    assert flag.verification == "partly-verified"
    assert "(>= 50 vs > 50) is not consistent across sources" in (flag.citation or "")
    assert "read as December of that year" in (flag.citation or "")
    # the threshold in force, not "(default 50)"
    assert "bowel symptoms began at age 50 or over (clinician review)" in flag.message  # the birth date is known
    assert "default" not in flag.message


def test_gi_af5_messages_state_the_configured_threshold(digestive: Form) -> None:
    context = Context(birth_date="1970-05-20", gi_onset_age_threshold=45)
    onset_flag = score(digestive, no_alarms(**{"gi-af5": onset("2024-05")}), context).flags[0]
    assert "began at age 45 or over" in onset_flag.message and "default" not in onset_flag.message
    no_onset = ibs(30, 0, **{"sym-pain": SOME_DAYS})
    del no_onset["gi-af5"]
    unknown = score(digestive, no_onset, context).flags[0]
    assert unknown.id == "gi-af5-onset-unknown"
    assert "the patient is now aged 45 or over: ask when" in unknown.message
    no_birth_date = score(digestive, no_alarms(**{"gi-af5": onset("2024-05")}), Context(gi_onset_age_threshold=45))
    assert "began at age 45 or over, or the date of birth is unknown" in no_birth_date.flags[0].message


# --- GI-AF5 with no onset date: conservative review ---------------------------------------------

NEVER = [{"valueCoding": {"system": "https://intake.example.org/fhir/CodeSystem/intake-answers", "code": "never"}}]
SOME_DAYS = [{"valueCoding": {"system": "https://intake.example.org/fhir/CodeSystem/intake-answers",
                              "code": "some-days"}}]
BOWEL = [{"sym-pain": SOME_DAYS}, {"sym-bloating": SOME_DAYS}, {"sym-diarrhoea": SOME_DAYS},
         {"sym-constipation": SOME_DAYS}, {"ibs-pain-weekly": yes()}, {"gi-af1": yes()}, {"gi-af3": yes()},
         {"gi-af7": yes()}]


def quiet_symptoms(**more: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    answers = no_alarms(**{link: NEVER for link in ("sym-pain", "sym-bloating", "sym-reflux", "sym-diarrhoea",
                                                    "sym-constipation")})
    answers["ibs-pain-weekly"] = yes(False)
    answers.update(more)
    return answers


@pytest.mark.parametrize("symptom", BOWEL, ids=lambda s: next(iter(s)))
def test_no_onset_date_with_bowel_symptoms_at_or_over_the_threshold_is_reviewed(digestive: Form,
                                                                                 symptom: dict[str, Any]) -> None:
    result = score(digestive, quiet_symptoms(**symptom), Context(birth_date="1974-05-01"))  # 50 on 2024-05-01
    assert ("gi-af5-onset-unknown", "review") in flags(result)
    assert "gi-af5" not in [f.id for f in result.flags]


@pytest.mark.parametrize(("birth", "raised"), [
    ("1974-05-01", True),   # 50 on the day the response was authored
    ("1974-05-02", False),  # one day short of 50: the onset cannot have been at 50
    ("1950-01-01", True),
    (None, True),           # age unknown: a clinician checks
])
def test_no_onset_date_follows_the_current_age(digestive: Form, birth: str | None, raised: bool) -> None:
    result = score(digestive, quiet_symptoms(**{"sym-diarrhoea": SOME_DAYS}), Context(birth_date=birth))
    assert flags(result) == ([("gi-af5-onset-unknown", "review")] if raised else [])


@pytest.mark.parametrize("answers", [
    {},                                                        # no bowel symptom reported
    {"sym-reflux": SOME_DAYS},                                 # heartburn is not a bowel symptom
    {"sym-pain": SOME_DAYS, "gi-af5": onset("2023-01")},       # onset given: the GI-AF5 rule decides
])
def test_no_onset_flag_needs_bowel_symptoms_and_a_missing_date(digestive: Form, answers: dict[str, Any]) -> None:
    result = score(digestive, quiet_symptoms(**answers), Context(birth_date="1930-01-01"))
    assert "gi-af5-onset-unknown" not in [f.id for f in result.flags]


def test_no_onset_flag_wording_and_provenance(digestive: Form) -> None:
    answers = ibs(30, 0, **{"sym-pain": SOME_DAYS})
    del answers["gi-af5"]
    result = score(digestive, answers, Context(birth_date="1950-01-01"))
    assert flags(result) == [("gi-af5-onset-unknown", "review")]
    assert result.notes == []  # a review flag hides the IBS-pattern wording, as any GI alarm does
    flag = result.flags[0]
    assert "without an onset date" in flag.message and "ask when the symptoms started" in flag.message
    assert flag.because[0] == "gi-af5" and "sym-pain" in flag.because and "ibs-pain-weekly" in flag.because
    assert flag.verification == "unverified" and "clinical sign-off required" in (flag.citation or "")
    assert flag.patient_guidance is None


# --- IBS pattern ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hard", "loose", "subtype"),
    [
        (26, 24, "IBS-C"),
        (26, 0, "IBS-C"),
        (25, 0, "IBS-U"),   # exactly 25 is not > 25
        (26, 25, "IBS-U"),  # loose must be < 25 for IBS-C
        (24, 26, "IBS-D"),
        (0, 26, "IBS-D"),
        (0, 25, "IBS-U"),
        (25, 26, "IBS-U"),  # hard must be < 25 for IBS-D
        (26, 26, "IBS-M"),
        (25, 25, "IBS-U"),
        (26, 100, "IBS-M"),
        (0, 0, "IBS-U"),
    ],
)
def test_ibs_pattern_subtypes_at_the_25_percent_boundaries(
    digestive: Form, hard: int, loose: int, subtype: str
) -> None:
    result = score(digestive, ibs(hard, loose))
    assert result.flags == []
    assert [(n.id, n.kind, n.text) for n in result.notes] == [("ibs-pattern", "finding", TEXT.format(subtype))]


NOT_ASSESSED = ("IBS; subtype not assessed: the percentages of hard (types 1-2) and loose (types 6-7) bowel "
                "movements were not both answered")


@pytest.mark.parametrize(("hard", "loose"), [(None, None), (80, None), (None, 80), (None, 0), (0, None)])
def test_ibs_subtype_is_not_assessed_when_a_percentage_is_unanswered(digestive: Form, hard: int | None,
                                                                     loose: int | None) -> None:
    [text] = [n.text for n in score(digestive, ibs(hard, loose)).notes]
    assert text == TEXT.format(NOT_ASSESSED)
    assert "IBS-U" not in text and "IBS-C" not in text and "IBS-D" not in text and "IBS-M" not in text


# --- hard + loose percentages above 100 are refused (questionnaire-constraint) ---------------------


def bowel_constraint(form: Form) -> dict[str, Any]:
    group = form.by_link["digestive-bowel-bsfs"]
    [constraint] = [e for e in group.raw["extension"]
                    if e["url"] == "http://hl7.org/fhir/StructureDefinition/questionnaire-constraint"]
    return {s["url"]: s for s in constraint["extension"]}


def test_bowel_percentages_constraint_shape_and_message(digestive: Form, spanish: Form) -> None:
    parts = bowel_constraint(digestive)
    assert parts["key"]["valueId"] == "bowel-percent-sum"
    assert parts["severity"]["valueCode"] == "error"
    assert parts["location"]["valueString"] == "bsfs-loose-pct"
    human = parts["human"]
    assert human["valueString"] == ("Your two percentages add up to more than 100%. Check your answers about hard and "
                                    "loose bowel movements.")
    assert translation(human, "valueString", "es") == ("Sus dos porcentajes suman más del 100 %. Revise sus respuestas "
                                                       "sobre las evacuaciones duras y blandas.")
    assert bowel_constraint(spanish)["human"]["valueString"].startswith("Sus dos porcentajes suman más del 100 %")


@pytest.mark.parametrize(("hard", "loose", "valid"), [
    (60, 41, False), (100, 100, False), (60, 40, True), (0, 100, True), (25, 25, True), (80, None, True),
    (None, 80, True), (None, None, True),
])
def test_bowel_percentages_constraint_refuses_a_sum_above_100(digestive: Form, hard: int | None, loose: int | None,
                                                              valid: bool) -> None:
    response = build_response(
        digestive, ibs(hard, loose), status="in-progress", subject="Patient/p1", authored=AUTHORED
    )
    expression = bowel_constraint(digestive)["expression"]["valueString"]
    assert fhirpath.evaluate(expression, response, variables={"resource": response}) == [valid]


def test_ibs_finding_carries_its_source(digestive: Form) -> None:
    note = score(digestive, ibs(30, 0)).notes[0]
    assert note.because == ("ibs-pain-weekly", "ibs-pain-defecation", "ibs-pain-frequency", "ibs-pain-form",
                            "gi-af5", "bsfs-hard-pct", "bsfs-loose-pct")
    assert note.verification == "partly-verified"
    assert "instruments.md 2.3" in (note.citation or "")
    assert "Lacy BE et al., Gastroenterology 2016" in (note.citation or "")
    assert "subtype not assessed" in (note.citation or "") and "bowel-percent-sum" in (note.citation or "")
    assert note.questionnaire == CANONICAL


@pytest.mark.parametrize(("defecation", "frequency", "form"), [
    (True, True, False), (True, False, True), (False, True, True), (True, True, True),
])
def test_ibs_two_of_three_features_meet_the_pattern(
    digestive: Form, defecation: bool, frequency: bool, form: bool
) -> None:
    answers = ibs(0, 30)
    answers.update({"ibs-pain-defecation": yes(defecation), "ibs-pain-frequency": yes(frequency),
                    "ibs-pain-form": yes(form)})
    assert [n.text for n in score(digestive, answers).notes] == [TEXT.format("IBS-D")]


@pytest.mark.parametrize("change", [
    {"ibs-pain-defecation": False, "ibs-pain-frequency": False, "ibs-pain-form": True},  # only 1 of 3
    {"ibs-pain-defecation": True, "ibs-pain-frequency": False, "ibs-pain-form": False},
    {"ibs-pain-defecation": False, "ibs-pain-frequency": False, "ibs-pain-form": False},
])
def test_ibs_pattern_not_met_gives_no_finding(digestive: Form, change: dict[str, bool]) -> None:
    answers = ibs(30, 0)
    answers.update({link: yes(value) for link, value in change.items()})
    assert score(digestive, answers).notes == []


@pytest.mark.parametrize(("start", "met"), [
    ("2023-11", True),   # authored 2024-05: 6 months exactly
    ("2023-12", False),  # 5 months
    ("2023", False),     # a year only is read as December 2023: 5 months, not overstated
    ("2022", True),
    ("2024-05", False),
])
def test_ibs_onset_criterion_is_read_from_the_onset_date(digestive: Form, start: str, met: bool) -> None:
    notes = score(digestive, ibs(0, 30, **{"gi-af5": onset(start)})).notes
    assert [n.text for n in notes] == ([TEXT.format("IBS-D")] if met else [])


def test_ibs_pattern_without_an_onset_date_says_the_criterion_was_not_checked(digestive: Form) -> None:
    answers = ibs(0, 30)
    del answers["gi-af5"]
    notes = score(digestive, answers).notes
    assert [n.text for n in notes] == [TEXT.format(
        "IBS-D (onset date not given: the 6-month onset criterion was not checked)")]


def test_the_onset_is_asked_once(digestive: Form) -> None:
    links = {item.link_id for page in digestive.pages for item in page.walk()}
    assert "gi-af5" in links and "ibs-onset-6m" not in links
    texts = [item.text for page in digestive.pages for item in page.walk() if item.is_question]
    assert not [t for t in texts if "6 months" in (t or "")]


def test_ibs_pattern_needs_weekly_pain(digestive: Form) -> None:
    answers = ibs(30, 0)
    answers["ibs-pain-weekly"] = yes(False)  # the follow-ups are disabled and dropped
    assert score(digestive, answers).notes == []


def test_ibs_one_of_three_with_the_others_unanswered_is_not_met(digestive: Form) -> None:
    answers = ibs(30, 0)
    del answers["ibs-pain-defecation"], answers["ibs-pain-frequency"]
    answers["ibs-pain-form"] = yes()
    assert score(digestive, answers).notes == []


@pytest.mark.parametrize("link", BOOLEAN_ALARMS)
def test_any_alarm_flag_suppresses_the_ibs_pattern(digestive: Form, link: str) -> None:
    answers = ibs(30, 0)
    answers[link] = yes()
    result = score(digestive, answers)
    assert flags(result) == [(link, TIERS[link])]
    assert result.notes == []
    response = build_response(digestive, answers, status="completed", subject="Patient/p1", authored=AUTHORED)
    assert score_intake([(digestive, response)], Context(birth_date="1990-03-15")).notes == []


def test_age_at_onset_flag_suppresses_the_ibs_pattern(digestive: Form) -> None:
    answers = ibs(30, 0, **{"gi-af5": onset("2023-11")})
    assert [n.id for n in score(digestive, answers, Context(birth_date="1990-03-15")).notes] == ["ibs-pattern"]
    result = score(digestive, answers, Context(birth_date="1973-11-15"))
    assert flags(result) == [("gi-af5", "review")]
    assert result.notes == []


def test_the_bristol_question_carries_its_chart_with_alt_text_in_both_languages(digestive: Form, spanish: Form) -> None:
    media_url = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-itemMedia"

    def media(form: Form) -> dict[str, Any]:
        [extension] = [e for e in form.by_link["bsfs-usual"].raw["extension"] if e["url"] == media_url]
        return dict(extension["valueAttachment"])

    english, localized = media(digestive), media(spanish)
    assert (english["contentType"], english["url"]) == ("image/svg+xml", "/static/img/bristol-stool-chart.svg")
    assert english["title"].startswith("Bristol stool chart: seven types")
    assert localized["title"].startswith("Escala de heces de Bristol") and localized["url"] == english["url"]

"""Cross-domain rules: notes on forms/autoimmune.json 1.4.0 (instruments.md 4.2 AI-F1..F3, AI-F5 and
5.3) and the digestive GI-AF4 flag fed by the autoimmune family history (AI-F4).

Each note is scored with `score_intake` over the real digestive, autoimmune and diet forms. The MNSI
total comes from a minimal stand-in Questionnaire declaring a score with id `mnsi` (so these tests do
not depend on neuropathy.json), plus one check with the real neuropathy form (which must declare it).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from intake.core.answers import build_response
from intake.core.catalog import Catalog
from intake.core.items import Form
from intake.core.scoring import Context, Note, Result, score_intake, score_response
from tests.core.factories import (
    CALCULATED_EXPRESSION,
    PROJECT_EXT,
    expression,
    form,
    group,
    question,
)

AUTHORED = "2024-05-01T10:00:00Z"
AUTOIMMUNE = "https://intake.example.org/fhir/Questionnaire/autoimmune|1.4.0"
CONDITIONS = ["coeliac", "rheumatoid-arthritis", "lupus", "multiple-sclerosis", "hashimoto", "graves",
              "type1-diabetes", "ibd", "psoriasis", "pernicious-anaemia"]
ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
ANSWERS = "https://intake.example.org/fhir/CodeSystem/intake-answers"
YES = {"system": "http://loinc.org", "code": "LA33-6", "display": "Yes"}
NO = {"system": "http://loinc.org", "code": "LA32-8", "display": "No"}
UNSURE = {"system": ANSWERS, "code": "unsure", "display": "Not sure"}
NONE = {"system": ANSWERS, "code": "none", "display": "None of these"}
SNOMED = "http://snomed.info/sct"
FAMILY_SNOMED = {"coeliac": "396331005", "rheumatoid-arthritis": "69896004", "lupus": "55464009",
                 "multiple-sclerosis": "24700007", "hashimoto": "21983002", "graves": "353295004",
                 "type1-diabetes": "46635009", "ibd": "24526004", "psoriasis": "9014002",
                 "pernicious-anaemia": "84027009"}
SYMPTOMS = ["sym-pain", "sym-bloating", "sym-reflux", "sym-diarrhoea", "sym-constipation"]
ALARMS = ["gi-af1", "gi-af2", "gi-af3", "gi-af4", "gi-af6", "gi-af7", "gi-af8", "gi-af9", "gi-af10"]
SEROLOGY = "Consider coeliac serology (tTG-IgA with total IgA) on a gluten-containing diet."
FALSE_NEGATIVE = "Serology may be falsely negative on a gluten-free diet."
B12 = "Consider checking vitamin B12 status (local rule)"

Answers = dict[str, list[dict[str, Any]]]


def mnsi_like() -> Form:
    """A stand-in for the MNSI group: the total is the one integer answered, score id `mnsi`."""
    score = {"url": PROJECT_EXT + "score", "extension": [
        {"url": "id", "valueCode": "mnsi"}, {"url": "title", "valueString": "MNSI-like total"},
        {"url": "item", "valueString": "n-total"}, {"url": "requires", "valueString": "n-in"},
    ]}
    total = question("n-total", "integer", readOnly=True, extension=[
        expression(CALCULATED_EXPRESSION, "%resource.repeat(item).where(linkId='n-in').answer.value")])
    return form(group("n", question("n-in", "integer"), total, extension=[score]),
                url="https://intake.example.org/fhir/Questionnaire/mnsi-like", id="mnsi-like")


def coded(coding: dict[str, str]) -> list[dict[str, Any]]:
    return [{"valueCoding": dict(coding)}]


def boolean(value: bool = True) -> list[dict[str, Any]]:
    return [{"valueBoolean": value}]


def who(*codes: str) -> list[dict[str, Any]]:
    return [{"valueCoding": {"system": ROLE, "code": code}} for code in codes]


def autoimmune_answers(**changes: list[dict[str, Any]]) -> Answers:
    """No to everything, then `changes`. A family answer `ai-family-<condition>` (relatives, or Not
    sure) ticks that condition in the first family question; `coded(NONE)` there means the
    condition is not ticked; with none ticked the first question is "None of these"."""
    answers: Answers = {f"ai-self-{c}": coded(NO) for c in CONDITIONS}
    answers.update({f"ai-rf{n}": boolean(False) for n in range(1, 5)})
    answers.update({link: value for link, value in changes.items()
                    if value != coded(NONE) or link == "ai-family-conditions"})
    ticked = [{"valueCoding": {"system": SNOMED, "code": code}} for c, code in FAMILY_SNOMED.items()
              if f"ai-family-{c}" in answers]
    answers.setdefault("ai-family-conditions", ticked or coded(NONE))
    return answers


def digestive_answers(**changes: list[dict[str, Any]]) -> Answers:
    """No alarm feature and every symptom 'never': no GI symptoms."""
    answers: Answers = {link: boolean(False) for link in ALARMS}
    answers.update({link: coded({"system": ANSWERS, "code": "never", "display": "Never"}) for link in SYMPTOMS})
    answers["ibs-pain-weekly"] = boolean(False)
    answers.update(changes)
    return answers


def often(code: str = "some-days") -> list[dict[str, Any]]:
    return coded({"system": ANSWERS, "code": code})


def b12(*codes: str) -> list[dict[str, Any]]:
    return [{"valueCoding": {"system": ANSWERS, "code": code}} for code in codes]


def intake(catalog: Catalog, *, autoimmune: Answers | None = None, digestive: Answers | None = None,
           diet: Answers | None = None, mnsi: int | None = None, mnsi_form: Form | None = None) -> Result:
    pairs = []
    for key, answers in (("digestive", digestive), ("autoimmune", autoimmune), ("diet", diet)):
        if answers is not None:
            f = catalog.by_key[key]
            pairs.append((f, build_response(f, answers, status="completed", subject="Patient/p1", authored=AUTHORED)))
    if mnsi is not None or mnsi_form is not None:
        f = mnsi_form or mnsi_like()
        answers = {"n-in": [{"valueInteger": mnsi}]} if mnsi is not None else {}
        pairs.append((f, build_response(f, answers, status="completed", subject="Patient/p1", authored=AUTHORED)))
    return score_intake(pairs, Context(birth_date="1980-01-01"))


def cross(result: Result) -> dict[str, Note]:
    return {n.id: n for n in result.notes if n.kind == "cross-domain"}


# --- AI-F1: first-degree relative with coeliac disease -----------------------------------------


@pytest.mark.parametrize("relatives", [("PRN",), ("SIB",), ("CHILD",), ("GRPRN", "SIB"), ("AUNT", "CHILD", "EXT")])
def test_coeliac_family_note_fires_for_a_first_degree_relative(catalog: Catalog, relatives: tuple[str, ...]) -> None:
    answers = autoimmune_answers(**{"ai-family-coeliac": who(*relatives)})
    notes = cross(intake(catalog, autoimmune=answers))
    assert list(notes) == ["coeliac-serology-family"]
    note = notes["coeliac-serology-family"]
    assert note.text == SEROLOGY
    assert note.because == ("ai-family-coeliac",)
    assert note.verification == "verified"
    assert note.questionnaire == AUTOIMMUNE
    assert "AI-F1" in (note.citation or "") and "ACG 2023" in (note.citation or "")
    assert "USPSTF 2017" in (note.citation or "")


@pytest.mark.parametrize("changes", [
    {"ai-family-coeliac": who("GRPRN", "AUNT", "UNCLE", "EXT")},
    {"ai-family-coeliac": coded(NONE)},
    {"ai-family-coeliac": coded(UNSURE)},
    {"ai-family-lupus": who("PRN")},   # another condition
    {"ai-self-coeliac": coded(YES)},
])
def test_coeliac_family_note_does_not_fire(catalog: Catalog, changes: Answers) -> None:
    assert cross(intake(catalog, autoimmune=autoimmune_answers(**changes))) == {}


# --- serology looks for undiagnosed coeliac disease ---------------------------------------------


@pytest.mark.parametrize(("autoimmune", "digestive", "diet"), [
    ({"ai-family-coeliac": who("PRN")}, None, None),
    ({"ai-self-type1-diabetes": coded(YES)}, {"sym-pain": often()}, None),
    ({"ai-family-coeliac": who("SIB"), "ai-self-hashimoto": coded(YES)},
     {"gi-af3": boolean()}, {"diet-gluten-free": boolean()}),
    ({"ai-family-coeliac": who("CHILD", "GRPRN")}, None, {"diet-gluten-free": boolean()}),
])
def test_no_serology_note_for_a_patient_who_already_has_coeliac_disease(
        catalog: Catalog, autoimmune: Answers, digestive: Answers | None, diet: Answers | None) -> None:
    def notes(self_coeliac: dict[str, str]) -> list[str]:
        answers = autoimmune_answers(**{"ai-self-coeliac": coded(self_coeliac), **autoimmune})
        dig = digestive_answers(**digestive) if digestive is not None else None
        return list(cross(intake(catalog, autoimmune=answers, digestive=dig, diet=diet)))

    assert notes(YES) == []  # no serology note, so no gluten-free caveat either
    raised = notes(UNSURE)   # "Not sure" is not a diagnosis: the notes stand
    assert raised and all(n.startswith(("coeliac-", "gluten-free")) for n in raised)
    assert notes(NO) == raised


def test_the_serology_notes_say_why_they_skip_diagnosed_coeliac_disease(catalog: Catalog) -> None:
    answers = autoimmune_answers(**{"ai-self-type1-diabetes": coded(YES), "ai-family-coeliac": who("CHILD")})
    notes = cross(intake(catalog, autoimmune=answers, digestive=digestive_answers(**{"sym-pain": often()})))
    for note_id in ("coeliac-serology-family", "coeliac-serology-personal"):
        assert "already has coeliac disease" in (notes[note_id].citation or "")


# --- autoimmune 1.4.0: every relative is named; the "relative unknown" note is gone -------------


@pytest.mark.parametrize("answer", [UNSURE, NONE])
def test_no_coeliac_relative_gives_no_note(catalog: Catalog, answer: dict[str, str]) -> None:
    result = intake(catalog, autoimmune=autoimmune_answers(**{"ai-family-coeliac": coded(answer)}),
                    diet={"diet-gluten-free": boolean()})
    assert cross(result) == {}


def test_the_relative_unknown_note_is_retired(catalog: Catalog) -> None:
    """1.3.0 asked Yes, then "Which relatives?": a blank there raised a note; 1.4.0 cannot leave it blank."""
    old = catalog.get(AUTOIMMUNE.replace("1.4.0", "1.3.0"))
    new = catalog.by_key["autoimmune"]
    assert old is not None
    assert "coeliac-family-relative-unknown" in json.dumps(old.resource["extension"])
    assert "coeliac-family-relative-unknown" not in json.dumps(new.resource["extension"])


# --- AI-F2: personal T1D / autoimmune thyroid disease + GI symptoms -----------------------------


PERSONAL = ["ai-self-type1-diabetes", "ai-self-hashimoto", "ai-self-graves"]
GI_SYMPTOMS = [
    {"sym-pain": often()}, {"sym-bloating": often("every-day")}, {"sym-reflux": often("most-days")},
    {"sym-diarrhoea": often()}, {"sym-constipation": often()}, {"ibs-pain-weekly": boolean()},
] + [{link: boolean()} for link in ALARMS if link != "gi-af4"]


@pytest.mark.parametrize(("condition", "symptom"),
                         [(PERSONAL[n % 3], symptom) for n, symptom in enumerate(GI_SYMPTOMS)])
def test_coeliac_personal_note_fires(catalog: Catalog, condition: str, symptom: Answers) -> None:
    result = intake(catalog, autoimmune=autoimmune_answers(**{condition: coded(YES)}),
                    digestive=digestive_answers(**symptom))
    notes = cross(result)
    assert list(notes) == ["coeliac-serology-personal"]
    note = notes["coeliac-serology-personal"]
    assert note.text == (SEROLOGY + " Lower certainty: based on personal type 1 diabetes or autoimmune thyroid "
                         "disease with GI symptoms.")
    assert note.verification == "partly-verified"
    assert "AI-F2" in (note.citation or "") and "ACG 2023" in (note.citation or "")
    assert condition in note.because and next(iter(symptom)) in note.because


@pytest.mark.parametrize(("autoimmune", "digestive"), [
    ({"ai-self-type1-diabetes": coded(YES)}, {}),                          # every symptom 'never', no alarm
    ({"ai-self-hashimoto": coded(YES)}, {"gi-af4": boolean()}),            # family history is not a symptom
    ({"ai-self-graves": coded(YES)}, {"gi-af5": [{"valueDate": "2020-01"}]}),  # an onset date is not a symptom
    ({"ai-self-type1-diabetes": coded(UNSURE)}, {"sym-pain": often()}),
    ({"ai-self-coeliac": coded(YES), "ai-self-lupus": coded(YES)}, {"sym-pain": often("every-day")}),
    ({"ai-self-coeliac": coded(YES), "ai-self-type1-diabetes": coded(YES)}, {"sym-pain": often()}),
    ({}, {"sym-pain": often(), "gi-af1": boolean()}),
])
def test_coeliac_personal_note_does_not_fire(catalog: Catalog, autoimmune: Answers, digestive: Answers) -> None:
    result = intake(catalog, autoimmune=autoimmune_answers(**autoimmune), digestive=digestive_answers(**digestive))
    assert "coeliac-serology-personal" not in cross(result)


def test_coeliac_personal_note_needs_the_digestive_questionnaire(catalog: Catalog) -> None:
    result = intake(catalog, autoimmune=autoimmune_answers(**{"ai-self-type1-diabetes": coded(YES)}))
    assert cross(result) == {}


def test_both_coeliac_notes_can_fire_together(catalog: Catalog) -> None:
    answers = autoimmune_answers(**{"ai-self-type1-diabetes": coded(YES), "ai-family-coeliac": who("SIB")})
    result = intake(catalog, autoimmune=answers, digestive=digestive_answers(**{"sym-diarrhoea": often()}))
    assert list(cross(result)) == ["coeliac-serology-family", "coeliac-serology-personal"]


# --- AI-F3: gluten-free caveat -------------------------------------------------------------------


def test_gluten_free_caveat_with_the_family_note(catalog: Catalog) -> None:
    answers = autoimmune_answers(**{"ai-family-coeliac": who("PRN")})
    result = intake(catalog, autoimmune=answers, diet={"diet-gluten-free": boolean()})
    notes = cross(result)
    assert list(notes) == ["coeliac-serology-family", "gluten-free-caveat"]
    note = notes["gluten-free-caveat"]
    assert note.text == FALSE_NEGATIVE
    assert note.verification == "verified"
    assert "AI-F3" in (note.citation or "") and "ACG 2023" in (note.citation or "")
    assert "diet-gluten-free" in note.because


def test_gluten_free_caveat_with_the_personal_note(catalog: Catalog) -> None:
    result = intake(catalog, autoimmune=autoimmune_answers(**{"ai-self-hashimoto": coded(YES)}),
                    digestive=digestive_answers(**{"sym-bloating": often()}),
                    diet={"diet-gluten-free": boolean(), "diet-gluten-free-since": [{"valueDate": "2023-01"}]})
    assert list(cross(result)) == ["coeliac-serology-personal", "gluten-free-caveat"]


def test_gluten_free_alone_gives_no_caveat(catalog: Catalog) -> None:
    result = intake(catalog, autoimmune=autoimmune_answers(**{"ai-family-coeliac": who("GRPRN")}),
                    digestive=digestive_answers(**{"sym-pain": often()}), diet={"diet-gluten-free": boolean()})
    assert cross(result) == {}


@pytest.mark.parametrize("diet", [{"diet-gluten-free": boolean(False)}, {}, None])
def test_no_caveat_unless_currently_gluten_free(catalog: Catalog, diet: Answers | None) -> None:
    answers = autoimmune_answers(**{"ai-family-coeliac": who("CHILD")})
    assert list(cross(intake(catalog, autoimmune=answers, diet=diet))) == ["coeliac-serology-family"]


# --- B12 + neuropathy (5.3, AI-F5) ---------------------------------------------------------------


@pytest.mark.parametrize("risk", [("vegan-no-b12",), ("metformin",), ("acid-reducer",), ("stomach-surgery",),
                                  ("pernicious-anaemia",), ("none", "metformin")])
def test_b12_note_fires_with_a_diet_risk_factor_and_mnsi_4(catalog: Catalog, risk: tuple[str, ...]) -> None:
    result = intake(catalog, autoimmune=autoimmune_answers(), diet={"diet-b12-risk": b12(*risk)}, mnsi=4)
    notes = cross(result)
    assert list(notes) == ["b12-neuropathy"]
    note = notes["b12-neuropathy"]
    assert note.text == B12
    assert note.verification == "partly-verified"
    assert "instruments.md 5.3" in (note.citation or "") and "AI-F5" in (note.citation or "")
    assert note.questionnaire == AUTOIMMUNE


@pytest.mark.parametrize("condition", ["ai-self-pernicious-anaemia", "ai-self-coeliac"])
def test_b12_note_fires_with_a_personal_risk_factor(catalog: Catalog, condition: str) -> None:
    result = intake(catalog, autoimmune=autoimmune_answers(**{condition: coded(YES)}), mnsi=7)
    assert list(cross(result)) == ["b12-neuropathy"]


@pytest.mark.parametrize(("diet", "autoimmune", "mnsi"), [
    ({"diet-b12-risk": b12("metformin")}, {}, 3),                          # MNSI below 4
    ({"diet-b12-risk": b12("metformin")}, {}, None),                       # no MNSI score at all
    ({"diet-b12-risk": b12("none")}, {}, 13),                              # no risk factor
    ({}, {"ai-self-pernicious-anaemia": coded(UNSURE)}, 9),
    ({}, {"ai-self-ibd": coded(YES)}, 9),                                  # not encoded (Crohn's vs UC)
    ({}, {"ai-self-pernicious-anaemia": coded(YES)}, 0),
])
def test_b12_note_does_not_fire(catalog: Catalog, diet: Answers, autoimmune: Answers, mnsi: int | None) -> None:
    result = intake(catalog, autoimmune=autoimmune_answers(**autoimmune), diet=diet, mnsi=mnsi)
    assert cross(result) == {}


def test_b12_note_needs_a_complete_mnsi_total(catalog: Catalog) -> None:
    result = intake(catalog, autoimmune=autoimmune_answers(**{"ai-self-pernicious-anaemia": coded(YES)}),
                    mnsi_form=mnsi_like())  # MNSI-like form present, its total unanswered -> incomplete
    assert [(s.id, s.complete) for s in result.scores if s.id == "mnsi"] == [("mnsi", False)]
    assert cross(result) == {}


def test_b12_note_with_the_real_neuropathy_form(catalog: Catalog) -> None:
    neuropathy = catalog.by_key.get("neuropathy")
    declares = neuropathy is not None and any(
        sub.get("valueCode") == "mnsi"
        for group_ in neuropathy.walk() for ext in group_.raw.get("extension") or []
        if ext.get("url") == PROJECT_EXT + "score" for sub in ext.get("extension") or [])
    assert neuropathy is not None and declares  # the real form must keep declaring the MNSI score
    yes_items = {"mnsi-1", "mnsi-2", "mnsi-3", "mnsi-7", "mnsi-13"}  # 7 and 13 score on No

    def run(extra_yes: set[str]) -> Result:
        answers = {f"mnsi-{n}": coded(YES if f"mnsi-{n}" in yes_items | extra_yes else NO) for n in range(1, 16)}
        pairs = [(neuropathy, build_response(neuropathy, answers, status="completed", subject="Patient/p1",
                                             authored=AUTHORED))]
        ai = catalog.by_key["autoimmune"]
        pairs.append((ai, build_response(ai, autoimmune_answers(**{"ai-self-pernicious-anaemia": coded(YES)}),
                                         status="completed", subject="Patient/p1", authored=AUTHORED)))
        return score_intake(pairs, Context(birth_date="1980-01-01"))

    three, four = run(set()), run({"mnsi-5"})
    assert [s.value for s in three.scores if s.id == "mnsi"] == [3]
    assert [s.value for s in four.scores if s.id == "mnsi"] == [4]
    assert "b12-neuropathy" not in cross(three)
    assert "b12-neuropathy" in cross(four)


# --- notes and suppression across domains -------------------------------------------------------


def test_no_notes_for_a_quiet_intake(catalog: Catalog) -> None:
    result = intake(catalog, autoimmune=autoimmune_answers(), digestive=digestive_answers(),
                    diet={"diet-gluten-free": boolean(False), "diet-b12-risk": b12("none")}, mnsi=2)
    assert result.notes == []
    assert result.flags == []


def test_all_four_notes_together(catalog: Catalog) -> None:
    answers = autoimmune_answers(**{"ai-self-graves": coded(YES), "ai-self-pernicious-anaemia": coded(YES),
                                    "ai-family-coeliac": who("PRN")})
    result = intake(catalog, autoimmune=answers, digestive=digestive_answers(**{"sym-reflux": often()}),
                    diet={"diet-gluten-free": boolean(), "diet-b12-risk": b12("none")}, mnsi=5)
    assert list(cross(result)) == ["coeliac-serology-family", "coeliac-serology-personal", "gluten-free-caveat",
                                   "b12-neuropathy"]


# --- AI-F4: coeliac disease or IBD in a first-degree relative feeds GI-AF4 ----------------------


def gi_af4(result: Result) -> list[tuple[str, str]]:
    return [(f.id, f.tier) for f in result.flags if f.id == "gi-af4"]


@pytest.mark.parametrize(("condition", "relatives", "raised"), [
    ("coeliac", ("PRN",), True),
    ("coeliac", ("SIB", "GRPRN"), True),
    ("ibd", ("CHILD",), True),
    ("ibd", ("SIB",), True),
    ("coeliac", ("GRPRN", "AUNT", "EXT"), False),  # not first-degree
    ("ibd", ("UNCLE",), False),
    ("lupus", ("PRN",), False),                              # not a GI-AF4 condition
    ("type1-diabetes", ("SIB",), False),
])
def test_first_degree_coeliac_or_ibd_in_the_autoimmune_history_raises_gi_af4(
        catalog: Catalog, condition: str, relatives: tuple[str, ...], raised: bool) -> None:
    changes = {f"ai-family-{condition}": who(*relatives)}
    result = intake(catalog, autoimmune=autoimmune_answers(**changes), digestive=digestive_answers())  # gi-af4 No
    assert gi_af4(result) == ([("gi-af4", "review")] if raised else [])


def test_gi_af4_without_the_autoimmune_questionnaire(catalog: Catalog) -> None:
    assert gi_af4(intake(catalog, digestive=digestive_answers())) == []
    assert gi_af4(intake(catalog, digestive=digestive_answers(**{"gi-af4": boolean()}))) == [("gi-af4", "review")]
    # and with it, a No everywhere stays quiet; a Yes in the digestive form is enough on its own
    assert gi_af4(intake(catalog, autoimmune=autoimmune_answers(), digestive=digestive_answers())) == []
    assert gi_af4(intake(catalog, autoimmune=autoimmune_answers(),
                         digestive=digestive_answers(**{"gi-af4": boolean()}))) == [("gi-af4", "review")]


def test_gi_af4_from_the_autoimmune_history_is_raised_once_and_says_why(catalog: Catalog) -> None:
    answers = autoimmune_answers(**{"ai-family-coeliac": who("PRN"),
                                    "ai-family-ibd": who("SIB")})
    result = intake(catalog, autoimmune=answers, digestive=digestive_answers(**{"gi-af4": boolean()}))
    [flag] = [f for f in result.flags if f.id == "gi-af4"]
    # One line for the clinician; the rule (which items raise it) with the citation.
    assert "autoimmune family history" in flag.message
    assert "ai-family-coeliac" in (flag.citation or "") and "ai-family-ibd" in (flag.citation or "")
    assert "AI-F4" in (flag.citation or "")
    assert "instruments.md" not in flag.message


def test_a_digestive_response_scored_alone_ignores_other_domains(catalog: Catalog) -> None:
    """score_response: the other questionnaires' variables are empty, not an error."""
    form = catalog.by_key["digestive"]
    response = build_response(form, digestive_answers(), status="completed", subject="Patient/p1", authored=AUTHORED)
    assert score_response(form, response, Context(birth_date="1980-01-01")).flags == []


def test_relatives_of_a_condition_not_ticked_in_the_first_family_question_are_ignored(catalog: Catalog) -> None:
    """The relatives question is only asked for a ticked condition: a stale answer (the condition
    unticked afterwards) raises neither AI-F1 nor GI-AF4."""
    answers = autoimmune_answers(**{"ai-family-coeliac": who("PRN"), "ai-family-ibd": who("SIB"),
                                    "ai-family-conditions": coded(NONE)})
    result = intake(catalog, autoimmune=answers, digestive=digestive_answers())
    assert "coeliac-serology-family" not in cross(result)
    assert gi_af4(result) == []


def test_coeliac_relatives_not_sure_raise_no_family_note(catalog: Catalog) -> None:
    """Coeliac ticked, relatives 'Not sure': a blood relative has it, but no first-degree one is named."""
    result = intake(catalog, autoimmune=autoimmune_answers(**{"ai-family-coeliac": coded(UNSURE)}),
                    digestive=digestive_answers())
    assert "coeliac-serology-family" not in cross(result)
    assert gi_af4(result) == []
